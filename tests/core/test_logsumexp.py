"""logsumexp and its backward pass against the float64 reference, SciPy and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close


def _lse(x, backend, **kw):
    return to_numpy(ga.logsumexp(to_backend(x, backend), backend=backend, **kw))


def _bwd(g, x, r, backend, **kw):
    return to_numpy(
        ga.logsumexp_backward(to_backend(g, backend), to_backend(x, backend), to_backend(r, backend), backend=backend, **kw)
    )


# (shape, axis): contiguous rows, a strided axis, the middle axis of three
LAYOUTS = [((3, 33), -1), ((33, 3), 0), ((2, 5, 4), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_the_reference(backend, dtype):
    for shape, axis in LAYOUTS:
        x = sample(shape, dtype, seed=len(shape) + axis)
        for t, keepdims in ((1.0, False), (0.7, True)):
            r = _lse(x, backend, axis=axis, temperature=t, keepdims=keepdims)
            expected = ref.logsumexp(x, axis, keepdims, t)
            assert r.shape == expected.shape
            assert_dtype(r, dtype)
            assert_close(r, expected, dtype, msg=f"{shape} axis={axis} T={t}")


SPECIAL_ROWS = np.array(
    [
        [1.0, np.nan, 2.0, 3.0],
        [1.0, np.inf, 2.0, 3.0],
        [np.nan, np.inf, -np.inf, 0.0],
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [-np.inf, 1.0, -np.inf, 2.0],
        [np.inf, np.inf, -np.inf, 0.0],
        [-1e30, 1e30, 0.0, 1e30],
        [5.0, 5.0, 5.0, 5.0],
    ]
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_scipy_on_special_rows(backend, dtype):
    # SciPy's rules: NaN -> NaN, else +inf -> +inf, only -inf -> -inf; no overflow at 1e30
    x = SPECIAL_ROWS.astype(dtype)
    with np.errstate(all="ignore"):
        expected = special.logsumexp(x.astype(np.float64), axis=1)
    assert_close(_lse(x, backend), expected, dtype)
    assert_close(_lse(np.ascontiguousarray(x.T), backend, axis=0), expected, dtype)
    # a long row of one sign of infinity and a NaN at its end (the NaN after the infinite max)
    long = np.full((2, 3000), -np.inf, dtype)
    long[0, 7], long[1, 7], long[1, -1] = np.inf, np.inf, np.nan
    assert_close(_lse(long, backend), [np.inf, np.nan], dtype)


def test_float16_large_values_do_not_overflow(backend):
    x = np.array([[100.0, 100.0, -100.0], [60000.0, 0.0, -60000.0]], np.float16)
    assert_close(_lse(x, backend), special.logsumexp(x.astype(np.float64), axis=1), np.float16)


def test_matches_scipy_with_temperature(backend):
    x = sample((4, 50), np.float64, seed=3)
    for t in (0.25, 3.0):
        assert_close(_lse(x, backend, temperature=t), t * special.logsumexp(x / t, axis=1), np.float64)


def test_long_rows(backend):
    # float32 rows long enough that a sum of float32 terms one after another would drift
    x = sample((2, 100_000), np.float32, seed=4, kinks=False)
    assert_close(_lse(x, backend), ref.logsumexp(x), np.float32)
    assert_close(_lse(np.ascontiguousarray(x.T), backend, axis=0), ref.logsumexp(x), np.float32)


def test_huge_temperature(backend):
    # 1/T below float32's smallest normal number: every finite entry weighs 1, -inf entries 0
    x = np.array([[1.0, -np.inf, 2.0, 3.0]], np.float32)
    expected = 3.0 + 1e38 * np.log(3.0)
    assert_close(_lse(x, backend, temperature=1e38), [np.float64(expected)], np.float32)
    assert_close(_lse(x, backend, temperature=1e38 / np.log(3.0) / 2), [1e38 / 2 + 3.0], np.float32)


def test_empty_rows_zero_size_and_0d(backend):
    # the log of an empty sum is -inf (SciPy's); zero rows give an empty result
    for shape, axis, keepdims, want in (((3, 0), 1, False, (3,)), ((3, 0), 1, True, (3, 1)), ((0, 4), 1, False, (0,)),
                                        ((2, 0, 3), 1, False, (2, 3)), ((0, 4), 0, True, (1, 4))):
        r = _lse(np.zeros(shape, np.float32), backend, axis=axis, keepdims=keepdims)
        assert r.shape == want and r.dtype == np.float32
        assert (r == -np.inf).all()
    for keepdims in (False, True):
        r = _lse(np.array(2.5, np.float64), backend, keepdims=keepdims)
        assert r.shape == () and float(r) == 2.5


def test_out_and_keepdims(backend):
    x = sample((5, 8), np.float32, seed=5)
    out = np.full(10, 7.0, np.float32)[::2]  # a strided out
    r = ga.logsumexp(x, out=out)
    assert r is out and np.all(np.asarray(np.full(10, 7.0, np.float32)[1::2]) == 7.0)
    assert_close(out, ref.logsumexp(x), np.float32)
    outk = np.empty((1, 8), np.float32)
    assert ga.logsumexp(x, axis=0, keepdims=True, out=outk) is outk
    assert_close(outk, ref.logsumexp(x, 0, True), np.float32)


def test_bfloat16(backend):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = sample((6, 40), np.float64, seed=6)
    x[0, 3], x[1, :] = np.inf, -np.inf
    xb = x.astype(bf16)
    xf = xb.astype(np.float64)
    for axis in (-1, 0):
        r = _lse(xb, backend, axis=axis, temperature=0.5)
        assert r.dtype == bf16
        assert_close(r, ref.logsumexp(xf, axis, temperature=0.5), bf16)
    r = ga.logsumexp(xb, keepdims=True)
    g = sample((6, 1), np.float64, seed=7).astype(bf16)
    d = ga.logsumexp_backward(g, xb, r, keepdims=True)
    assert d.dtype == bf16
    assert_close(d, ref.logsumexp_backward(g.astype(np.float64), xf, r.astype(np.float64), keepdims=True), bf16)


# ---------------------------------------------------------------- backward
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_against_the_reference(backend, dtype):
    for shape, axis in LAYOUTS:
        x = sample(shape, dtype, seed=11)
        for t, keepdims in ((1.0, False), (0.6, True)):
            r = _lse(x, backend, axis=axis, temperature=t, keepdims=keepdims)
            g = sample(r.shape, dtype, seed=12, kinks=False)
            d = _bwd(g, x, r, backend, axis=axis, temperature=t, keepdims=keepdims)
            assert d.shape == x.shape
            assert_dtype(d, dtype)
            assert_close(d, ref.logsumexp_backward(g, x, r, axis, keepdims, t), dtype, msg=f"{shape} axis={axis}")


@pytest.mark.parametrize("axis,temperature", [(-1, 1.0), (0, 0.6), (1, 2.0)])
def test_backward_finite_differences(backend, axis, temperature):
    """d/dx sum(g * logsumexp(x)) == logsumexp_backward(g, x, logsumexp(x)) in float64."""
    x = sample((3, 5, 4), np.float64, seed=21, kinks=False)
    r = _lse(x, backend, axis=axis, temperature=temperature)
    g = sample(r.shape, np.float64, seed=22, kinks=False)
    d = _bwd(g, x, r, backend, axis=axis, temperature=temperature)
    fd = grad_fd(lambda v: np.sum(g * _lse(v, backend, axis=axis, temperature=temperature)), x)
    assert_close(d, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)
    fd_ref = grad_fd(lambda v: np.sum(g * ref.logsumexp(v, axis, temperature=temperature)), x)
    assert_close(ref.logsumexp_backward(g, x, ref.logsumexp(x, axis, temperature=temperature), axis,
                                        temperature=temperature), fd_ref, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_backward_is_the_softmax(backend):
    x = sample((4, 9), np.float64, seed=23)
    d = _bwd(np.ones(4), x, _lse(x, backend, temperature=0.5), backend, temperature=0.5)
    assert_close(d, special.softmax(x / 0.5, axis=1), np.float64)


def test_backward_rows_without_a_finite_result_are_nan(backend):
    x = SPECIAL_ROWS[:6].astype(np.float32)
    r = _lse(x, backend)
    d = _bwd(np.ones(6, np.float32), x, r, backend)
    assert np.isnan(d[:4]).all() and np.isnan(d[5]).all()  # NaN, +inf, all -inf rows: softmax is NaN
    assert_close(d[4], [0.0, 1 / (1 + np.e), 0.0, np.e / (1 + np.e)], np.float32)  # -inf entries of a finite row


def test_backward_in_place_zero_size_and_0d(backend):
    x = sample((4, 6), np.float64, seed=24)
    r = ga.logsumexp(x)
    g = sample((4,), np.float64, seed=25)
    expected = ref.logsumexp_backward(g, x, r)
    assert ga.logsumexp_backward(g, x, r, out=x) is x
    assert_close(x, expected, np.float64)
    z = np.zeros((0, 3), np.float32)
    assert _bwd(np.zeros(0, np.float32), z, np.zeros(0, np.float32), backend).shape == (0, 3)
    assert _bwd(np.zeros((3,), np.float32), np.zeros((3, 0), np.float32), np.full(3, -np.inf, np.float32),
                backend).shape == (3, 0)
    d = _bwd(np.array(1.5), np.array(2.0), np.array(2.0), backend)
    assert d.shape == () and float(d) == 1.5


# ---------------------------------------------------------------- PyTorch
def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = sample((5, 7), np.float32, seed=31)
    xt = torch.tensor(x, requires_grad=True)
    y = torch.logsumexp(xt, dim=0)
    g = torch.linspace(-1.0, 2.0, 7)
    y.backward(g)
    r = ga.logsumexp(x, axis=0)
    assert_close(r, y.detach().double().numpy(), np.float32)
    assert_close(ga.logsumexp_backward(g.numpy(), x, r, axis=0), xt.grad.double().numpy(), np.float32)
