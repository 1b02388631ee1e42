"""softmax / log_softmax and their backward passes against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import (
    SIZES_FULL,
    SIZES_SMALL,
    assert_dtype,
    cancelling_backward,
    grad_fd,
    sample,
    to_backend,
    to_numpy,
)
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

FWD = {"softmax": ref.softmax, "log_softmax": ref.log_softmax}
BWD = {"softmax": ref.softmax_backward, "log_softmax": ref.log_softmax_backward}
OPS = ("softmax", "log_softmax")


def _fwd(op, x, backend, **kw):
    return to_numpy(getattr(ga, op)(to_backend(x, backend), backend=backend, **kw))


def _bwd(op, g, y, backend, **kw):
    fn = getattr(ga, op + "_backward")
    return to_numpy(fn(to_backend(g, backend), to_backend(y, backend), backend=backend, **kw))


def _row_cases():
    cases = []
    for dtype in DTYPES:
        for n in (SIZES_FULL if dtype == np.float32 else SIZES_SMALL):
            cases.append(pytest.param(dtype, n, id=f"{np.dtype(dtype).name}-n{n}"))
    return cases


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype,n", _row_cases())
def test_row_lengths(backend, op, dtype, n):
    """Rows of every size edge, reduced along the last and along the first axis."""
    for shape, axis in (((3, n), -1), ((n, 2), 0), ((n,), 0)):
        x = sample(shape, dtype, seed=n)
        r = _fwd(op, x, backend, axis=axis)
        assert r.shape == shape
        assert_dtype(r, dtype)
        assert_close(r, FWD[op](x, axis=axis), dtype, msg=f"{shape} axis={axis}")
        if x.size:
            y = FWD[op](x, axis=axis).astype(dtype)
            g = sample(shape, dtype, seed=n + 1, scale=1.0, kinks=False)
            rb = _bwd(op, g, y, backend, axis=axis)
            assert rb.shape == shape
            assert_dtype(rb, dtype)
            assert_close(rb, BWD[op](g, y, axis=axis), dtype, msg=f"bwd {shape} axis={axis}")


ND_CASES = [(shape, axis) for shape in ((3, 4, 5), (2, 3, 4, 5))
            for axis in range(-len(shape), len(shape))]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nd_every_axis(backend, op, dtype, temperature):
    for shape, axis in ND_CASES:
        x = sample(shape, dtype, seed=axis + 10)
        r = _fwd(op, x, backend, axis=axis, temperature=temperature)
        assert_dtype(r, dtype)
        expected = FWD[op](x, axis=axis, temperature=temperature)
        assert_close(r, expected, dtype, msg=f"{shape} axis={axis}")
        y = expected.astype(dtype)
        g = sample(shape, dtype, seed=axis + 20, scale=1.0, kinks=False)
        rb = _bwd(op, g, y, backend, axis=axis, temperature=temperature)
        assert_dtype(rb, dtype)
        assert_close(rb, BWD[op](g, y, axis=axis, temperature=temperature), dtype,
                     msg=f"bwd {shape} axis={axis}")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_large_2d_float32(backend, op, axis):
    x = sample((1823, 781), np.float32, seed=11)
    r = _fwd(op, x, backend, axis=axis)
    expected = FWD[op](x, axis=axis)
    assert_close(r, expected, np.float32)
    y = expected.astype(np.float32)
    g = sample((1823, 781), np.float32, seed=12, scale=1.0, kinks=False)
    assert_close(_bwd(op, g, y, backend, axis=axis), BWD[op](g, y, axis=axis), np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_large_2d_other_dtypes(backend, dtype):
    x = sample((1823, 781), dtype, seed=13)
    assert_close(_fwd("softmax", x, backend, axis=0), ref.softmax(x, axis=0), dtype)
    assert_close(_fwd("log_softmax", x, backend), ref.log_softmax(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_sum_to_one(backend, dtype):
    x = sample((37, 1025), dtype, seed=14, scale=5.0)
    for axis in (0, 1):
        y = _fwd("softmax", x, backend, axis=axis).astype(np.float64)
        # each entry carries a relative rounding error <= u, so |sum - 1| <~ u (+ tiny)
        tol = 2e-3 if dtype == np.float16 else 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=0, atol=tol)
        ly = _fwd("log_softmax", x, backend, axis=axis).astype(np.float64)
        np.testing.assert_allclose(np.exp(ly).sum(axis=axis), 1.0, rtol=0, atol=tol)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0, 10.0])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_temperature(backend, op, dtype, temperature):
    # keep x / T of moderate size: x / T is rounded in the input precision, which costs an
    # absolute error ~eps*|x/T| in log-probabilities (ill-conditioning, not a kernel error)
    x = (sample((6, 33), np.float64, seed=15) * min(1.0, temperature * 2)).astype(dtype)
    r = _fwd(op, x, backend, temperature=temperature)
    assert_close(r, FWD[op](x, temperature=temperature), dtype)
    y = FWD[op](x, temperature=temperature).astype(dtype)
    g = sample((6, 33), dtype, seed=16, scale=1.0, kinks=False)
    assert_close(_bwd(op, g, y, backend, temperature=temperature),
                 BWD[op](g, y, temperature=temperature), dtype)


def test_temperature_is_scaling_float64(backend):
    x = sample((5, 17), np.float64, seed=17)
    for t in (0.3, 4.0):
        assert_close(_fwd("softmax", x, backend, temperature=t),
                     _fwd("softmax", x / t, backend), np.float64)
        assert_close(_fwd("log_softmax", x, backend, temperature=t),
                     _fwd("log_softmax", x / t, backend), np.float64)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dim(backend, op, dtype):
    expected = 1.0 if op == "softmax" else 0.0
    for axis in (0, -1):
        for v in (3.0, -2.5, 0.0):
            r = _fwd(op, np.array(v, dtype=dtype), backend, axis=axis)
            assert r.shape == ()
            assert_dtype(r, dtype)
            assert float(r) == expected
        y = np.array(expected, dtype=dtype)
        rb = _bwd(op, np.array(1.5, dtype=dtype), y, backend, axis=axis)
        assert rb.shape == ()
        assert_dtype(rb, dtype)
        # a single-element row has zero gradient
        assert_close(rb, BWD[op](np.array(1.5), y, axis=axis), dtype)
        assert float(rb) == 0.0
    # the default axis (-1) works for 0-d too
    assert float(_fwd(op, np.array(1.0, dtype=dtype), backend)) == expected


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size(backend, op, dtype):
    for shape, axis in (((0,), 0), ((0,), -1), ((0, 5), 0), ((0, 5), 1), ((5, 0), 1),
                        ((5, 0), 0), ((2, 0, 3), 1), ((2, 0, 3), -1)):
        x = np.zeros(shape, dtype=dtype)
        r = _fwd(op, x, backend, axis=axis)
        assert r.shape == shape
        assert_dtype(r, dtype)
        rb = _bwd(op, x, x, backend, axis=axis)
        assert rb.shape == shape
        assert_dtype(rb, dtype)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op", OPS)
def test_backward_finite_differences(backend, op, axis, temperature):
    """d/dx sum(g * f(x)) == f_backward(g, f(x)) in float64, by central differences."""
    x = sample((3, 5, 4), np.float64, seed=21, kinks=False)
    g = sample((3, 5, 4), np.float64, seed=22, scale=1.0, kinks=False)
    y = _fwd(op, x, backend, axis=axis, temperature=temperature)
    r = _bwd(op, g, y, backend, axis=axis, temperature=temperature)

    def loss(v):
        return np.sum(g * _fwd(op, v, backend, axis=axis, temperature=temperature))

    fd = grad_fd(loss, x)
    assert_close(r, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)
    # the reference backward agrees with FD of the reference forward as well
    fd_ref = grad_fd(lambda v: np.sum(g * FWD[op](v, axis=axis, temperature=temperature)), x)
    assert_close(BWD[op](g, FWD[op](x, axis=axis, temperature=temperature), axis=axis,
                         temperature=temperature),
                 fd_ref, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_backward_formulas_exact(backend):
    """The documented formulas: y*(g - sum(g*y))/T and (g - exp(y)*sum(g))/T."""
    y = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    g = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
    t = 2.0
    dot = (g * y).sum(-1, keepdims=True)
    assert_close(_bwd("softmax", g, y, backend, temperature=t), y * (g - dot) / t, np.float64)
    ly = np.log(y)
    assert_close(_bwd("log_softmax", g, ly, backend, temperature=t),
                 (g - y * g.sum(-1, keepdims=True)) / t, np.float64)


def test_known_values(backend):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp([1.0, 2.0, 3.0])
    expected = np.array([e / e.sum(), [1 / 3] * 3])
    assert_close(_fwd("softmax", x, backend), expected, np.float64)
    assert_close(_fwd("log_softmax", x, backend), np.log(expected), np.float64)
    assert_close(_fwd("softmax", x.T, backend, axis=0), expected.T, np.float64)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_where_the_row_sum_cancels(backend, dtype, log):
    g, y = cancelling_backward(16, 4096, dtype, seed=3, log=log)
    bwd, rbwd = (
        (ga.log_softmax_backward, ref.log_softmax_backward) if log else (ga.softmax_backward, ref.softmax_backward)
    )
    assert_close(to_numpy(bwd(to_backend(g, backend), to_backend(y, backend), backend=backend)), rbwd(g, y), dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e46, 1e300, 1e308])
def test_huge_temperature_with_minus_inf_entries(backend, dtype, temperature):
    # 1/T underflows to 0 in the compute dtype: -inf entries still get probability 0, not NaN
    x = np.array([[1.0, -np.inf, 1.0, 5.0], [-np.inf, 2.0, -np.inf, -np.inf]], dtype)
    y = to_numpy(ga.softmax(to_backend(x, backend), temperature=temperature, backend=backend))
    assert_close(y, [[1 / 3, 0.0, 1 / 3, 1 / 3], [0.0, 1.0, 0.0, 0.0]], dtype)
    ly = to_numpy(ga.log_softmax(to_backend(x, backend), temperature=temperature, backend=backend))
    with np.errstate(divide="ignore"):
        assert_close(ly, np.log([[1 / 3, 0.0, 1 / 3, 1 / 3], [0.0, 1.0, 0.0, 0.0]]), dtype)


@pytest.mark.parametrize("dtype,smallest", [(np.float16, 2.94e-39), (np.float32, 2.94e-39), (np.float64, 5.56e-309)])
def test_temperature_whose_inverse_overflows_is_refused(backend, dtype, smallest):
    # the kernels scale by 1/T in the compute type: a T whose 1/T is inf there is refused, naming the bound
    x = to_backend(np.array([1.0, -np.inf, 2.0], dtype), backend)
    for fn in (ga.softmax, ga.log_softmax):
        with pytest.raises(ValueError, match=f"expected temperature >= {smallest:.3g}"):
            fn(x, temperature=smallest / 2, backend=backend)
        fn(x, temperature=smallest * 1.01, backend=backend)  # just above the bound: accepted
    with pytest.raises(ValueError, match="temperature"):
        ga.softmax_backward(x, x, temperature=smallest / 2, backend=backend)
