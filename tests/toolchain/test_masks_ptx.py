"""The masked kernels of the CUDA backend (softmax and log_softmax forward and
backward, logsumexp and its backward, cross-entropy on class indices and on
probabilities, every variant a masked row op runs: thread, warp, block, and
block-shared for the forward; the
per-row mask kernels of live_rows and check_targets) compile to PTX without a
driver, once each, and fit the launches ``_config`` gives them
(``ptx.assert_ptx``).
The mask is a 1-D view of bool with an int64 offset and strides, as the
backend launches it (``_operands``). The unmasked kernels keep their
signatures: tests/toolchain/test_nvvm_ptx.py compiles them.
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402

from ptx import I64, T, TUP, arr, assert_ptx, compute, row_op  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

sm = importlib.import_module("gpu_act.backends.cuda.softmax")
ce = importlib.import_module("gpu_act.backends.cuda.cross_entropy")
cd = importlib.import_module("gpu_act.backends.cuda._codecs")
_config = importlib.import_module("gpu_act.backends.cuda._config")

DTYPES = (np.float16, np.float32, np.float64)
B = T.boolean
VARIANTS = ("thread", "warp", "block")
MASK = row_op(np.bool_)


@pytest.mark.parametrize("variant", VARIANTS)
def test_masked_softmax_and_logsumexp_kernels(variant):
    for dtype in DTYPES:
        c = compute(dtype)
        s = _cuda.from_dtype(c)
        x = row_op(dtype)
        assert_ptx(sm.kernel("forward", c, variant, masked=True), x + MASK + x + (TUP, I64, I64, s, B), variant, c)
        assert_ptx(sm.kernel("backward", c, variant, masked=True), x * 2 + MASK + x + (TUP, I64, I64, s, B), variant,
                    c)
        assert_ptx(sm.kernel("logsumexp", c, variant, masked=True), x + MASK + x + (TUP, I64, I64, s, s), variant, c)
        assert_ptx(sm.kernel("logsumexp-backward", c, variant, masked=True), x * 3 + MASK + x + (TUP, I64, I64, s),
                    variant, c)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", ["index", "prob"])
def test_masked_cross_entropy_kernels(variant, target):
    for dtype in DTYPES:
        c = compute(dtype)
        s = _cuda.from_dtype(c)
        t = row_op(np.int64) if target == "index" else row_op(dtype)
        sig = row_op(dtype) * 2 + t + MASK + (arr(c),) * 3 + (TUP, I64, I64, I64) + (s,) * 5 + (B,) * 3
        assert_ptx(ce.kernel(target, c, variant, masked=True), sig, variant, c)


def test_masked_bfloat16_kernels():
    f32 = np.dtype(np.float32)
    u16 = row_op(np.uint16)
    for variant in VARIANTS:
        s = T.float32
        assert_ptx(sm.kernel("forward", f32, variant, cd.BF16, masked=True), u16 + MASK + u16 + (TUP, I64, I64, s, B),
                    variant, f32)
        sig = u16 * 2 + row_op(np.int64) + MASK + (arr(f32),) * 3 + (TUP, I64, I64, I64) + (s,) * 5 + (B,) * 3
        assert_ptx(ce.kernel("index", f32, variant, (cd.BF16, cd.NATIVE), masked=True), sig, variant, f32)


def test_mask_row_kernels():
    assert_ptx(ce.rows_kernel("any"), MASK + (arr(np.bool_), TUP, I64, I64), "elementwise", np.float64)
    for tdt in (np.int64, np.int32):
        sig = (arr(tdt), I64, TUP, arr(np.bool_), I64, TUP, TUP, I64, I64, arr(np.int64))
        assert_ptx(ce.rows_kernel("live"), sig, "elementwise", np.float64)


def test_masked_softmax_rows_that_fit_run_block_shared():
    lim = _cuda.Limits(sm_count=132, max_threads=1024, shared_per_block=48 * 1024)
    assert _config.plan("softmax", 1, 2000, "unit", 4, lim).variant == "block-shared"
    assert _config.plan("softmax_masked", 1, 2000, "unit", 4, lim).variant == "block-shared"
    assert _config.plan("softmax_masked", 1, 20000, "unit", 4, lim).variant == "block"
    assert _config.plan("softmax_backward_masked", 1, 2000, "unit", 4, lim).variant == "block"
    for dtype in DTYPES:
        c, x = compute(dtype), row_op(dtype)
        sig = x + MASK + x + (TUP, I64, I64, _cuda.from_dtype(c), B)
        ptx, _ = assert_ptx(sm.kernel("forward", c, "block-shared", masked=True), sig, "block-shared", c)
        assert "bar.sync" in ptx
