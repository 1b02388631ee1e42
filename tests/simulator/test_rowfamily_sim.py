"""logsumexp and softmin on the CUDA backend under the Numba CUDA simulator.

Runs only in its own process with the simulator switched on:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator

Each kernel variant ``_config.plan`` chooses (thread, warp, block, and
block-shared for softmin's forward) runs once per direction on small shapes,
every dtype on one of them, against the float64 reference.
"""

import importlib

import numpy as np
import pytest

import gpu_act as ga
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
_config = importlib.import_module("gpu_act.backends.cuda._config")
cuda_sim.install()

def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    assert type(r).__module__.startswith("numba"), type(r)
    return r.copy_to_host()


def variant(op, x, axis=-1):
    n = x.shape[axis]
    c = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    return _config.plan(op, x.size // n, n, _config.row_layout(x, axis), c.itemsize, _cuda.limits(0)).variant


# (shape, axis, dtype, expected variant) on the small device (conftest)
LSE_CASES = [
    ((5, 33), -1, np.float16, "warp"),
    ((2, 1100), -1, np.float32, "block"),
    ((6, 40), 0, np.float64, "thread"),
    ((4, 6, 5), 1, np.float32, "warp"),  # a strided axis, too few rows for one thread each
]


@pytest.mark.parametrize("shape,axis,dtype,expect", LSE_CASES, ids=[c[3] + "-" + np.dtype(c[2]).name for c in LSE_CASES])
def test_logsumexp_variants(small_device, shape, axis, dtype, expect):
    x = sample(shape, dtype, seed=1)
    assert variant("logsumexp", x, axis) == expect
    r = host(ga.logsumexp(dev(x), axis=axis, temperature=0.7, keepdims=True))
    assert r.dtype == dtype
    assert_close(r, ref.logsumexp(x, axis, True, 0.7), dtype)
    g = sample(r.shape, dtype, seed=2, kinks=False)
    assert variant("logsumexp_backward", x, axis) == expect
    d = host(ga.logsumexp_backward(dev(g), dev(x), dev(r), axis=axis, temperature=0.7, keepdims=True))
    assert_close(d, ref.logsumexp_backward(g, x, r, axis, True, 0.7), dtype)


SPECIAL_ROWS = np.array(
    [
        [1.0, np.nan, 2.0, 3.0],
        [1.0, np.inf, 2.0, 3.0],
        [np.inf, 1.0, 2.0, np.nan],
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [-np.inf, 1.0, -np.inf, 2.0],
        [-1e30, 1e30, 0.0, 1e30],
    ]
)


@pytest.mark.parametrize("width,axis", [(4, -1), (1100, -1), (4, 0)], ids=["warp", "block", "strided"])
def test_logsumexp_special_rows(small_device, width, axis):
    x = np.tile(SPECIAL_ROWS, (1, width // 4)).astype(np.float32)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    r = host(ga.logsumexp(dev(x), axis=axis))
    assert_close(r, ref.logsumexp(x, axis), np.float32)
    d = host(ga.logsumexp_backward(dev(np.ones_like(r)), dev(x), dev(r), axis=axis))
    assert_close(d, ref.logsumexp_backward(np.ones_like(r), x, r, axis), np.float32)


def test_logsumexp_empty_rows_into_a_strided_out():
    out = dev(np.zeros((3, 2), np.float32))[:, 1]
    ga.logsumexp(dev(np.zeros((3, 0), np.float32)), out=out)
    np.testing.assert_array_equal(host(out), -np.inf)
    assert (host(ga.logsumexp(dev(np.zeros((2, 0), np.float64)), keepdims=True)) == -np.inf).all()


SOFTMIN_CASES = [
    ((5, 33), -1, np.float32, "warp"),
    ((2, 1100), -1, np.float16, "block-shared"),
    ((1, 4097), -1, np.float32, "block"),
    ((6, 40), 0, np.float64, "thread"),
]


@pytest.mark.parametrize("shape,axis,dtype,expect", SOFTMIN_CASES,
                         ids=[c[3] + "-" + np.dtype(c[2]).name for c in SOFTMIN_CASES])
def test_softmin_variants(small_device, shape, axis, dtype, expect):
    x = sample(shape, dtype, seed=3)
    assert variant("softmax", x, axis) == expect
    y = host(ga.softmin(dev(x), axis=axis, temperature=0.7))
    assert_close(y, ref.softmin(x, axis, 0.7), dtype)
    g = sample(shape, dtype, seed=4, kinks=False)
    d = host(ga.softmin_backward(dev(g), dev(y), axis=axis, temperature=0.7))
    assert_close(d, ref.softmin_backward(g, y, axis, 0.7), dtype)


@pytest.mark.parametrize("shape,axis", [((2, 8), -1), ((2, 1100), -1), ((8, 40), 0)], ids=["warp", "block", "thread"])
def test_softmin_special_values_and_huge_temperature(small_device, shape, axis):
    # +inf entries get 0, -inf ones make the row NaN; with 1/T rounded to -0.0 the sign still negates
    x = sample(shape, np.float32, seed=5)
    rows = (slice(None), slice(0, None, 3)) if axis == -1 else (slice(0, None, 3), slice(None))
    x[rows] = np.inf
    x[(0, 1) if axis == -1 else (1, 0)] = -np.inf
    for t in (1.0, 1e46):
        assert_close(host(ga.softmin(dev(x), axis=axis, temperature=t)), ref.softmin(x, axis, t), np.float32)


def test_bfloat16():
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    x = sample((3, 40), np.float64, seed=6).astype(bf16)
    xf = x.astype(np.float64)
    y = host(ga.softmin(dev(x), temperature=2.0))
    assert y.dtype == bf16
    assert_close(y, ref.softmin(xf, temperature=2.0), bf16)
    r = host(ga.logsumexp(dev(x)))
    assert r.dtype == bf16
    assert_close(r, ref.logsumexp(xf), bf16)
    g = np.linspace(-1, 1, 3).astype(bf16)
    d = host(ga.logsumexp_backward(dev(g), dev(x), dev(r)))
    assert_close(d, ref.logsumexp_backward(g.astype(np.float64), xf, r.astype(np.float64)), bf16)
