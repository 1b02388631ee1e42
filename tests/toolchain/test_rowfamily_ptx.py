"""The logsumexp kernels of the CUDA backend (forward and backward, every
variant and dtype, bfloat16 operands) compile to PTX for sm_80 and sm_90
without a driver and fit the launches ``_config`` gives them (ptxas -v,
``resources.py``): registers x the most threads of the variant <= 65,536,
static shared memory within ``_config.STATIC_SHARED``, no spills. softmin
runs the softmax kernels, which tests/toolchain/test_nvvm_ptx.py compiles.

The argument types are those the backend launches with: 1-D views of each
operand plus int64 offsets and UniTuple(int64, R) strides (``_operands``).
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402

import resources  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

T = _cuda.types
sm = importlib.import_module("gpu_act.backends.cuda.softmax")
cd = importlib.import_module("gpu_act.backends.cuda._codecs")
_config = importlib.import_module("gpu_act.backends.cuda._config")

CCS = ((8, 0), (9, 0))
DTYPES = (np.float16, np.float32, np.float64)
I64 = T.int64
TUP = T.UniTuple(I64, 2)  # a merged outer shape of rank 2
VARIANTS = ("thread", "warp", "block")


def compute(dtype):
    return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)


def row_op(dtype):
    """(view, offset, outer strides, axis stride) of a row operand."""
    return (T.Array(_cuda.from_dtype(np.dtype(dtype)), 1, "C"), I64, TUP, I64)


def assert_fits(kernel, sig, variant, ctype):
    for cc in CCS:
        ptx = _cuda.compile_ptx(kernel, sig, cc)
        assert f".target sm_{cc[0]}{cc[1]}" in ptx and ".entry" in ptx
        if not resources.ptxas_path():
            continue
        arch = f"{cc[0]}{cc[1]}"
        threads = _config.max_threads(variant, np.dtype(ctype).itemsize)
        ((_, r),) = resources.ptx_resources(ptx, arch).items()
        where = f"{variant} kernel on sm_{arch} ({r})"
        assert resources.registers_for_block(r.registers, threads) <= resources.REGISTERS_PER_SM, where
        assert r.static_shared <= _config.STATIC_SHARED, where
        assert r.spill_stores == r.spill_loads == 0, where
        if r.max_threads is not None:
            assert r.max_threads >= threads, where


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
        assert_fits(sm.kernel("logsumexp", c, variant), forward, variant, c)
        assert_fits(sm.kernel("logsumexp-backward", c, variant), backward, variant, c)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bfloat16_logsumexp_kernels_compile_and_fit(variant):
    f32 = np.dtype(np.float32)
    forward, backward = _lse_sigs(np.uint16, f32)  # bfloat16 operands as their uint16 bits
    assert_fits(sm.kernel("logsumexp", f32, variant, cd.BF16), forward, variant, f32)
    assert_fits(sm.kernel("logsumexp-backward", f32, variant, cd.BF16), backward, variant, f32)


def test_warp_and_block_logsumexp_reduce_across_workers():
    forward, _ = _lse_sigs(np.float32, np.dtype(np.float32))
    warp = _cuda.compile_ptx(sm.kernel("logsumexp", np.float32, "warp"), forward, (9, 0))
    assert "shfl.sync.bfly" in warp
    block = _cuda.compile_ptx(sm.kernel("logsumexp", np.float32, "block"), forward, (9, 0))
    assert "bar.sync" in block and ".maxntid 1024" in block
