"""The CUDA backend's sparsemax kernels under the Numba CUDA simulator.

Runs only in its own process with the simulator switched on:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator

gpu_act.backends.cuda.sparsemax's functions are called on simulator device
arrays (warp shuffles through ``cuda_sim.py``), on a device with a small
shared memory (``TINY``) so that every variant ``_config.plan`` chooses runs
on short rows: "warp", "thread" (a strided axis, rows side by side),
"block-shared" and "block" forward; "warp", "thread" and "block" backward;
every dtype's codec, strided and in-place operands, and the special rows.
Results are compared with the independent float64 reference
(``reference.py``) under the shared tolerance table.
"""

import importlib

import numpy as np
import pytest

from gpu_act import _cuda

pytestmark = [
    pytest.mark.skipif(
        not _cuda.SIMULATOR,
        reason="simulator tests run in their own process: NUMBA_ENABLE_CUDASIM=1 pytest tests/simulator",
    ),
    # the simulator runs kernels on NumPy scalars, which warn on inf - inf where the device is silent
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

import cuda_sim  # noqa: E402
import reference as ref  # noqa: E402
from helpers import sample  # noqa: E402
from tolerances import assert_close  # noqa: E402

cuda = _cuda.cuda
be = importlib.import_module("gpu_act.backends.cuda")
sm = importlib.import_module("gpu_act.backends.cuda.sparsemax")
_config = importlib.import_module("gpu_act.backends.cuda._config")
cuda_sim.install()

# block-shared holds float32 rows of up to 1100 elements: rows of 1025..1100 run
# block-shared, longer ones (and float64 ones) "block"; blocks of 64 threads (as
# the small device of conftest.py)
SHARED_ROW = 1100
TINY = _cuda.Limits(sm_count=2, max_threads=64, shared_per_block=SHARED_ROW * 4 + _config.STATIC_SHARED)

SPECIAL = [
    [1.0, 1.0, 0.5, 0.5],
    [2.0, 2.0, 2.0, 2.0],
    [0.0, -1.0, -np.inf, -0.5],
    [np.inf, 0.0, np.inf, 1.0],
    [-np.inf] * 4,
    [np.nan, 1.0, 2.0, 3.0],
    [1e30, 1e30, -1e30, 0.0],
]


@pytest.fixture
def tiny_device(monkeypatch):
    monkeypatch.setattr(_cuda, "limits", lambda device_id: TINY)


def _f64(a):
    return np.asarray(a).astype(np.float64)


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def variant(op, a, axis):
    n = a.shape[axis]
    c = 8 if a.dtype == np.float64 else 4
    return _config.plan(op, a.size // n, n, _config.row_layout(a, axis), c, _cuda.limits(0)).variant


def run(fn, views, axis, out=None):
    """``fn(ctx, *inputs, axis, out)`` of the backend on device views; (result on the host, the plan's variant)."""
    ctx = be.context(views[0], None)
    arrays = [be.asarray(ctx, v) for v in views]
    o = be.empty(ctx, arrays[0].shape, arrays[0].dtype) if out is None else be.asarray(ctx, out)
    fn(ctx, *arrays, axis, o)
    op = "softmax" if fn is sm.sparsemax else "softmax_backward"
    return be.wrap(ctx, o, views[0]).copy_to_host(), variant(op, arrays[-1], axis)


def rows_with_specials(shape, dtype, seed, axis=-1):
    """Normal rows along ``axis`` with the SPECIAL rows' entries spread over the first rows."""
    x = np.moveaxis(sample(shape, np.float64, seed=seed), axis, -1).copy()
    n = x.shape[-1]
    for k, row in enumerate(SPECIAL[: x.reshape(-1, n).shape[0]]):
        x.reshape(-1, n)[k, np.linspace(0, n - 1, 4).astype(int)] = row
    return np.moveaxis(x, -1, axis).astype(dtype)


CASES = [  # (shape, axis, dtype, forward variant, backward variant) on TINY
    ((7, 9), -1, np.float32, "warp", "warp"),
    ((7, 9), -1, np.float64, "warp", "warp"),
    ((7, 9), -1, np.float16, "warp", "warp"),
    ((6, 40), 0, np.float32, "thread", "thread"),
    ((7, 1030), -1, np.float32, "block-shared", "block"),
    ((2, 1030), -1, np.float64, "block", "block"),
    ((1, SHARED_ROW + 1), -1, np.float32, "block", "block"),
]


@pytest.mark.parametrize("shape,axis,dtype,fwd,bwd", CASES, ids=[f"{c[3]}-{np.dtype(c[2]).name}" for c in CASES])
def test_variants(tiny_device, shape, axis, dtype, fwd, bwd):
    x = rows_with_specials(shape, dtype, seed=shape[-1], axis=axis)
    y, v = run(sm.sparsemax, [dev(x)], axis % x.ndim)
    assert v == fwd
    assert y.dtype == dtype
    assert_close(y, ref.sparsemax(_f64(x), axis=axis), dtype)
    g = sample(shape, dtype, seed=3, kinks=False)
    dx, v = run(sm.sparsemax_backward, [dev(g), dev(y)], axis % x.ndim)
    assert v == bwd
    assert_close(dx, ref.sparsemax_backward(_f64(g), _f64(y), axis=axis), dtype)


@pytest.mark.parametrize("rows,n,expect", [(7, 9, "warp"), (3, 1030, "block-shared")])
def test_bfloat16(tiny_device, rows, n, expect):
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    x = rows_with_specials((rows, n), bf16, seed=n)
    y, v = run(sm.sparsemax, [dev(x)], 1)
    assert v == expect and y.dtype == bf16
    assert_close(y, ref.sparsemax(_f64(x)), bf16)
    g = sample((rows, n), np.float64, seed=4, kinks=False).astype(bf16)
    dx, _ = run(sm.sparsemax_backward, [dev(g), dev(y)], 1)
    assert dx.dtype == bf16
    assert_close(dx, ref.sparsemax_backward(_f64(g), _f64(y)), bf16)


@pytest.mark.parametrize("n", [9, 1030], ids=["warp", "block-shared"])
def test_strided_and_in_place(tiny_device, n):
    x = sample((n, 2), np.float32, seed=n)
    d = dev(x)
    # rows along axis 0 of a C array, read through their stride (2 rows: too few for "thread")
    y, v = run(sm.sparsemax, [d], 0)
    assert v == ("warp" if n < 1024 else "block-shared")
    assert_close(y, ref.sparsemax(x, axis=0), np.float32)
    # in place: out is x (a transposed view)
    t = d.T
    out, _ = run(sm.sparsemax, [t], 1, out=t)
    assert_close(out, ref.sparsemax(x.T, axis=1), np.float32)
    assert_close(d.copy_to_host(), ref.sparsemax(x, axis=0), np.float32)
    # backward in place, into the gradient; reversed rows
    g = sample((n, 2), np.float32, seed=5, kinks=False)
    dg = dev(g)[::-1]
    yr = dev(y)[::-1]
    dx, _ = run(sm.sparsemax_backward, [dg, yr], 0, out=dg)
    assert_close(dx, ref.sparsemax_backward(g[::-1], y[::-1], axis=0), np.float32)
