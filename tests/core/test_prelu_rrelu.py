"""prelu and rrelu (eval and training) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, sample, to_backend, to_numpy
from tolerances import DTYPES, assert_close

# --------------------------------------------------------------------------- prelu


def _prelu(x, w, backend):
    return to_numpy(ga.prelu(to_backend(x, backend), to_backend(w, backend), backend=backend))


def _prelu_bwd(g, x, w, backend):
    gx, gw = ga.prelu_backward(to_backend(g, backend), to_backend(x, backend),
                               to_backend(w, backend), backend=backend)
    return to_numpy(gx), to_numpy(gw)


PRELU_CASES = [
    ((), (1,)), ((17,), (1,)), ((17,), ()), ((6, 4), (4,)), ((6, 4), (1,)),
    ((5, 3, 7), (3,)), ((2, 5, 3, 4), (5,)), ((2, 5, 3, 4), (1,)), ((3, 1, 4), (1,)),
    ((0, 3), (3,)), ((4, 3, 0), (3,)), ((64, 8, 9), (8,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu(backend, dtype):
    for xshape, wshape in PRELU_CASES:
        x = sample(xshape, dtype, seed=len(xshape))
        w = (np.random.default_rng(1).uniform(-0.5, 1.5, size=wshape)).astype(dtype)
        r = _prelu(x, w, backend)
        assert r.shape == x.shape
        assert_dtype(r, dtype)
        assert_close(r, ref.prelu(x, w), dtype, msg=f"{xshape} w{wshape}")
        g = sample(xshape, dtype, seed=7, scale=1.0, kinks=False)
        gx, gw = _prelu_bwd(g, x, w, backend)
        egx, egw = ref.prelu_backward(g, x, w)
        assert gx.shape == x.shape and gw.shape == w.shape, (gx.shape, gw.shape)
        assert_dtype(gx, dtype)
        assert_dtype(gw, dtype)
        assert_close(gx, egx, dtype, msg=f"grad_x {xshape} w{wshape}")
        assert_close(gw, egw, dtype, msg=f"grad_w {xshape} w{wshape}")


def test_prelu_known_values(backend):
    x = np.array([[-2.0, 0.0, 3.0], [-1.0, -4.0, 5.0]])  # channel axis 1 (3 channels)
    w = np.array([0.5, 2.0, -1.0])
    np.testing.assert_array_equal(_prelu(x, w, backend),
                                  [[-1.0, 0.0, 3.0], [-0.5, -8.0, 5.0]])
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    gx, gw = _prelu_bwd(g, x, w, backend)
    # prelu'(0) = weight; x > 0 passes g through
    np.testing.assert_array_equal(gx, [[0.5, 4.0, 3.0], [2.0, 10.0, 6.0]])
    # grad_w[c] = sum over x <= 0 of g * x
    np.testing.assert_array_equal(gw, [1 * -2.0 + 4 * -1.0, 2 * 0.0 + 5 * -4.0, 0.0])


def test_prelu_single_weight_broadcasts_everywhere(backend):
    x = sample((3, 4, 5), np.float64, seed=3)
    a = _prelu(x, np.array([0.25]), backend)
    np.testing.assert_array_equal(a, np.where(x > 0, x, 0.25 * x))
    g = np.ones_like(x)
    _, gw = _prelu_bwd(g, x, np.array([0.25]), backend)
    assert gw.shape == (1,)
    assert_close(gw, np.array([np.sum(np.where(x > 0, 0, x))]), np.float64)


def test_prelu_nan(backend):
    x = np.array([[np.nan, 1.0], [-1.0, np.nan]])
    r = _prelu(x, np.array([0.1, 0.2]), backend)
    assert np.isnan(r[0, 0]) and np.isnan(r[1, 1])
    assert r[0, 1] == 1.0 and r[1, 0] == -0.1


# --------------------------------------------------------------------------- rrelu

M64 = (1 << 64) - 1


def _mix64_py(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _u_py(seed, i):
    return float(_mix64_py((_mix64_py(seed) + i) & M64) >> 11) * 2.0 ** -53


def test_reference_generator_selfcheck():
    # splitmix64's first output for state 0 is the well-known 0xE220A8397B1DCDAF
    assert int(ref.mix64(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF
    for seed in (0, 1, 12345, 2**63, 2**64 - 1):
        u = ref.rrelu_uniforms((50,), seed)
        expected = [_u_py(seed, i) for i in range(50)]
        np.testing.assert_array_equal(u, expected)


def _rrelu(x, backend, *args, **kw):
    return to_numpy(ga.rrelu(to_backend(x, backend), *args, backend=backend, **kw))


def _rrelu_bwd(g, x, backend, *args, **kw):
    return to_numpy(ga.rrelu_backward(to_backend(g, backend), to_backend(x, backend), *args,
                                      backend=backend, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rrelu_eval(backend, dtype):
    for shape in [(), (33,), (5, 7), (2, 3, 4, 5), (0, 3)]:
        x = sample(shape, dtype, seed=len(shape))
        assert_close(_rrelu(x, backend), ref.rrelu(x), dtype)
        r = _rrelu(x, backend, 0.1, 0.5)
        assert_dtype(r, dtype)
        assert_close(r, ref.rrelu(x, 0.1, 0.5), dtype)
        g = sample(shape, dtype, seed=9, scale=1.0, kinks=False)
        rb = _rrelu_bwd(g, x, backend, 0.1, 0.5)
        assert_dtype(rb, dtype)
        assert_close(rb, ref.rrelu_backward(g, x, 0.1, 0.5), dtype)


def test_rrelu_eval_slope_and_kink(backend):
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(_rrelu(x, backend), [-2.0 * (1 / 8 + 1 / 3) / 2, 0.0, 3.0],
                               rtol=1e-15)
    # rrelu'(0) = slope
    rb = _rrelu_bwd(np.ones(3), x, backend, 0.2, 0.4)
    np.testing.assert_allclose(rb, [0.3, 0.3, 1.0], rtol=1e-15)
    # eval ignores the seed
    np.testing.assert_array_equal(_rrelu(x, backend, seed=5), _rrelu(x, backend, seed=6))


SEEDS = [0, 1, 12345, 2**63 + 17, 2**64 - 1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rrelu_training(backend, dtype, seed):
    for shape in [(33,), (4, 1025), (2, 3, 4, 5)]:
        x = sample(shape, dtype, seed=3)
        r = _rrelu(x, backend, 0.05, 0.4, training=True, seed=seed)
        assert_dtype(r, dtype)
        assert_close(r, ref.rrelu(x, 0.05, 0.4, training=True, seed=seed), dtype)
        g = sample(shape, dtype, seed=4, scale=1.0, kinks=False)
        rb = _rrelu_bwd(g, x, backend, 0.05, 0.4, training=True, seed=seed)
        assert_dtype(rb, dtype)
        assert_close(rb, ref.rrelu_backward(g, x, 0.05, 0.4, training=True, seed=seed), dtype)


def test_rrelu_training_slopes_exact_generator(backend):
    """With x = -1 the output is -slope: check against a pure-Python generator."""
    lower, upper, seed = 0.1, 0.6, 987654321
    x = -np.ones(64)
    r = _rrelu(x, backend, lower, upper, training=True, seed=seed)
    expected = np.array([-(lower + (upper - lower) * _u_py(seed, i)) for i in range(64)])
    assert_close(r, expected, np.float64)
    # backward regenerates the same slopes; rrelu'(0) is the slope too
    z = np.zeros(64)
    rb = _rrelu_bwd(np.ones(64), z, backend, lower, upper, training=True, seed=seed)
    assert_close(rb, -expected, np.float64)


def test_rrelu_training_slope_range_and_mean(backend):
    lower, upper = 0.125, 1.0 / 3.0
    n = 200_003
    x = -np.ones(n)
    slopes = -_rrelu(x, backend, lower, upper, training=True, seed=42)
    assert np.all(slopes >= lower) and np.all(slopes <= upper)
    # mean of U(lower, upper): standard error (upper-lower)/sqrt(12 n) ~ 1.3e-4
    assert abs(slopes.mean() - (lower + upper) / 2) < 1e-3
    # and spread over the whole interval
    assert slopes.min() < lower + 1e-3 and slopes.max() > upper - 1e-3
    # positives pass through
    np.testing.assert_array_equal(_rrelu(np.ones(10), backend, lower, upper, training=True,
                                         seed=42), np.ones(10))


def test_rrelu_training_seeds(backend):
    x = sample((1000,), np.float32, seed=5)
    a = _rrelu(x, backend, training=True, seed=7)
    b = _rrelu(x, backend, training=True, seed=7)
    c = _rrelu(x, backend, training=True, seed=8)
    np.testing.assert_array_equal(a, b)
    neg = x < 0
    assert np.mean(a[neg] != c[neg]) > 0.9
    # training differs from eval
    e = _rrelu(x, backend)
    assert np.mean(a[neg] != e[neg]) > 0.9


def test_rrelu_flat_index_is_logical_c_order(backend):
    x = sample((37, 29), np.float64, seed=6)
    xt = x.T  # a Fortran-ordered view: its own C-order indices count
    r = _rrelu(xt, backend, training=True, seed=11)
    expected = ref.rrelu(np.ascontiguousarray(xt), training=True, seed=11)
    assert_close(r, expected, np.float64)
    np.testing.assert_array_equal(
        r, _rrelu(np.ascontiguousarray(xt), backend, training=True, seed=11))
    # and the result is NOT just the transpose of rrelu(x)
    assert not np.array_equal(r, _rrelu(x, backend, training=True, seed=11).T)
    g = sample((29, 37), np.float64, seed=7, kinks=False)
    assert_close(_rrelu_bwd(g, xt, backend, training=True, seed=11),
                 ref.rrelu_backward(g, np.ascontiguousarray(xt), training=True, seed=11),
                 np.float64)


def _size_cases():
    from helpers import SIZES_FULL, SIZES_SMALL

    return [pytest.param(d, n, id=f"{np.dtype(d).name}-n{n}") for d in DTYPES
            for n in (SIZES_FULL if d == np.float32 else SIZES_SMALL)]


@pytest.mark.parametrize("dtype,n", _size_cases())
def test_size_edges(backend, dtype, n):
    x = sample((n,), dtype, seed=n)
    g = sample((n,), dtype, seed=n + 1, scale=1.0, kinks=False)
    w = np.array([0.3], dtype=dtype)
    assert_close(_prelu(x, w, backend), ref.prelu(x, w), dtype)
    gx, gw = _prelu_bwd(g, x, w, backend)
    egx, egw = ref.prelu_backward(g, x, w)
    assert_close(gx, egx, dtype)
    assert_close(gw, egw, dtype)
    _check_rrelu_sizes(x, g, n, dtype, backend)
    # per-channel weights with the size edge as the channel count (n = 0: see below)
    if n == 0:
        return
    xc = sample((2, n, 3), dtype, seed=n + 2)
    gc = sample((2, n, 3), dtype, seed=n + 3, scale=1.0, kinks=False)
    wc = np.linspace(-0.5, 0.5, n).astype(dtype)
    assert_close(_prelu(xc, wc, backend), ref.prelu(xc, wc), dtype)
    gx, gw = _prelu_bwd(gc, xc, wc, backend)
    egx, egw = ref.prelu_backward(gc, xc, wc)
    assert_close(gx, egx, dtype)
    assert_close(gw, egw, dtype)


def _check_rrelu_sizes(x, g, n, dtype, backend):
    assert_close(_rrelu(x, backend), ref.rrelu(x), dtype)
    assert_close(_rrelu(x, backend, training=True, seed=n), ref.rrelu(x, training=True, seed=n),
                 dtype)
    assert_close(_rrelu_bwd(g, x, backend, 0.1, 0.2, training=True, seed=n),
                 ref.rrelu_backward(g, x, 0.1, 0.2, training=True, seed=n), dtype)


def test_prelu_zero_channels(backend):
    """x with 0 channels takes 0 per-channel weights: empty result, empty weight grad."""
    x = np.zeros((2, 0, 3), np.float32)
    w = np.zeros((0,), np.float32)
    r = _prelu(x, w, backend)
    assert r.shape == (2, 0, 3)
    gx, gw = _prelu_bwd(x, x, w, backend)
    assert gx.shape == (2, 0, 3) and gw.shape == (0,)
    # a single weight is fine too
    gx, gw = _prelu_bwd(x, x, np.array([0.5], np.float32), backend)
    assert gx.shape == (2, 0, 3) and gw.shape == (1,) and gw[0] == 0


def test_small_rrelu_training_runs_serial_kernels(monkeypatch):
    """The training slopes and the kernel that applies them run on the calling thread
    below the size cut-off of the other kernels (_launch.PARALLEL_MIN), in parallel above."""
    import importlib

    launch = importlib.import_module("gpu_act.backends.cpu._kernels")
    ew = importlib.import_module("gpu_act.backends.cpu.elementwise")
    chosen = []

    def spy(size):
        chosen.append(launch.decorator(size))
        return chosen[-1]

    monkeypatch.setattr(ew, "decorator", spy)
    x = sample((4, 256), np.float32, seed=1)
    assert_close(ga.rrelu(x, training=True, seed=3), ref.rrelu(x, training=True, seed=3), np.float32)
    g = sample((4, 256), np.float32, seed=2, kinks=False)
    assert_close(ga.rrelu_backward(g, x, training=True, seed=3), ref.rrelu_backward(g, x, training=True, seed=3), np.float32)
    assert len(chosen) == 4 and all(how is launch.kernel_jit for how in chosen)  # slopes and kernel, twice
    slopes = launch._built[("slopes", np.dtype(np.float32), launch.kernel_jit)]
    assert not slopes.dispatcher.targetoptions.get("parallel")
    chosen.clear()
    x = sample((launch.PARALLEL_MIN // 256, 256), np.float32, seed=4)
    assert_close(ga.rrelu(x, training=True, seed=3), ref.rrelu(x, training=True, seed=3), np.float32)
    assert chosen == [launch.kernel_pjit, launch.kernel_pjit]
