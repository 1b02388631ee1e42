"""maxout / maxout_backward against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, sample, to_backend, to_numpy
from tolerances import DTYPES, assert_close


def _mo(x, pool, backend, **kw):
    return to_numpy(ga.maxout(to_backend(x, backend), pool, backend=backend, **kw))


def _mob(g, x, pool, backend, **kw):
    return to_numpy(ga.maxout_backward(to_backend(g, backend), to_backend(x, backend), pool,
                                       backend=backend, **kw))


def _out_shape(shape, pool, axis):
    s = list(shape)
    s[axis] //= pool
    return tuple(s)


CASES = [
    ((12,), 1, 0), ((12,), 3, -1), ((12,), 12, 0), ((4, 6), 2, -1), ((4, 6), 2, 0),
    ((4, 6), 3, 1), ((2, 6, 5), 3, 1), ((2, 6, 5), 5, -1), ((2, 6, 5), 2, 0),
    ((2, 3, 4, 6), 2, 2), ((2, 3, 4, 6), 6, 3), ((2, 3, 4, 6), 3, -3),
    ((4099,), 1, 0), ((33, 4), 4, 1), ((1023, 2), 2, -1),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_backward(backend, dtype):
    for shape, pool, axis in CASES:
        x = sample(shape, dtype, seed=pool + len(shape))
        r = _mo(x, pool, backend, axis=axis)
        oshape = _out_shape(shape, pool, axis)
        assert r.shape == oshape, (shape, pool, axis)
        assert_dtype(r, dtype)
        assert_close(r, ref.maxout(x, pool, axis=axis), dtype, msg=f"{shape} {pool} {axis}")
        g = sample(oshape, dtype, seed=99, scale=1.0, kinks=False)
        rb = _mob(g, x, pool, backend, axis=axis)
        assert rb.shape == shape
        assert_dtype(rb, dtype)
        assert_close(rb, ref.maxout_backward(g, x, pool, axis=axis), dtype)


def test_large_float32(backend):
    x = sample((1823, 781), np.float32, seed=3)
    r = _mo(x, 11, backend, axis=1)
    np.testing.assert_array_equal(r, ref.maxout(x, 11, axis=1).astype(np.float32))
    g = sample(r.shape, np.float32, seed=4, kinks=False)
    np.testing.assert_array_equal(_mob(g, x, 11, backend, axis=1),
                                  ref.maxout_backward(g, x, 11, axis=1).astype(np.float32))
    r = _mo(x, 1823, backend, axis=0)
    assert r.shape == (1, 781)
    np.testing.assert_array_equal(r, x.max(axis=0, keepdims=True))


def test_default_axis_is_last(backend):
    x = sample((3, 8), np.float64, seed=5)
    np.testing.assert_array_equal(_mo(x, 4, backend), x.reshape(3, 2, 4).max(-1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_route_to_first_maximum(backend, dtype):
    x = np.array([[1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 5.0]], dtype=dtype)
    g = np.array([[10.0, 20.0]], dtype=dtype)
    np.testing.assert_array_equal(_mo(x, 4, backend), np.array([[3.0, 5.0]], dtype=dtype))
    np.testing.assert_array_equal(
        _mob(g, x, 4, backend),
        np.array([[0, 10.0, 0, 0, 20.0, 0, 0, 0]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_groups(backend, dtype):
    x = np.array([1.0, np.nan, 3.0, 2.0, 0.0, -1.0, np.nan, np.nan, 4.0, 7.0, 5.0, np.nan],
                 dtype=dtype)
    r = _mo(x, 3, backend)
    # groups: [1 nan 3] [2 0 -1] [nan nan 4] [7 5 nan]
    assert np.isnan(r[0]) and r[1] == 2 and np.isnan(r[2]) and np.isnan(r[3])
    g = np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype)
    rb = _mob(g, x, 3, backend)
    # the first NaN counts as the maximum
    np.testing.assert_array_equal(
        rb, np.array([0, 1, 0, 2, 0, 0, 3, 0, 0, 0, 0, 4], dtype=dtype))
    np.testing.assert_array_equal(rb, ref.maxout_backward(g, x, 3).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinities(backend, dtype):
    x = np.array([-np.inf, -np.inf, -np.inf, 1.0, np.inf, 2.0, np.inf, np.inf], dtype=dtype)
    r = _mo(x, 2, backend)
    np.testing.assert_array_equal(r, np.array([-np.inf, 1.0, np.inf, np.inf], dtype=dtype))
    g = np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype)
    np.testing.assert_array_equal(_mob(g, x, 2, backend),
                                  np.array([1, 0, 0, 2, 3, 0, 4, 0], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size(backend, dtype):
    x = np.zeros((0, 4), dtype=dtype)
    r = _mo(x, 2, backend)
    assert r.shape == (0, 2)
    assert_dtype(r, dtype)
    assert _mob(np.zeros((0, 2), dtype), x, 2, backend).shape == (0, 4)
    x = np.zeros((3, 0), dtype=dtype)
    r = _mo(x, 2, backend, axis=1)
    assert r.shape == (3, 0)
    assert _mob(np.zeros((3, 0), dtype), x, 2, backend, axis=1).shape == (3, 0)


def test_pool_size_one_is_identity(backend):
    x = sample((5, 7), np.float32, seed=6)
    np.testing.assert_array_equal(_mo(x, 1, backend, axis=0), x)
    g = sample((5, 7), np.float32, seed=7, kinks=False)
    np.testing.assert_array_equal(_mob(g, x, 1, backend, axis=0), g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_axis_3d_4d(backend, dtype):
    for shape in ((4, 6, 2), (2, 4, 6, 4)):
        for axis in range(-len(shape), len(shape)):
            for pool in (1, 2):
                x = sample(shape, dtype, seed=axis + 5)
                r = _mo(x, pool, backend, axis=axis)
                assert r.shape == _out_shape(shape, pool, axis % len(shape))
                assert_close(r, ref.maxout(x, pool, axis=axis), dtype,
                             msg=f"{shape} axis={axis} pool={pool}")
                g = sample(r.shape, dtype, seed=3, kinks=False)
                assert_close(_mob(g, x, pool, backend, axis=axis),
                             ref.maxout_backward(g, x, pool, axis=axis), dtype)


def _size_cases():
    from helpers import SIZES_FULL, SIZES_SMALL

    return [pytest.param(d, n, id=f"{np.dtype(d).name}-n{n}") for d in DTYPES
            for n in (SIZES_FULL if d == np.float32 else SIZES_SMALL)]


@pytest.mark.parametrize("dtype,n", _size_cases())
def test_size_edges(backend, dtype, n):
    """n groups of 2 along the last axis, and one group of n (n > 0) along axis 0."""
    x = sample((3, 2 * n), dtype, seed=n)
    r = _mo(x, 2, backend)
    assert r.shape == (3, n)
    assert_close(r, ref.maxout(x, 2), dtype)
    g = sample((3, n), dtype, seed=n + 1, kinks=False)
    assert_close(_mob(g, x, 2, backend), ref.maxout_backward(g, x, 2), dtype)
    if n:
        x = sample((n, 3), dtype, seed=n + 2)
        r = _mo(x, n, backend, axis=0)
        assert r.shape == (1, 3)
        assert_close(r, ref.maxout(x, n, axis=0), dtype)
        g = sample((1, 3), dtype, seed=n + 3, kinks=False)
        assert_close(_mob(g, x, n, backend, axis=0), ref.maxout_backward(g, x, n, axis=0),
                     dtype)


def _spy_kernels(monkeypatch, module_name):
    """The kernels ``module._kernel`` returns during the test, recorded."""
    import importlib

    mod = importlib.import_module(module_name)
    built, orig = [], mod._kernel

    def spy(*args, **kw):
        built.append(orig(*args, **kw))
        return built[-1]

    monkeypatch.setattr(mod, "_kernel", spy)
    return built


def test_small_arrays_run_the_serial_kernel(monkeypatch):
    """Below the size cut-off of the other kernels (_launch.PARALLEL_MIN) maxout and
    its backward run on the calling thread: waking the thread pool costs more."""
    import importlib

    PARALLEL_MIN = importlib.import_module("gpu_act.backends.cpu._kernels").PARALLEL_MIN
    built = _spy_kernels(monkeypatch, "gpu_act.backends.cpu.maxout")
    for dtype in DTYPES:
        x = sample((4, 256), dtype, seed=1)
        g = sample((4, 64), dtype, seed=2, kinks=False)
        assert_close(ga.maxout(x, 4), ref.maxout(x, 4), dtype)
        assert_close(ga.maxout_backward(g, x, 4), ref.maxout_backward(g, x, 4), dtype)
    assert len(built) == 2 * len(DTYPES)
    assert not any(k.dispatcher.targetoptions.get("parallel") for k in built)
    built.clear()
    x = sample((PARALLEL_MIN // 256, 256), np.float32, seed=3)
    np.testing.assert_array_equal(ga.maxout(x, 4), ref.maxout(x, 4).astype(np.float32))
    assert len(built) == 1 and built[0].dispatcher.targetoptions.get("parallel")
