"""The logsumexp kernels of the CUDA backend (forward and backward, every
variant and dtype, bfloat16 operands) compile to PTX without a driver, once
each, and fit the launches ``_config`` gives them (``ptx.assert_ptx``). softmin
runs the softmax kernels, which tests/toolchain/test_nvvm_ptx.py compiles.

The argument types are those the backend launches with: 1-D views of each
operand plus int64 offsets and UniTuple(int64, R) strides (``_operands``).
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402

from ptx import I64, TUP, assert_ptx, compute, row_op  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

sm = importlib.import_module("gpu_act.backends.cuda.softmax")
cd = importlib.import_module("gpu_act.backends.cuda._codecs")

DTYPES = (np.float16, np.float32, np.float64)
VARIANTS = ("thread", "warp", "block")


def _lse_sigs(stored, ctype):
    # without a mask, x's operand stands in for it (x, mask, out; x, g, r, mask, out)
    c = _cuda.from_dtype(ctype)
    forward = row_op(stored) * 3 + (TUP, I64, I64, c, c)
    backward = row_op(stored) * 5 + (TUP, I64, I64, c)
    return forward, backward


@pytest.mark.parametrize("variant", VARIANTS)
def test_logsumexp_kernels_compile_and_fit(variant):
    for dtype in DTYPES:
        c = compute(dtype)
        forward, backward = _lse_sigs(dtype, c)
        assert_ptx(sm.kernel("logsumexp", c, variant), forward, variant, c)
        assert_ptx(sm.kernel("logsumexp-backward", c, variant), backward, variant, c)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bfloat16_logsumexp_kernels_compile_and_fit(variant):
    f32 = np.dtype(np.float32)
    forward, backward = _lse_sigs(np.uint16, f32)  # bfloat16 operands as their uint16 bits
    assert_ptx(sm.kernel("logsumexp", f32, variant, cd.BF16), forward, variant, f32)
    assert_ptx(sm.kernel("logsumexp-backward", f32, variant, cd.BF16), backward, variant, f32)


def test_warp_and_block_logsumexp_reduce_across_workers():
    forward, _ = _lse_sigs(np.float32, np.dtype(np.float32))
    warp = _cuda.compile_ptx(sm.kernel("logsumexp", np.float32, "warp"), forward, (9, 0))
    assert "shfl.sync.bfly" in warp
    block = _cuda.compile_ptx(sm.kernel("logsumexp", np.float32, "block"), forward, (9, 0))
    assert "bar.sync" in block and ".maxntid 1024" in block
