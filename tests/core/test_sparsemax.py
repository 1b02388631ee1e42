"""sparsemax and sparsemax_backward through the public API, against the
independent sort-based float64 reference (in reference.py), on every
available backend: row lengths (one 262,144-column row), every axis, layouts,
out= and in place, the special rows, finite differences and PyTorch's
sort-based composition, properties, bad input, and Dask arrays (split axes
never gathered)."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

inf, nan = np.inf, np.nan


def _fwd(x, backend, **kw):
    return to_numpy(ga.sparsemax(to_backend(x, backend), backend=backend, **kw))


def _bwd(g, y, backend, **kw):
    return to_numpy(ga.sparsemax_backward(to_backend(g, backend), to_backend(y, backend), backend=backend, **kw))


def _bfloat16():
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


def _f64(a):
    return np.asarray(a).astype(np.float64)


def _check(backend, x, axis=-1, g=None):
    """Forward against the reference, then backward from the forward's output."""
    dtype = x.dtype
    y = _fwd(x, backend, axis=axis)
    assert y.shape == x.shape
    assert_dtype(y, dtype)
    assert_close(y, ref.sparsemax(_f64(x), axis=axis), dtype, msg=f"forward {x.shape} axis={axis}")
    if g is None:
        g = sample(x.shape, np.float64, seed=x.size, scale=1.0, kinks=False).astype(dtype)
    dx = _bwd(g, y, backend, axis=axis)
    assert_dtype(dx, dtype)
    assert_close(dx, ref.sparsemax_backward(_f64(g), _f64(y), axis=axis), dtype, msg=f"backward {x.shape} axis={axis}")
    return y


# ---------------------------------------------------------------- rows, dtypes, axes
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_lengths(backend, dtype):
    for n in (1, 2, 33, 1025):
        _check(backend, sample((3, n), dtype, seed=n))


def test_bfloat16(backend):
    bf16 = _bfloat16()
    x = sample((4, 37), np.float64, seed=5)
    x[1, :4] = [nan, 1.0, 2.0, 3.0]
    x[2, :3] = [inf, -inf, inf]
    x[3, :3] = [1e30, 1e30, -1e30]
    _check(backend, x.astype(bf16))


def test_one_long_row_float32(backend):
    # 262,144 columns: the row sum and the support's count across a long row
    x = sample((1, 1 << 18), np.float32, seed=7, scale=4.0)
    y = _check(backend, x)
    np.testing.assert_allclose(y.astype(np.float64).sum(), 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_axis(backend, dtype):
    shape = (3, 4, 5)
    for axis in range(-3, 3):
        _check(backend, sample(shape, dtype, seed=axis + 10), axis=axis)


def test_zero_d_and_zero_size(backend):
    for v, want in ((3.0, 1.0), (-1e30, 1.0), (inf, 1.0), (-inf, nan), (nan, nan)):
        y = _fwd(np.array(v, np.float32), backend)
        assert y.shape == ()
        np.testing.assert_array_equal(y, np.float32(want))
        # a row of one: the gradient is g - g = 0
        assert float(_bwd(np.array(2.5, np.float32), np.array(1.0, np.float32), backend)) == 0.0
    for shape, axis in (((0,), 0), ((0, 5), 1), ((5, 0), 1), ((2, 0, 3), 0)):
        x = np.zeros(shape, np.float32)
        assert _fwd(x, backend, axis=axis).shape == shape
        assert _bwd(x, x, backend, axis=axis).shape == shape


# ---------------------------------------------------------------- special rows
def test_special_rows(backend):
    rows = [
        ([1.0, 1.0, 0.5, 0.5], [0.5, 0.5, 0.0, 0.0]),  # ties at the threshold itself
        ([3.0, 3.0, 3.0, 1.0], [1 / 3, 1 / 3, 1 / 3, 0.0]),
        ([2.0, 2.0, 2.0, 2.0], [0.25] * 4),  # all equal: uniform
        ([0.0, -1.0, -inf, -0.5], [0.75, 0.0, 0.0, 0.25]),  # -inf entries: 0
        ([inf, 0.0, inf, 1.0], [0.5, 0.0, 0.5, 0.0]),  # +inf entries share the mass
        ([inf, -inf, 5.0, -1e30], [1.0, 0.0, 0.0, 0.0]),
        ([-inf] * 4, [nan] * 4),  # nothing but -inf: NaN
        ([nan, 1.0, 2.0, 3.0], [nan] * 4),
        ([inf, nan, 0.0, 0.0], [nan] * 4),
        ([1e30, 1e30, -1e30, 0.0], [0.5, 0.5, 0.0, 0.0]),  # relative to the max: no overflow
        ([3e38, -3e38, 3e38, 0.0], [0.5, 0.0, 0.5, 0.0]),  # x - max overflows to -inf: still 0
        ([0.0, -1.0, -2.0, 3.0], [0.0, 0.0, 0.0, 1.0]),
    ]
    for dtype in (np.float32, np.float64):
        x = np.array([r for r, _ in rows], dtype)
        want = np.array([w for _, w in rows])
        y = _fwd(x, backend)
        assert_close(y, want, dtype)
        assert_close(y, ref.sparsemax(_f64(x)), dtype)
        # the same rows along a non-last axis (strided rows)
        assert_close(_fwd(np.ascontiguousarray(x.T), backend, axis=0), want.T, dtype)
    x16 = np.array([[60000.0, 60000.0, -60000.0], [100.0, 99.5, -65504.0]], np.float16)
    assert_close(_fwd(x16, backend), [[0.5, 0.5, 0.0], [0.75, 0.25, 0.0]], np.float16)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_special_rows_every_length(backend, dtype):
    # the special value first, in the middle, last; rows short and long
    for n in (3, 1100):
        x = sample((9, n), dtype, seed=n)
        for i, pos in enumerate((0, n // 2, n - 1)):
            x[3 * i, pos], x[3 * i + 1, pos], x[3 * i + 2, pos] = nan, inf, -inf
        _check(backend, x)


def test_backward_special_values(backend):
    y = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [nan, nan, nan], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]])
    g = np.array([[1.0, 2.0, nan], [inf, 1.0, 3.0], [1.0, 2.0, 3.0], [1.0, 3.0, 100.0], [1.0, 2.0, 3.0]])
    want = [[nan] * 3, [nan, -inf, 0.0], [nan] * 3, [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    for dtype in (np.float32, np.float64):
        dx = _bwd(g.astype(dtype), y.astype(dtype), backend)
        assert_close(dx, want, dtype)
        assert_close(dx, ref.sparsemax_backward(g, y), dtype)


# ---------------------------------------------------------------- layouts and out=
def test_layouts(backend):
    x = sample((6, 40), np.float32, seed=3)
    g = sample((6, 40), np.float32, seed=4, kinks=False)
    for view in (lambda a: a.T, lambda a: a[::-1, ::-2], lambda a: a[1:, 3::3]):
        xv, gv = view(x), view(g)
        for axis in (0, 1):
            y = _fwd(xv, backend, axis=axis)
            assert_close(y, ref.sparsemax(xv, axis=axis), np.float32)
            assert_close(_bwd(gv, y, backend, axis=axis), ref.sparsemax_backward(gv, y, axis=axis), np.float32)
    b = np.broadcast_to(x[:1], (4, 40))  # stride 0 across rows
    assert_close(_fwd(b, backend), ref.sparsemax(b), np.float32)


def test_out_and_in_place(backend):
    x = sample((5, 33), np.float32, seed=8)
    g = sample(x.shape, np.float32, seed=9, kinks=False)
    want = ref.sparsemax(x)
    y = want.astype(np.float32)

    def on(a):
        return to_backend(a.copy(), backend)  # (the cpu backend's is ``a`` itself)

    out = on(np.full(x.shape, nan, np.float32))  # what out held is never read
    assert ga.sparsemax(on(x), out=out, backend=backend) is out
    assert_close(to_numpy(out), want, np.float32)
    big = on(np.full((15, 66), 7.0, np.float32))
    ga.sparsemax(on(x), out=big[::3, 1::2], backend=backend)  # a strided out
    kept = to_numpy(big)
    assert_close(kept[::3, 1::2], want, np.float32)
    mask = np.ones(kept.shape, bool)
    mask[::3, 1::2] = False
    assert (kept[mask] == 7.0).all()
    d = on(x)
    assert ga.sparsemax(d, out=d, backend=backend) is d  # in place
    assert_close(to_numpy(d), want, np.float32)
    d = on(x)
    ga.sparsemax(d[:, 1:], out=d[:, :-1], backend=backend)  # overlapping, shifted: staged through a temporary
    assert_close(to_numpy(d)[:, :-1], ref.sparsemax(x[:, 1:]), np.float32)
    for into_g in (True, False):  # the backward in place, into g or into y
        dg, dy = on(g), on(y)
        dst = dg if into_g else dy
        ga.sparsemax_backward(dg, dy, out=dst, backend=backend)
        assert_close(to_numpy(dst), ref.sparsemax_backward(g, y), np.float32)


def test_torch_cpu_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[1.0, 1.0, 0.5], [0.0, -1.0, 3.0]])
    y = ga.sparsemax(x)
    assert isinstance(y, torch.Tensor)
    assert_close(y.numpy(), ref.sparsemax(x.numpy()), np.float32)


# ---------------------------------------------------------------- the gradient
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_backward_finite_differences(backend, axis):
    """d/dx sum(g * sparsemax(x)) == sparsemax_backward(g, sparsemax(x)) in float64,
    on rows whose entries all lie at least 1e-3 from the threshold (the support
    does not change within a step)."""
    x = sample((3, 5, 6), np.float64, seed=21, kinks=False)
    g = sample((3, 5, 6), np.float64, seed=22, scale=1.0, kinks=False)
    y = ref.sparsemax(x, axis=axis)
    theta = (x - y).max(axis=axis, keepdims=True)  # the threshold in x's units: x - y on the support
    assert np.abs(x - theta).min() > 1e-3
    assert ((y > 0).sum(axis=axis) > 1).any()  # supports of more than one entry: a gradient to check
    r = _bwd(g, _fwd(x, backend, axis=axis), backend, axis=axis)
    fd = grad_fd(lambda v: np.sum(g * _fwd(v, backend, axis=axis)), x)
    assert_close(r, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_torch_sort_based_composition():
    """PyTorch's sort/cumsum/clamp composition of sparsemax and its autograd
    gradient agree with gpu_act on random float64 rows."""
    torch = pytest.importorskip("torch")
    x = sample((7, 30), np.float64, seed=31)
    g = sample((7, 30), np.float64, seed=32, scale=1.0, kinks=False)
    z = torch.tensor(x, requires_grad=True)
    s, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    csum = s.cumsum(-1)
    support = (1 + k * s > csum).sum(-1, keepdim=True)
    tau = (csum.gather(-1, support - 1) - 1) / support
    yt = torch.clamp(z - tau, min=0)
    yt.backward(torch.tensor(g))
    y = ga.sparsemax(x)
    assert_close(y, yt.detach().numpy(), np.float64)
    assert_close(ga.sparsemax_backward(g, y), z.grad.numpy(), np.float64)


# ---------------------------------------------------------------- properties
@pytest.mark.parametrize("dtype", DTYPES)
def test_on_the_simplex_and_shift_invariant(backend, dtype):
    x = sample((20, 50), dtype, seed=40, scale=2.0)
    y = _fwd(x, backend).astype(np.float64)
    assert (y >= 0).all()
    tol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=tol)
    # a point of the simplex projects onto itself; the projection ignores a shift
    assert_close(_fwd(y.astype(dtype), backend), y, dtype)
    shifted = (x.astype(np.float64) + 0.5).astype(dtype)
    assert_close(_fwd(shifted, backend), ref.sparsemax(_f64(shifted)), dtype)


# ---------------------------------------------------------------- errors
def test_bad_input_raises_and_writes_nothing():
    x = np.ones((3, 4), np.float32)
    out = np.full((3, 4), 7.0, np.float32)
    cases = [
        (TypeError, "unsupported dtype int64", lambda: ga.sparsemax(np.ones((3, 4), np.int64), out=out)),
        (np.exceptions.AxisError, None, lambda: ga.sparsemax(x, axis=2, out=out)),
        (TypeError, "axis", lambda: ga.sparsemax(x, axis=1.0, out=out)),
        (ValueError, "out has shape", lambda: ga.sparsemax(x, out=np.empty((4, 3), np.float32))),
        (TypeError, "out has dtype", lambda: ga.sparsemax(x, out=np.empty((3, 4), np.float64))),
        (TypeError, "temperature", lambda: ga.sparsemax(x, temperature=2.0, out=out)),
        (ValueError, "stream=", lambda: ga.sparsemax(x, stream=object(), out=out)),
        (TypeError, "MaskedArray", lambda: ga.sparsemax(np.ma.masked_array(x), out=out)),
        (ValueError, "grad_output has shape", lambda: ga.sparsemax_backward(np.ones((3, 5), np.float32), x, out=out)),
        (TypeError, "grad_output has dtype", lambda: ga.sparsemax_backward(np.ones((3, 4)), x, out=out)),
        (TypeError, "temperature", lambda: ga.sparsemax_backward(x, x, temperature=1.0, out=out)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
        assert (out == 7.0).all()
    ro = np.empty((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ga.sparsemax(x, out=ro)
    with pytest.raises(ValueError, match="share memory"):
        ga.sparsemax(x, out=np.lib.stride_tricks.as_strided(np.empty(4, np.float32), (3, 4), (0, 4)))


# ---------------------------------------------------------------- Dask
def _lazy(a, chunks):
    da = pytest.importorskip("dask.array")
    return da.from_array(a, chunks=chunks)


def _with_specials(x):
    """Row 1: -inf entries (one block all -inf); row 2: +inf entries in two blocks;
    row 3: all -inf; row 4: a NaN."""
    x = x.copy()
    x[1, :5] = -inf
    x[1, 7] = -inf
    x[2, 3] = x[2, 20] = inf
    x[3, :] = -inf
    x[4, 17] = nan
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_dask_split_axis_equals_in_memory(dtype):
    x = _with_specials(sample((5, 23), np.float64, seed=50)).astype(dtype)
    got = ga.sparsemax(_lazy(x, ((2, 0, 3), (5, 0, 10, 8)))).compute(scheduler="threads")
    assert got.dtype == x.dtype
    assert_close(got, ga.sparsemax(x).astype(np.float64), dtype)
    assert_close(got, ref.sparsemax(_f64(x)), dtype)
    # a 3-D array along its middle axis, and the backward pass
    x3 = sample((4, 11, 9), dtype, seed=51)
    chunks = ((3, 1), (2, 0, 5, 4), (4, 5))
    assert_close(ga.sparsemax(_lazy(x3, chunks), axis=1).compute(), ga.sparsemax(x3, axis=1).astype(np.float64), dtype)
    y = ga.sparsemax(x3, axis=1)
    g = sample(x3.shape, dtype, seed=52, kinks=False)
    g[0, 3, 0] = nan  # a NaN gradient makes its row NaN
    got = ga.sparsemax_backward(_lazy(g, 2), _lazy(y, chunks), axis=1).compute()
    assert_close(got, ga.sparsemax_backward(g, y, axis=1).astype(np.float64), dtype)
    assert_close(got, ref.sparsemax_backward(_f64(g), _f64(y), axis=1), dtype)


def test_dask_bfloat16_and_unsplit_axis():
    bf16 = _bfloat16()
    x = _with_specials(sample((5, 23), np.float64, seed=53)).astype(bf16)
    assert_close(ga.sparsemax(_lazy(x, (2, 6))).compute(), ref.sparsemax(_f64(x)), bf16)
    got = ga.sparsemax(_lazy(x, (2, 23)))  # the axis in one chunk: one gpu_act call per block
    assert_close(got.compute(), ga.sparsemax(x).astype(np.float64), bf16)
    s = np.float32(2.0).reshape(())
    assert float(ga.sparsemax(_lazy(s, ())).compute()) == 1.0


def test_dask_split_axis_is_never_gathered():
    dask = pytest.importorskip("dask")
    from dask.callbacks import Callback

    class Largest(Callback):
        def __init__(self):
            super().__init__()
            self.largest = 0

        def _posttask(self, key, result, dsk, state, id):
            if str(key[0] if isinstance(key, tuple) else key).startswith("finalize"):
                return
            for r in result if isinstance(result, tuple) else (result,):
                if isinstance(r, np.ndarray) and r.ndim > 1:
                    self.largest = max(self.largest, r.shape[1])

    x = sample((6, 4000), np.float64, seed=54, scale=10.0)
    y = ga.sparsemax(x)
    g = sample(x.shape, np.float64, seed=55, kinks=False)
    got = (ga.sparsemax(_lazy(x, (3, 500))), ga.sparsemax_backward(_lazy(g, (3, 500)), _lazy(y, (3, 500))))
    layers = [name for a in got for name in a.__dask_graph__().layers]
    assert not [n for n in layers if "rechunk" in n or "concatenate" in n]
    watch = Largest()
    with watch:
        fwd, bwd = dask.compute(*got, scheduler="sync")
    assert watch.largest == 500  # no task held more of a row than one block
    # float64 to the last bits: the rounds narrow the bracket to 2^-48, the fix is exact
    assert_close(fwd, ref.sparsemax(x), np.float64)
    assert_close(bwd, ref.sparsemax_backward(g, y), np.float64)


def test_dask_errors_when_building_the_graph():
    x = _lazy(np.ones((5, 23), np.float32), (2, 6))
    with pytest.raises(TypeError, match="out= is not accepted with Dask arrays"):
        ga.sparsemax(x, out=np.empty((5, 23), np.float32))
    with pytest.raises(np.exceptions.AxisError):
        ga.sparsemax(x, axis=2)
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        ga.sparsemax(_lazy(np.arange(6), 2))
    with pytest.raises(ValueError, match="grad_output has shape"):
        ga.sparsemax_backward(_lazy(np.zeros((5, 22), np.float32), 4), x)
