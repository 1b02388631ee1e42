"""logsumexp and softmin on Dask arrays (local scheduler): equal to the
in-memory result where the reduction axis is in one chunk and where it is split
unevenly (zero-size chunks too), special rows across blocks, never gathered."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import gpu_act as ga  # noqa: E402
from helpers import sample  # noqa: E402
from tolerances import DTYPES, assert_close  # noqa: E402

CHUNKS_2D = ((2, 0, 3), (5, 0, 10, 8))  # the class axis split unevenly, with an empty chunk
SHAPE_2D = (5, 23)


def lazy(a, chunks):
    return da.from_array(a, chunks=chunks)


def with_specials(x):
    """Row 1 has -inf entries (one block of only -inf), row 3 is all -inf, row 4 has a
    NaN, row 2 a +inf, row 0 a -inf in its last block: special rows across blocks."""
    x = x.copy()
    x[1, :5] = -np.inf
    x[3, :] = -np.inf
    x[4, 17] = np.nan
    x[2, 20] = np.inf
    x[0, 22] = -np.inf
    return x


def same(got, want):
    assert isinstance(got, da.Array)
    v = dask.compute(got, scheduler="threads")[0]
    assert v.dtype == want.dtype and v.shape == want.shape
    assert_close(v, want.astype(np.float64), want.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp(dtype):
    x = with_specials(sample(SHAPE_2D, dtype, seed=1))
    kw = {"temperature": 0.6, "keepdims": True}
    same(ga.logsumexp(lazy(x, CHUNKS_2D), **kw), ga.logsumexp(x, **kw))
    if dtype == np.float32:  # the other paths do not depend on the dtype
        for chunks in (CHUNKS_2D, ((2, 3), 23)):  # split and whole rows
            for axis, t, keep in ((1, 1.0, False), (0, 2.0, False)):
                kw = {"axis": axis, "temperature": t, "keepdims": keep}
                same(ga.logsumexp(lazy(x, chunks), **kw), ga.logsumexp(x, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_backward(dtype):
    x = sample((4, 11, 9), dtype, seed=2)
    for keep in (False, True):
        r = ga.logsumexp(x, axis=1, temperature=0.7, keepdims=keep)
        g = sample(r.shape, dtype, seed=3)
        kw = {"axis": 1, "temperature": 0.7, "keepdims": keep}
        got = ga.logsumexp_backward(lazy(g, 2), lazy(x, ((3, 1), (2, 0, 5, 4), (4, 5))), lazy(r, 3), **kw)
        same(got, ga.logsumexp_backward(g, x, r, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmin(dtype):
    x = with_specials(sample(SHAPE_2D, dtype, seed=4))
    x[0, 3] = np.inf  # +inf entries of a finite row: 0
    same(ga.softmin(lazy(x, CHUNKS_2D), temperature=0.4), ga.softmin(x, temperature=0.4))
    if dtype == np.float32:
        xt = np.ascontiguousarray(x.T)
        same(ga.softmin(lazy(xt, CHUNKS_2D[::-1]), axis=0), ga.softmin(xt, axis=0))
    y = ga.softmin(x[:, :20].astype(dtype), temperature=0.8)
    g = sample(y.shape, dtype, seed=5)
    kw = {"temperature": 0.8}
    same(ga.softmin_backward(lazy(g, (3, 7)), lazy(y, (2, (5, 0, 15))), **kw), ga.softmin_backward(g, y, **kw))


def test_zero_d_and_empty():
    for f in (ga.logsumexp, ga.softmin):
        for x, chunks in ((np.float32(1.5).reshape(()), ()), (np.zeros((3, 0), np.float32), (2, (0,)))):
            same(f(lazy(x, chunks)), f(x))
    r = ga.logsumexp(np.float64(2.0).reshape(()))
    same(ga.logsumexp_backward(lazy(np.float64(3.0).reshape(()), ()), lazy(np.float64(2.0).reshape(()), ()),
                               lazy(r, ())), ga.logsumexp_backward(np.float64(3.0), np.float64(2.0), r))


# ---------------------------------------------------------------- gated linear units
@pytest.mark.parametrize("dtype", DTYPES)
def test_glu(dtype):
    x = sample((5, 24), dtype, seed=6)
    x[0, 0], x[1, 13] = np.nan, np.inf
    g = sample((5, 12), dtype, seed=7)
    # the axis split (the halves' chunks paired up, the gate half rechunked) and whole
    for chunks in (((2, 3), (5, 0, 10, 9)), ((2, 3), 24)):
        kw = {"activation": "softplus", "beta": 2.0}
        same(ga.glu(lazy(x, chunks), **kw), ga.glu(x, **kw))
        same(ga.glu_backward(lazy(g, (3, 5)), lazy(x, chunks), **kw), ga.glu_backward(g, x, **kw))
        if dtype == np.float32:
            same(ga.geglu(lazy(x, chunks), approximate="tanh"), ga.geglu(x, approximate="tanh"))
            same(ga.swiglu_backward(lazy(g, 4), lazy(x, chunks)), ga.swiglu_backward(g, x))


def test_glu_other_axis_and_errors():
    x = sample((6, 4, 3), np.float32, seed=8)
    g = sample((3, 4, 3), np.float32, seed=9)
    same(ga.reglu(lazy(x, (4, 2, 3)), axis=0), ga.reglu(x, axis=0))
    same(ga.reglu_backward(lazy(g, 2), lazy(x, (4, 2, 3)), axis=0), ga.reglu_backward(g, x, axis=0))
    with pytest.raises(ValueError, match="even length"):
        ga.glu(lazy(np.ones((3, 5)), 2))
    with pytest.raises(ValueError, match="activation"):
        ga.glu(lazy(np.ones((3, 4)), 2), activation="prelu")


# ---------------------------------------------------------------- masks
def _mask(seed):
    m = np.random.default_rng(seed).random(SHAPE_2D) > 0.35
    m[1] = False  # a row with no unmasked entry
    m[2, :15] = False  # blocks with none
    return m


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_softmax_family(dtype):
    x = with_specials(sample(SHAPE_2D, dtype, seed=10))
    m = _mask(11)
    for chunks in (CHUNKS_2D, ((2, 3), 23)):
        for mask in (lazy(m, 4), m[:1], np.ascontiguousarray(m[:, :1])):  # Dask, broadcast rows, whole rows
            for op in ("softmax", "log_softmax", "logsumexp"):
                f = getattr(ga, op)
                same(f(lazy(x, chunks), mask=mask), f(x, mask=np.asarray(mask)))
            if dtype != np.float32:
                break
    y = ga.softmax(x, mask=m)
    g = sample(SHAPE_2D, dtype, seed=12)
    for op, out in (("softmax_backward", y), ("log_softmax_backward", ga.log_softmax(x, mask=m))):
        f = getattr(ga, op)
        same(f(lazy(g, (3, 7)), lazy(out, CHUNKS_2D), mask=lazy(m, 5)), f(g, out, mask=m))
    r = ga.logsumexp(x, mask=m)
    gr = sample((5,), dtype, seed=13)
    same(ga.logsumexp_backward(lazy(gr, 2), lazy(x, CHUNKS_2D), lazy(r, 3), mask=m), ga.logsumexp_backward(gr, x, r, mask=m))


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_cross_entropy(dtype):
    z = sample(SHAPE_2D, dtype, seed=14)
    m = _mask(15)
    t = np.array([int(np.flatnonzero(r)[0]) if r.any() else 0 for r in m])
    t[3] = -100
    p = (np.random.default_rng(16).random(SHAPE_2D) * m).astype(dtype)
    w = np.linspace(0.5, 1.5, SHAPE_2D[1])
    for target, dt in ((t, lazy(t, 2)), (p, lazy(p, 6))):
        for kw in ({"reduction": "mean"}, {"reduction": "none", "label_smoothing": 0.1, "weight": w, "z_loss": 1e-3}):
            got = ga.cross_entropy(lazy(z, CHUNKS_2D), dt, mask=lazy(m, 4), return_grad=True, return_lse=True, **kw)
            want = ga.cross_entropy(z, target, mask=m, return_grad=True, return_lse=True, **kw)
            for a, b in zip(got, want):
                same(a, b)
            if dtype != np.float32:
                break


def test_bad_masks():
    x = lazy(np.ones((3, 4)), 2)
    with pytest.raises(TypeError, match="mask has dtype float64; expected bool"):
        ga.softmax(x, mask=np.ones(4))
    with pytest.raises(ValueError, match="mask has shape"):
        ga.logsumexp(x, mask=np.ones((2, 4), bool))
