"""gpu_act on Dask arrays (local scheduler): every op equals the in-memory result
for chunkings that split the reduction axis unevenly (with zero-size chunks),
and split row ops never gather a row."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402
from dask.callbacks import Callback  # noqa: E402

import gpu_act as ga  # noqa: E402
from gpu_act._dask.rowwise import pool_aligned  # noqa: E402
from gpu_act.registry import ACTIVATIONS, PLAIN  # noqa: E402
from helpers import sample  # noqa: E402
from tolerances import DTYPES, assert_close  # noqa: E402

# (rows, classes) chunkings: uneven, zero-size chunks, the row axis split too
CHUNKS_2D = ((2, 0, 3), (5, 0, 10, 8))
SHAPE_2D = (5, 23)
# a 3-D array reduced along the middle axis
CHUNKS_3D = ((3, 1), (2, 0, 5, 4), (4, 5))
SHAPE_3D = (4, 11, 9)


def lazy(a, chunks):
    return da.from_array(a, chunks=chunks)


def with_specials(x):
    """Row 1 has -inf entries (one block of only -inf), row 3 is all -inf, row 4 has a
    NaN, row 2 a +inf: the special rows of the softmax contract, across blocks."""
    x = x.copy()
    x[1, :5] = -np.inf
    x[1, 7] = -np.inf
    x[3, :] = -np.inf
    x[4, 17] = np.nan
    x[2, 20] = np.inf
    return x


# ---------------------------------------------------------------- cases
# Each case maps a dtype to (lazy result, in-memory result, exact): the same call on
# Dask arrays and on the NumPy arrays they were made from. Elementwise ops run the
# same kernel on every element and must match bit for bit; row ops combine partial
# sums in another order and are compared with the tolerance table.


def _plain(name, backward):
    params = {p.name: p.default for p in ACTIVATIONS[name].params}

    def case(dtype):
        x = sample(SHAPE_2D, dtype, seed=1)
        x[0, 0], x[0, 1], x[0, 2] = np.nan, np.inf, -np.inf
        if not backward:
            return getattr(ga, name)(lazy(x, CHUNKS_2D), **params), getattr(ga, name)(x, **params), True
        g = sample(SHAPE_2D, dtype, seed=2)
        f = getattr(ga, name + "_backward")
        return f(lazy(g, ((3, 2), (7, 16))), lazy(x, CHUNKS_2D), **params), f(g, x, **params), True

    return case


def _rrelu(backward, training):
    def case(dtype):
        x = sample(SHAPE_3D, dtype, seed=3)
        kw = {"training": training, "seed": 12345}
        if not backward:
            return ga.rrelu(lazy(x, CHUNKS_3D), **kw), ga.rrelu(x, **kw), True
        g = sample(SHAPE_3D, dtype, seed=4)
        return ga.rrelu_backward(lazy(g, 2), lazy(x, CHUNKS_3D), **kw), ga.rrelu_backward(g, x, **kw), True

    return case


def _prelu(backward, per_channel):
    def case(dtype):
        x = sample(SHAPE_3D, dtype, seed=5)
        w = (np.linspace(0.05, 0.5, SHAPE_3D[1] if per_channel else 1)).astype(dtype)
        if not backward:
            return ga.prelu(lazy(x, CHUNKS_3D), w), ga.prelu(x, w), True
        g = sample(SHAPE_3D, dtype, seed=6)
        return ga.prelu_backward(lazy(g, 3), lazy(x, CHUNKS_3D), lazy(w, 4)), ga.prelu_backward(g, x, w), False

    return case


def _softmax(name, temperature, axis):
    def case(dtype):
        x = with_specials(sample(SHAPE_2D, dtype, seed=7))
        if axis == 0:
            x = np.ascontiguousarray(x.T)
            chunks = CHUNKS_2D[::-1]
        else:
            chunks = CHUNKS_2D
        f = getattr(ga, name)
        return f(lazy(x, chunks), axis=axis, temperature=temperature), f(x, axis=axis, temperature=temperature), False

    return case


def _softmax_backward(name, temperature):
    def case(dtype):
        x = sample(SHAPE_3D, dtype, seed=8)
        y = getattr(ga, name)(x, axis=1, temperature=temperature)
        g = sample(SHAPE_3D, dtype, seed=9)
        f = getattr(ga, name + "_backward")
        kw = {"axis": 1, "temperature": temperature}
        return f(lazy(g, (2, 3, 9)), lazy(y, CHUNKS_3D), **kw), f(g, y, **kw), False

    return case


def _maxout(backward):
    def case(dtype):
        x = sample((5, 24), dtype, seed=10)
        chunks = ((2, 3), (5, 0, 7, 12))  # boundaries 5, 12 are not multiples of the pool 4
        if not backward:
            return ga.maxout(lazy(x, chunks), 4), ga.maxout(x, 4), True
        g = sample((5, 6), dtype, seed=11)
        return ga.maxout_backward(lazy(g, (3, (1, 5))), lazy(x, chunks), 4), ga.maxout_backward(g, x, 4), True

    return case


def _cross_entropy(target_kind, reduction, smoothing):
    def case(dtype):
        z = sample(SHAPE_2D, dtype, seed=12)
        z[1, :5] = -np.inf  # a class block of only -inf
        rng = np.random.default_rng(13)
        if target_kind == "index":
            t = rng.integers(0, SHAPE_2D[1], SHAPE_2D[0])
            t[0] = -100  # ignored
            t[2] = 6  # in the block of width 10 after the empty one
            dt = lazy(t, ((3, 0, 2),))
        else:
            t = rng.random(SHAPE_2D)
            t[:, 3] = 0.0  # zero targets on -inf logits contribute nothing
            t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
            dt = lazy(t, 4)
        kw = {"reduction": reduction, "label_smoothing": smoothing, "return_grad": True}
        return ga.cross_entropy(lazy(z, CHUNKS_2D), dt, **kw), ga.cross_entropy(z, t, **kw), False

    return case


def _cross_entropy_axis0(target_kind):
    # classes on axis 0 of a 3-D array, split unevenly with an empty chunk
    def case(dtype):
        z = sample((9, 4, 5), dtype, seed=14)
        rng = np.random.default_rng(15)
        if target_kind == "index":
            t = rng.integers(0, 9, (4, 5))
            dt = lazy(t, (3, 2))
        else:
            t = rng.random(z.shape).astype(dtype)
            dt = lazy(t, 3)
        kw = {"axis": 0, "reduction": "none", "label_smoothing": 0.2, "return_grad": True}
        return ga.cross_entropy(lazy(z, ((4, 0, 5), 2, (3, 2))), dt, **kw), ga.cross_entropy(z, t, **kw), False

    return case


def _cross_entropy_special_rows(target_kind):
    # huge logits (no cancellation), and rows without a softmax (NaN, +inf, all -inf)
    # whose targets weight no class: NaN losses, as in memory; the class axis split
    def case(dtype):
        big = 100.0 if dtype == np.float16 else 1e30
        z = np.array(
            [[big, big, -big, 0.0], [np.nan, 1.0, 2.0, 3.0], [np.inf, 1.0, 2.0, 3.0], [-np.inf] * 4, [1.0, 2.0, 3.0, 4.0]],
            dtype,
        )
        if target_kind == "index":
            t = np.array([1, 2, 0, 3, -100])
            dt = lazy(t, 2)
        else:
            t = np.zeros(z.shape, dtype)
            t[0, 0] = t[4, 1] = 1.0
            dt = lazy(t, (2, 3))
        kw = {"reduction": "none", "return_grad": True}
        return ga.cross_entropy(lazy(z, (2, 3)), dt, **kw), ga.cross_entropy(z, t, **kw), False

    return case


CASES = {}
for _n in PLAIN:
    CASES[_n] = _plain(_n, False)
    CASES[_n + "_backward"] = _plain(_n, True)
for _b in (False, True):
    for _t in (False, True):
        CASES[f"rrelu{'_backward' if _b else ''}-{'train' if _t else 'eval'}"] = _rrelu(_b, _t)
    for _pc in (False, True):
        CASES[f"prelu{'_backward' if _b else ''}-{'channels' if _pc else 'single'}"] = _prelu(_b, _pc)
    CASES[f"maxout{'_backward' if _b else ''}"] = _maxout(_b)
for _n in ("softmax", "log_softmax"):
    for _temp in (1.0, 0.37):
        for _ax in (1, 0):
            CASES[f"{_n}-T{_temp}-axis{_ax}"] = _softmax(_n, _temp, _ax)
        CASES[f"{_n}_backward-T{_temp}"] = _softmax_backward(_n, _temp)
for _k in ("index", "prob"):
    for _r in ("mean", "sum", "none"):
        for _e in (0.0, 0.1):
            CASES[f"cross_entropy-{_k}-{_r}-eps{_e}"] = _cross_entropy(_k, _r, _e)
    CASES[f"cross_entropy-{_k}-axis0"] = _cross_entropy_axis0(_k)
    CASES[f"cross_entropy-{_k}-special-rows"] = _cross_entropy_special_rows(_k)


def check_case(case, dtype, compute):
    """Build the case, check the results are lazy, compute them with ``compute``
    (a function of a tuple of Dask arrays) and compare with memory."""
    got, want, exact = case(dtype)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert all(isinstance(g, da.Array) for g in got)
    values = compute(got)
    for v, w in zip(values, want):
        v = np.asarray(v)
        assert v.dtype == w.dtype and v.shape == w.shape
        if exact:
            np.testing.assert_array_equal(v, w)
        else:
            assert_close(v, w.astype(np.float64), w.dtype)


# The registry's plain activations share one Dask code path (block-wise calls): each
# is checked in float32, three of them in every dtype; every other op in every dtype.
ALL_DTYPES = {"relu", "gelu", "softplus"}
OP_DTYPES = [
    (op, dt)
    for op in CASES
    for dt in (DTYPES if op.removesuffix("_backward") not in PLAIN or op.removesuffix("_backward") in ALL_DTYPES else (np.float32,))
]


@pytest.mark.parametrize("op,dtype", OP_DTYPES, ids=[f"{op}-{np.dtype(dt).name}" for op, dt in OP_DTYPES])
def test_op_equals_in_memory(op, dtype):
    check_case(CASES[op], dtype, lambda arrays: dask.compute(*arrays, scheduler="threads"))


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("op", ["relu", "softmax", "log_softmax", "maxout"])
def test_zero_d_and_empty(op):
    f = getattr(ga, op)
    args = (1,) if op == "maxout" else ()
    for x, chunks in ((np.float32(1.5).reshape(()), ()), (np.zeros((0, 8), np.float32), ((0,), (3, 0, 5)))):
        got = f(lazy(x, chunks), *args)
        assert isinstance(got, da.Array)
        np.testing.assert_array_equal(got.compute(), f(x, *args))


def test_cross_entropy_empty_and_all_ignored():
    z = np.zeros((0, 6), np.float32)
    t = np.zeros((0,), np.int64)
    for red in ("mean", "sum", "none"):
        got = ga.cross_entropy(lazy(z, ((0,), (2, 4))), lazy(t, 1), reduction=red).compute()
        np.testing.assert_array_equal(got, ga.cross_entropy(z, t, reduction=red))
    z = sample((3, 6), np.float32, seed=1)
    t = np.full(3, -100)
    loss, grad = ga.cross_entropy(lazy(z, (2, 4)), lazy(t, 2), return_grad=True)
    want_loss, want_grad = ga.cross_entropy(z, t, return_grad=True)
    np.testing.assert_array_equal(loss.compute(), want_loss)  # NaN: mean over no targets
    np.testing.assert_array_equal(grad.compute(), want_grad)


def test_mixed_dask_and_numpy_arguments():
    x = sample(SHAPE_2D, np.float32, seed=2)
    g = sample(SHAPE_2D, np.float32, seed=3)
    got = ga.gelu_backward(g, lazy(x, CHUNKS_2D))  # NumPy grad_output joins the Dask x
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(), ga.gelu_backward(g, x))
    t = np.arange(5) % 23
    assert_close(ga.cross_entropy(lazy(x, CHUNKS_2D), t).compute(), ga.cross_entropy(x, t), np.float32)


# ---------------------------------------------------------------- no full-axis rechunk
class _LargestAlongAxis(Callback):
    """Records the largest length along ``axis`` of any array a task returns."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis
        self.largest = 0

    def _posttask(self, key, result, dsk, state, id):
        if str(key[0] if isinstance(key, tuple) else key).startswith("finalize"):
            return  # the result handed back to the caller, not a task of the graph
        for r in result if isinstance(result, tuple) else (result,):
            if isinstance(r, np.ndarray) and r.ndim > self.axis:
                self.largest = max(self.largest, r.shape[self.axis])


ROW = 4000
BLOCK = 500


def _long_rows(dtype=np.float32):
    x = sample((6, ROW), dtype, seed=20, scale=10.0)
    return x, lazy(x, (3, BLOCK))


@pytest.mark.parametrize(
    "op",
    ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy"],
)
def test_split_axis_is_never_gathered(op):
    x, dx = _long_rows()
    if op.endswith("_backward"):
        y = getattr(ga, op.removesuffix("_backward"))(x)
        g = sample(x.shape, np.float32, seed=21)
        got, want = getattr(ga, op)(lazy(g, (3, BLOCK)), lazy(y, (3, BLOCK))), getattr(ga, op)(g, y)
    elif op == "cross_entropy":
        t = np.arange(6) * 601
        got, want = ga.cross_entropy(dx, lazy(t, 3), return_grad=True), ga.cross_entropy(x, t, return_grad=True)
    else:
        got, want = getattr(ga, op)(dx), getattr(ga, op)(x)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    layers = [name for g in got for name in g.__dask_graph__().layers]
    assert not [n for n in layers if "rechunk" in n or "concatenate" in n]
    tasks = len(dict(dask.base.merge(*(dict(g.__dask_graph__()) for g in got))))
    blocks = dx.npartitions
    assert tasks <= 16 * blocks, f"{tasks} tasks for {blocks} blocks"
    watch = _LargestAlongAxis(axis=1)
    with watch:
        values = dask.compute(*got, scheduler="sync")
    assert watch.largest == BLOCK  # no task ever held more of a row than one block
    for v, w in zip(values, want):
        assert_close(v, w.astype(np.float64), w.dtype)


def test_long_row_softmax_matches_reference_beyond_block_precision():
    # large offsets between blocks: the block far below the row max must still get its exact share
    x = np.concatenate([np.zeros((2, 50)), np.full((2, 50), 800.0), np.full((2, 50), -900.0)], axis=1)
    x += sample(x.shape, np.float64, seed=30, scale=1.0)
    got = ga.log_softmax(lazy(x, (1, 50))).compute()
    assert_close(got, ga.log_softmax(x), np.float64)
    assert np.isfinite(got).all()  # log-space shares: no underflow to -inf


# ---------------------------------------------------------------- maxout alignment
@pytest.mark.parametrize(
    "chunks,p",
    [((5, 0, 7, 12), 4), ((8, 8, 8), 4), ((1,) * 12, 3), ((11, 1), 6), ((3, 3, 3, 3), 12), ((0, 12, 0), 4)],
)
def test_pool_aligned_moves_each_boundary_by_less_than_a_pool(chunks, p):
    new = pool_aligned(chunks, p)
    assert sum(new) == sum(chunks)
    assert all(c % p == 0 for c in new)
    if all(c % p == 0 for c in chunks):
        assert new == tuple(chunks)  # nothing to move: no rechunk at all
    old_bounds = set(np.cumsum(chunks).tolist())
    for b in np.cumsum(new)[:-1].tolist():
        assert any(0 <= ob - b < p for ob in old_bounds)


def test_maxout_rechunk_is_local():
    x = sample((4, 1200), np.float32, seed=31)
    dx = lazy(x, (2, (301, 299, 300, 300)))
    watch = _LargestAlongAxis(axis=1)
    with watch:
        got = ga.maxout(dx, 4).compute(scheduler="sync")
    np.testing.assert_array_equal(got, ga.maxout(x, 4))
    assert watch.largest <= 304  # a block plus less than one pool, never the row


# ---------------------------------------------------------------- errors and import
def test_errors_are_raised_when_building_the_graph():
    x = lazy(sample(SHAPE_2D, np.float32), CHUNKS_2D)
    with pytest.raises(TypeError, match="out= is not accepted with Dask arrays"):
        ga.relu(x, out=np.empty(SHAPE_2D, np.float32))
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        ga.softmax(lazy(np.arange(6), 2))
    with pytest.raises(np.exceptions.AxisError):
        ga.log_softmax(x, axis=2)
    with pytest.raises(ValueError, match="temperature"):
        ga.softmax(x, temperature=0.0)
    with pytest.raises(ValueError, match="grad_output has shape"):
        ga.softmax_backward(lazy(np.zeros((5, 22), np.float32), 4), x)
    with pytest.raises(ValueError, match="pool_size=4"):
        ga.maxout(x, 4)
    with pytest.raises(ValueError, match="weight has shape"):
        ga.prelu(lazy(np.zeros((2, 3, 4), np.float32), 2), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="reduction="):
        ga.cross_entropy(x, np.zeros(5, np.int64), reduction="avg")
    with pytest.raises(ValueError, match="negative_slope"):
        ga.leaky_relu(x, negative_slope=float("nan"))


def test_out_of_range_target_raises_on_compute():
    z = lazy(sample(SHAPE_2D, np.float32), CHUNKS_2D)
    loss = ga.cross_entropy(z, np.array([0, 1, 23, 2, 3]))
    with pytest.raises(ValueError, match="target index 23 is out of range"):
        loss.compute()


def test_import_gpu_act_does_not_import_dask():
    code = (
        "import sys, numpy as np, gpu_act as ga; ga.softmax(np.ones(3)); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- CuPy chunks
@pytest.mark.gpu
def test_cupy_chunks_run_on_the_cupy_backend():
    cupy = pytest.importorskip("cupy")
    if "cupy" not in ga.available_backends():
        pytest.skip("the cupy backend is not available")
    x = with_specials(sample(SHAPE_2D, np.float32, seed=40))
    t = np.array([0, 3, 22, 7, 12])
    xc = cupy.asarray(x)
    dx = da.from_array(xc, chunks=CHUNKS_2D)
    results = {
        "relu": (ga.relu(dx), ga.relu(xc)),
        "softmax": (ga.softmax(dx), ga.softmax(xc)),
        "log_softmax": (ga.log_softmax(dx), ga.log_softmax(xc)),
        "cross_entropy": (ga.cross_entropy(dx, da.from_array(cupy.asarray(t), chunks=2), reduction="none"),
                          ga.cross_entropy(xc, cupy.asarray(t), reduction="none")),
    }
    for name, (got, want) in results.items():
        assert isinstance(got._meta, cupy.ndarray), name
        value = got.compute(scheduler="threads")
        assert isinstance(value, cupy.ndarray), name
        assert_close(cupy.asnumpy(value), cupy.asnumpy(want).astype(np.float64), np.float32, msg=name)
