"""softmin (softmax of -x/T) and its backward pass against the float64 reference and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close


def _fwd(x, backend, **kw):
    return to_numpy(ga.softmin(to_backend(x, backend), backend=backend, **kw))


def _bwd(g, y, backend, **kw):
    return to_numpy(ga.softmin_backward(to_backend(g, backend), to_backend(y, backend), backend=backend, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_the_reference(backend, dtype):
    # contiguous rows (the CPU's direct path for float32/64, buffered for float16) and a strided axis
    for shape, axis in (((4, 33), -1), ((33, 4), 0)):
        x = sample(shape, dtype, seed=1)
        for t in (1.0, 0.7):
            y = _fwd(x, backend, axis=axis, temperature=t)
            assert_dtype(y, dtype)
            assert_close(y, ref.softmin(x, axis, t), dtype, msg=f"{shape} axis={axis} T={t}")
            g = sample(shape, dtype, seed=2, scale=1.0, kinks=False)
            yq = y.astype(dtype)
            d = _bwd(g, yq, backend, axis=axis, temperature=t)
            assert_dtype(d, dtype)
            assert_close(d, ref.softmin_backward(g, yq, axis, t), dtype, msg=f"bwd {shape} axis={axis} T={t}")


def test_long_float16_rows(backend):
    # longer than the e^{d} the CPU keeps per row: the rest is computed again from the negated loads
    x = sample((1, 20_000), np.float16, seed=3)
    assert_close(_fwd(x, backend), ref.softmin(x), np.float16)


def test_special_values(backend):
    # softmax's rules on -x: +inf entries of a finite row get 0, a -inf entry (+inf in -x),
    # a row of only +inf (only -inf in -x) or a NaN make the row NaN; huge values do not overflow
    x = np.array(
        [
            [1.0, np.inf, 2.0, 3.0],
            [1.0, -np.inf, 2.0, 3.0],
            [np.inf, np.inf, np.inf, np.inf],
            [np.nan, 1.0, 2.0, 3.0],
            [-1e30, 1e30, 0.0, -1e30],
        ],
        np.float32,
    )
    y = _fwd(x, backend)
    assert_close(y, ref.softmin(x), np.float32)
    assert (y[0, 1] == 0) and np.isnan(y[1:4]).all()
    assert_close(y[4], [0.5, 0.0, 0.0, 0.5], np.float32)
    # 1/T rounds to 0: every finite entry the same weight, +inf entries still 0
    assert_close(_fwd(x[:1], backend, temperature=1e46), [[1 / 3, 0, 1 / 3, 1 / 3]], np.float32)


@pytest.mark.parametrize("axis,temperature", [(-1, 1.0), (0, 0.6)])
def test_backward_finite_differences(backend, axis, temperature):
    x = sample((3, 5, 4), np.float64, seed=4, kinks=False)
    g = sample((3, 5, 4), np.float64, seed=5, scale=1.0, kinks=False)
    y = _fwd(x, backend, axis=axis, temperature=temperature)
    d = _bwd(g, y, backend, axis=axis, temperature=temperature)
    fd = grad_fd(lambda v: np.sum(g * _fwd(v, backend, axis=axis, temperature=temperature)), x)
    assert_close(d, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_in_place_and_0d(backend):
    x = sample((5, 8), np.float64, seed=6)
    expected = ref.softmin(x, 0)
    assert ga.softmin(x, 0, out=x) is x
    assert_close(x, expected, np.float64)
    assert float(_fwd(np.array(3.0), backend)) == 1.0
    assert float(_bwd(np.array(2.0), np.array(1.0), backend)) == 0.0


def test_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = sample((5, 40), np.float64, seed=7).astype(bf16)
    y = ga.softmin(x, temperature=2.0)
    assert y.dtype == bf16
    assert_close(y, ref.softmin(x.astype(np.float64), temperature=2.0), bf16)
    g = sample((5, 40), np.float64, seed=8).astype(bf16)
    d = ga.softmin_backward(g, y, temperature=2.0)
    assert_close(d, ref.softmin_backward(g.astype(np.float64), y.astype(np.float64), temperature=2.0), bf16)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = sample((4, 9), np.float32, seed=9)
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.softmin(xt, dim=1)
    g = torch.linspace(-1.0, 1.0, 36).reshape(4, 9)
    y.backward(g)
    ours = ga.softmin(x, 1)
    assert_close(ours, y.detach().double().numpy(), np.float32)
    assert_close(ga.softmin_backward(g.numpy(), ours, 1), xt.grad.double().numpy(), np.float32)
