"""Non-contiguous, transposed, negative-stride and broadcast inputs; out= handling."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import sample, to_backend, to_numpy
from tolerances import DTYPES, assert_close

# Views built from a contiguous base of shape (12, 10): name -> (function, shape-agnostic?)
VIEWS = {
    "strided": lambda a: a[::2, 1::3],
    "transposed": lambda a: a.T,
    "negative": lambda a: a[::-1, ::-2],
    "transposed_negative": lambda a: a[::-1].T[::-1],
    "column": lambda a: a[:, 3],
    "broadcast_row": lambda a: np.broadcast_to(a[0], (7,) + a[0].shape),
    "broadcast_col": lambda a: np.broadcast_to(a[:, :1], a.shape),
    "3d_swapped": lambda a: a.reshape(3, 4, 10).transpose(2, 0, 1)[:, ::-1, 1:],
}


def _device_view(base, backend, name):
    """The view `name` of `base` on `backend` (views are made on the device for GPUs)."""
    if backend == "cpu":
        return VIEWS[name](base)
    if backend == "cupy":
        import cupy

        d = cupy.asarray(base)
        if name.startswith("broadcast"):
            return cupy.broadcast_to(*{
                "broadcast_row": (d[0], (7,) + d[0].shape),
                "broadcast_col": (d[:, :1], d.shape)}[name])
        return VIEWS[name](d)
    # numba.cuda device arrays support basic slicing / transpose but not broadcasting
    if name.startswith("broadcast") or name == "3d_swapped":
        pytest.skip("numba device arrays cannot express this view")
    try:
        return VIEWS[name](to_backend(base, backend))
    except (NotImplementedError, TypeError, ValueError, AttributeError) as e:
        pytest.skip(f"numba device arrays cannot express view {name!r}: {e}")


ELEMENTWISE = [("gelu", {}), ("hardswish", {}), ("softplus", {"beta": 2.0})]

# Every view for float32; a representative subset for float16/float64 (each new layout
# costs a Numba compilation per op and dtype).
VIEW_CASES = [pytest.param(np.float32, v, id=f"float32-{v}") for v in VIEWS] + [
    pytest.param(d, v, id=f"{np.dtype(d).name}-{v}")
    for d in (np.float16, np.float64)
    for v in ("transposed_negative", "broadcast_row", "column")]


@pytest.mark.parametrize("dtype,view", VIEW_CASES)
def test_elementwise_views(backend, view, dtype):
    base = sample((12, 10), dtype, seed=1)
    gbase = sample((12, 10), dtype, seed=2, scale=1.0, kinks=False)
    xv = VIEWS[view](base)
    gv = VIEWS[view](gbase)
    for name, params in ELEMENTWISE:
        r = to_numpy(getattr(ga, name)(_device_view(base, backend, view), **params,
                                       backend=backend))
        assert r.shape == xv.shape
        assert_close(r, ref.forward(name, xv, **params), dtype, msg=f"{name} {view}")
        rb = to_numpy(getattr(ga, name + "_backward")(
            _device_view(gbase, backend, view), _device_view(base, backend, view), **params,
            backend=backend))
        assert_close(rb, ref.backward(name, gv, xv, **params), dtype, msg=f"{name}' {view}")


@pytest.mark.parametrize("dtype,view", VIEW_CASES)
def test_rowwise_views(backend, view, dtype):
    base = sample((12, 10), dtype, seed=3)
    gbase = sample((12, 10), dtype, seed=4, scale=1.0, kinks=False)
    xv = VIEWS[view](base)
    gv = VIEWS[view](gbase)
    for axis in range(-xv.ndim, xv.ndim):
        for op, rf, rb in (("softmax", ref.softmax, ref.softmax_backward),
                           ("log_softmax", ref.log_softmax, ref.log_softmax_backward)):
            r = to_numpy(getattr(ga, op)(_device_view(base, backend, view), axis=axis,
                                         backend=backend))
            assert_close(r, rf(xv, axis=axis), dtype, msg=f"{op} {view} axis={axis}")
            # the backward takes a view of y too: y = f(base) viewed the same way
            ybase = rf(base, axis=-1).astype(dtype)
            yv = VIEWS[view](ybase)
            b = to_numpy(getattr(ga, op + "_backward")(
                _device_view(gbase, backend, view), _device_view(ybase, backend, view),
                axis=axis, backend=backend))
            assert_close(b, rb(gv, yv, axis=axis), dtype, msg=f"{op}' {view} axis={axis}")


@pytest.mark.parametrize("view", ["strided", "transposed", "negative", "broadcast_col",
                                  "broadcast_row"])
def test_maxout_views(backend, view):
    base = sample((12, 10), np.float32, seed=5)
    xv = VIEWS[view](base)
    axis = -1 if xv.shape[-1] % 2 == 0 else 0
    pool = 2
    assert xv.shape[axis] % pool == 0
    r = to_numpy(ga.maxout(_device_view(base, backend, view), pool, axis=axis, backend=backend))
    assert_close(r, ref.maxout(xv, pool, axis=axis), np.float32)
    g = sample(r.shape, np.float32, seed=6, kinks=False)
    gb = to_numpy(ga.maxout_backward(to_backend(g, backend),
                                     _device_view(base, backend, view), pool, axis=axis,
                                     backend=backend))
    assert_close(gb, ref.maxout_backward(g, xv, pool, axis=axis), np.float32)


def test_prelu_rrelu_cross_entropy_views(backend):
    base = sample((12, 10), np.float64, seed=7)
    xv = VIEWS["transposed_negative"](base)  # (10, 12), channel axis 1 has 12
    w = np.linspace(-0.5, 0.5, 12)
    r = to_numpy(ga.prelu(_device_view(base, backend, "transposed_negative"),
                          to_backend(w, backend), backend=backend))
    assert_close(r, ref.prelu(xv, w), np.float64)
    r = to_numpy(ga.rrelu(_device_view(base, backend, "negative"), training=True, seed=5,
                          backend=backend))
    xn = VIEWS["negative"](base)
    assert_close(r, ref.rrelu(np.ascontiguousarray(xn), training=True, seed=5), np.float64)
    t = np.arange(10) % 12
    loss, grad = ga.cross_entropy(_device_view(base, backend, "transposed"),
                                  to_backend(t, backend), return_grad=True, backend=backend)
    el, eg = ref.cross_entropy(base.T, t)
    assert_close(to_numpy(loss), el, np.float64)
    assert_close(to_numpy(grad), eg, np.float64)
    # probability targets given as a broadcast view
    p = np.broadcast_to(ref.softmax(np.arange(12.0) / 5), (10, 12))
    if backend == "cpu":
        loss, grad = ga.cross_entropy(base.T, p, return_grad=True, reduction="sum")
        el, eg = ref.cross_entropy(base.T, p, reduction="sum")
        assert_close(loss, el, np.float64)
        assert_close(grad, eg, np.float64)


# --------------------------------------------------------------------------- out=


def _alloc(shape, dtype, backend, kind):
    """An out array of `shape`: contiguous, or a strided view into a bigger buffer."""
    if kind == "contiguous":
        # NaN-filled: a kernel must not read what out held before
        return to_backend(np.full(shape, np.nan, dtype=dtype), backend)
    big = np.full((2 * shape[0], 3 * shape[1]) if len(shape) == 2 else (2 * shape[0],),
                  7.0, dtype=dtype)
    if backend == "cpu":
        view = big[::2, ::3] if len(shape) == 2 else big[::2]
        return view
    d = to_backend(big, backend)
    return d[::2, ::3] if len(shape) == 2 else d[::2]


@pytest.mark.parametrize("dtype,kind", [(np.float32, "contiguous"), (np.float32, "strided"),
                                        (np.float16, "contiguous"), (np.float16, "strided"),
                                        (np.float64, "contiguous")])
def test_out_argument(backend, dtype, kind):
    x = sample((9, 8), dtype, seed=8)
    g = sample((9, 8), dtype, seed=9, kinks=False)
    y = ref.softmax(x).astype(dtype)
    ly = ref.log_softmax(x, axis=0).astype(dtype)
    calls = [
        (lambda o: ga.gelu(to_backend(x, backend), out=o, backend=backend),
         ref.forward("gelu", x), (9, 8)),
        (lambda o: ga.relu6_backward(to_backend(g, backend), to_backend(x, backend), out=o,
                                     backend=backend),
         ref.backward("relu6", g, x), (9, 8)),
        (lambda o: ga.softmax(to_backend(x, backend), axis=0, out=o, backend=backend),
         ref.softmax(x, axis=0), (9, 8)),
        (lambda o: ga.log_softmax(to_backend(x, backend), out=o, temperature=2.0,
                                  backend=backend),
         ref.log_softmax(x, temperature=2.0), (9, 8)),
        (lambda o: ga.softmax_backward(to_backend(g, backend), to_backend(y, backend),
                                       out=o, backend=backend),
         ref.softmax_backward(g, y), (9, 8)),
        (lambda o: ga.log_softmax_backward(to_backend(g, backend), to_backend(ly, backend),
                                           axis=0, out=o, backend=backend),
         ref.log_softmax_backward(g, ly, axis=0), (9, 8)),
        (lambda o: ga.maxout(to_backend(x, backend), 4, out=o, backend=backend),
         ref.maxout(x, 4), (9, 2)),
        (lambda o: ga.maxout_backward(to_backend(g[:, :2], backend), to_backend(x, backend),
                                      4, out=o, backend=backend),
         ref.maxout_backward(g[:, :2], x, 4), (9, 8)),
    ]
    for i, (call, expected, shape) in enumerate(calls):
        out = _alloc(shape, dtype, backend, kind)
        res = call(out)
        assert res is out, f"call {i} did not return out"
        assert_close(to_numpy(out), expected, dtype, msg=f"call {i}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_strided_view_leaves_gaps_untouched(dtype):
    x = sample((6, 5), dtype, seed=10)
    big = np.full((12, 15), 7.0, dtype=dtype)
    out = big[::2, ::3]
    ga.sigmoid(x, out=out)
    assert_close(out, ref.forward("sigmoid", x), dtype)
    mask = np.ones(big.shape, bool)
    mask[::2, ::3] = False
    assert np.all(big[mask] == 7.0)
    big = np.full((12, 15), 7.0, dtype=dtype)
    ga.softmax(x, axis=0, out=big[1::2, 2::3])
    mask = np.ones(big.shape, bool)
    mask[1::2, 2::3] = False
    assert np.all(big[mask] == 7.0)
    assert_close(big[1::2, 2::3], ref.softmax(x, axis=0), dtype)


ELEMENTWISE_INPLACE = ["sigmoid", "tanh", "relu", "gelu", "mish", "softsign", "hardswish",
                       "logsigmoid"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place(backend, dtype):
    # writing through the input is one kernel template for every formula: all of
    # them in float32, two in the other dtypes (each is another compile per op)
    for name in ELEMENTWISE_INPLACE if np.dtype(dtype) == np.float32 else ELEMENTWISE_INPLACE[:3:2]:
        x = sample((33, 17), dtype, seed=11)
        expected = ref.forward(name, x)
        d = to_backend(x.copy(), backend)
        res = getattr(ga, name)(d, out=d, backend=backend)
        assert res is d
        assert_close(to_numpy(d), expected, dtype, msg=name)
    for axis in (0, 1):
        for op, rf in (("softmax", ref.softmax), ("log_softmax", ref.log_softmax)):
            x = sample((33, 17), dtype, seed=12)
            d = to_backend(x.copy(), backend)
            res = getattr(ga, op)(d, axis=axis, out=d, backend=backend)
            assert res is d
            assert_close(to_numpy(d), rf(x, axis=axis), dtype, msg=f"{op} axis={axis}")
    # backward in place into grad_output and into x
    x = sample((33, 17), dtype, seed=13)
    g = sample((33, 17), dtype, seed=14, kinks=False)
    expected = ref.backward("silu", g, x)
    dg = to_backend(g.copy(), backend)
    ga.silu_backward(dg, to_backend(x, backend), out=dg, backend=backend)
    assert_close(to_numpy(dg), expected, dtype, msg="silu_backward out=g")
    dx = to_backend(x.copy(), backend)
    ga.silu_backward(to_backend(g, backend), dx, out=dx, backend=backend)
    assert_close(to_numpy(dx), expected, dtype, msg="silu_backward out=x")
    y = ref.softmax(x, axis=0).astype(dtype)
    expected = ref.softmax_backward(g, y, axis=0)
    dy = to_backend(y.copy(), backend)
    ga.softmax_backward(to_backend(g, backend), dy, axis=0, out=dy, backend=backend)
    assert_close(to_numpy(dy), expected, dtype, msg="softmax_backward out=y")
    ly = ref.log_softmax(x).astype(dtype)
    expected = ref.log_softmax_backward(g, ly)
    dg = to_backend(g.copy(), backend)
    ga.log_softmax_backward(dg, to_backend(ly, backend), out=dg, backend=backend)
    assert_close(to_numpy(dg), expected, dtype, msg="log_softmax_backward out=g")


def test_in_place_non_contiguous_view():
    base = sample((20, 30), np.float32, seed=15)
    keep = base.copy()
    v = base[::-2, 1::3]
    expected_sm = ref.softmax(v, axis=0)
    ga.softmax(v, axis=0, out=v)
    assert_close(v, expected_sm, np.float32)
    mask = np.ones(base.shape, bool)
    mask[::-2, 1::3] = False
    np.testing.assert_array_equal(base[mask], keep[mask])
    t = base.T
    expected = ref.forward("elu", t)
    ga.elu(t, out=t)
    assert_close(t, expected, np.float32)


def test_out_none_returns_new_array():
    x = sample((4, 4), np.float32, seed=16)
    keep = x.copy()
    r = ga.softmax(x)
    assert r is not x
    np.testing.assert_array_equal(x, keep)
    r = ga.gelu(x, out=None)
    assert r is not x
    np.testing.assert_array_equal(x, keep)
