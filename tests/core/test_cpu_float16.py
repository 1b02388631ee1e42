"""float16 on the CPU: converted inside the kernels, element by element, through
the uint16 bits (gpu_act/backends/cpu/_codecs.py), never as a whole array.

- the conversions are bit-exact against NumPy's astype: every half pattern to
  float32, and float32 values of every kind (half values, midpoints between
  them and their neighbours, subnormals, overflow, NaN payloads) to half;
- every kernel that takes float16 gives the float32 kernel's result on the
  upcast input rounded once to half, bit for bit, in any layout, on special
  values, in place;
- no float32 copy of a large float16 input is made (tracemalloc sees NumPy's
  allocations).
"""

from __future__ import annotations

import importlib
import tracemalloc

import numba
import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import OP_DEFAULTS, sample
from tolerances import assert_close

codecs = importlib.import_module("gpu_act.backends.cpu._codecs")
PARALLEL_MIN = importlib.import_module("gpu_act.backends.cpu._kernels").PARALLEL_MIN

F16 = codecs.codec(np.float16)
_load, _store, _key, _value = codecs.functions(F16, np.float32)


@numba.njit
def _decode_all(h, out):
    for i in range(h.shape[0]):
        out[i] = _load(h[i])


@numba.njit
def _encode_all(f, out):
    for i in range(f.shape[0]):
        out[i] = _store(f[i])


@numba.njit
def _max_of(h):
    k = _key(h[0])
    for i in range(1, h.shape[0]):
        k = max(k, _key(h[i]))
    return _value(k)


ALL_HALF = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _bits32(a):
    return np.asarray(a, np.float32).view(np.uint32)


def test_half_to_float_every_pattern():
    out = np.empty(ALL_HALF.size, np.float32)
    _decode_all(ALL_HALF, out)
    want = ALL_HALF.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(_bits32(out), _bits32(want))  # NaN payloads (signalling ones too) kept


def _float32_cases():
    halves = ALL_HALF.view(np.float16).astype(np.float32)
    finite = np.unique(halves[np.isfinite(halves)].astype(np.float64))
    mids = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)  # exact in float32: ties
    up, down = np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))
    specials = np.array(
        [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000,  # float32 subnormals and the smallest normal
         0x33000000, 0x33000001, 0x337FFFFF, 0x33800000, 0x33C00000,  # around half the smallest half subnormal
         0x387FC000, 0x387FE000, 0x387FFFFF, 0x38800000,  # around the smallest normal half
         0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FFFFF, 0x47800000, 0x7F7FFFFF,  # 65504 .. overflow
         0x7F800000, 0x7F800001, 0x7F801FFF, 0x7F802000, 0x7FA00000, 0x7FC00000, 0x7FC00001, 0x7FFFFFFF],
        np.uint32).view(np.float32)
    rng = np.random.default_rng(7)
    random_bits = rng.integers(0, 1 << 32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # random values in the half range, where rounding matters most
    in_range = (rng.standard_normal(1_000_000) * np.exp2(rng.integers(-26, 17, 1_000_000))).astype(np.float32)
    f = np.concatenate([halves, mids, up, down, specials, random_bits, in_range])
    return np.concatenate([f, -f])


def test_float_to_half_rounds_as_numpy():
    f = _float32_cases()
    out = np.empty(f.size, np.uint16)
    _encode_all(f, out)
    with np.errstate(over="ignore", invalid="ignore"):
        want = f.astype(np.float16).view(np.uint16)
    bad = out != want
    assert not bad.any(), (f[bad][:8], out[bad][:8], want[bad][:8])


def test_half_keys_order_as_values():
    rng = np.random.default_rng(3)
    halves = ALL_HALF.view(np.float16)
    finite = ALL_HALF[np.isfinite(halves)]
    for n in (1, 2, 7, 64, 1000):
        for _ in range(50):
            h = rng.choice(finite, n)
            assert _max_of(h) == halves[h].astype(np.float32).max()
    # a NaN with the sign bit clear is the maximum, as in the float32 keys
    h = np.array([0x3C00, 0x7E00, 0xFC00], np.uint16)
    assert np.isnan(_max_of(h))


# --------------------------------------------------------------------------- kernels


def _same_bits(actual, expected, msg=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype == np.float16, msg
    assert actual.shape == expected.shape, msg
    a, e = actual.view(np.uint16), expected.view(np.uint16)
    bad = (a != e) & ~(np.isnan(actual) & np.isnan(expected))
    assert not bad.any(), f"{msg}: {int(bad.sum())} differ, e.g. {actual[bad][:5]} vs {expected[bad][:5]}"


def _rounded(r):
    with np.errstate(over="ignore"):
        return np.asarray(r).astype(np.float16)


def _pair(view, base):
    """view of base, and the same view of base in float32 (the same layout: row
    sums run in the order the layout gives)."""
    return view(base), view(base.astype(np.float32))


SPECIAL = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 65504.0, -65504.0, 6.1e-5, -6.1e-5, 6e-8, -6e-8, 3e-5, 1.0, -1.0,
     2.5, -2.5, 11.0, -11.0, 100.0, -100.0],
    np.float16,
)


def _with_specials(shape, seed):
    x = sample(shape, np.float16, seed=seed)
    flat = x.reshape(-1)
    pos = np.random.default_rng(seed).choice(flat.size, min(flat.size, 3 * SPECIAL.size), replace=False)
    flat[pos] = np.resize(SPECIAL, pos.size)
    return x


# views of a (12, 40) base and where they come from
LAYOUTS = {
    "contiguous": lambda a: a,
    "strided": lambda a: a[::2, 1::3],
    "transposed": lambda a: a.T,
    "negative": lambda a: a[::-1, ::-2],
    "broadcast": lambda a: np.broadcast_to(a[:1], a.shape),
    "3d_swapped": lambda a: a.reshape(3, 4, 40).transpose(2, 0, 1)[:, ::-1, 1:],
}


def _op_id(name, params):
    return name + "".join(f"-{v}" for v in params.values())


# every op contiguous (its formula through the codecs); the layouts, which the
# kernel template handles alike for every formula, on a few ops (no exp, one,
# two; several params)
ELEMENTWISE_CASES = [
    pytest.param(name, params, layout, id=f"{_op_id(name, params)}-{layout}")
    for name, params in OP_DEFAULTS
    for layout in LAYOUTS
    if layout == "contiguous" or name in ("hardswish", "sigmoid", "gelu", "softplus")
]


@pytest.mark.parametrize("name,params,layout", ELEMENTWISE_CASES)
def test_elementwise_is_float32_rounded_once(name, params, layout):
    view = LAYOUTS[layout]
    x, x32 = _pair(view, _with_specials((12, 40), seed=1))
    g, g32 = _pair(view, sample((12, 40), np.float16, seed=2, scale=1.0, kinks=False))
    with np.errstate(all="ignore"):
        _same_bits(getattr(ga, name)(x, **params), _rounded(getattr(ga, name)(x32, **params)), name)
        _same_bits(
            getattr(ga, name + "_backward")(g, x, **params),
            _rounded(getattr(ga, name + "_backward")(g32, x32, **params)),
            name + "_backward",
        )
    assert_close(getattr(ga, name)(x, **params), ref.forward(name, x, **params), np.float16)


@pytest.mark.parametrize("layout", ["negative", "3d_swapped"])
def test_prelu_rrelu_are_float32_rounded_once(layout):
    view = LAYOUTS[layout]
    x, x32 = _pair(view, _with_specials((12, 40), seed=3))
    g, g32 = _pair(view, sample((12, 40), np.float16, seed=4, scale=1.0, kinks=False))
    w = np.linspace(-0.5, 0.5, x.shape[1]).astype(np.float16)
    w32 = w.astype(np.float32)
    _same_bits(ga.prelu(x, w), _rounded(ga.prelu(x32, w32)), "prelu")
    gx, gw = ga.prelu_backward(g, x, w)
    gx32, gw32 = ga.prelu_backward(g32, x32, w32)
    _same_bits(gx, _rounded(gx32), "prelu grad x")
    _same_bits(gw, _rounded(gw32), "prelu grad w")
    for kw in ({}, {"training": True, "seed": 5}):
        _same_bits(ga.rrelu(x, **kw), _rounded(ga.rrelu(x32, **kw)), f"rrelu {kw}")
        _same_bits(ga.rrelu_backward(g, x, **kw), _rounded(ga.rrelu_backward(g32, x32, **kw)), f"rrelu_backward {kw}")


ROW_CASES = [("contiguous", -1), ("contiguous", 0), ("transposed", 1), ("negative", -1), ("strided", 0),
             ("3d_swapped", 1), ("3d_swapped", 2)]


# softmax on every layout; log_softmax (another row kernel, the same row views)
# on one contiguous and two strided ones; a temperature (1/T compiled in) on two
SOFTMAX_CASES = (
    [("softmax", layout, axis, 1.0) for layout, axis in ROW_CASES]
    + [("log_softmax", layout, axis, 1.0) for layout, axis in [("contiguous", -1), ("transposed", 1), ("3d_swapped", 2)]]
    + [(op, layout, axis, 0.7) for op, (layout, axis) in [("softmax", ("3d_swapped", 1)), ("log_softmax", ("contiguous", -1))]]
)


@pytest.mark.parametrize("op,layout,axis,temperature", SOFTMAX_CASES)
def test_softmax_family_is_float32_rounded_once(op, layout, axis, temperature):
    view = LAYOUTS[layout]
    base = _with_specials((12, 40), seed=6)
    base[:, 0] = 100.0  # a row beyond exp's float16 (and float32) range without the max
    x, x32 = _pair(view, base)
    g, g32 = _pair(view, sample((12, 40), np.float16, seed=7, scale=1.0, kinks=False))
    kw = {"axis": axis, "temperature": temperature}
    with np.errstate(all="ignore"):
        y = getattr(ga, op)(x, **kw)
        _same_bits(y, _rounded(getattr(ga, op)(x32, **kw)), op)
        assert_close(y, getattr(ref, op)(x, **kw), np.float16)
        # y in the same layout as g for both
        yb = np.empty_like(base)
        y16, y32 = _pair(view, yb)
        y16[...] = y
        y32[...] = y
        b = getattr(ga, op + "_backward")(g, y16, **kw)
        _same_bits(b, _rounded(getattr(ga, op + "_backward")(g32, y32, **kw)), "backward")


@pytest.mark.parametrize("n", [1, 1025, 16 * 1024, 40000])  # one block, several, KEEP_MAX, beyond it
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_rows_longer_than_the_buffer(op, n):
    # e^{d_j} waits in a per-task float32 buffer for the first KEEP_MAX entries of a
    # row; beyond, the second pass computes it again: both give the same bits
    rows = 3 if 3 * n < PARALLEL_MIN else 1  # below PARALLEL_MIN elements: the serial kernel
    x = sample((rows, n), np.float16, seed=n)
    _same_bits(getattr(ga, op)(x), _rounded(getattr(ga, op)(x.astype(np.float32))), f"{op} n={n}")
    xt = np.ascontiguousarray(x.T)
    _same_bits(getattr(ga, op)(xt, axis=0), _rounded(getattr(ga, op)(xt.astype(np.float32), axis=0)), f"{op} axis 0 n={n}")


@pytest.mark.parametrize("layout,axis,smoothing", [("contiguous", -1, 0.0), ("contiguous", 0, 0.1), ("transposed", -1, 0.0),
                                                    ("negative", 1, 0.1)])
def test_cross_entropy_is_float32_rounded_once(layout, axis, smoothing):
    view = LAYOUTS[layout]
    z, z32 = _pair(view, _with_specials((12, 40), seed=8))
    rows = z.shape[1 - axis % 2]
    t = np.random.default_rng(9).integers(0, z.shape[axis], rows)
    t[1] = -100  # ignored
    kw = {"axis": axis, "label_smoothing": smoothing}
    with np.errstate(all="ignore"):
        for reduction in ("none", "sum"):
            loss, grad = ga.cross_entropy(z, t, return_grad=True, reduction=reduction, **kw)
            loss32, grad32 = ga.cross_entropy(z32, t, return_grad=True, reduction=reduction, **kw)
            _same_bits(grad, _rounded(grad32), "index grad")
            _same_bits(loss, _rounded(loss32), "index loss")
        p, p32 = _pair(view, ga.softmax(sample((12, 40), np.float16, seed=10)))
        loss, grad = ga.cross_entropy(z, p, return_grad=True, reduction="none", **kw)
        loss32, grad32 = ga.cross_entropy(z32, p32, return_grad=True, reduction="none", **kw)
        _same_bits(grad, _rounded(grad32), "probability grad")
        _same_bits(loss, _rounded(loss32), "probability loss")
        # float32 probabilities with float16 logits: read as float32, unrounded
        loss, grad = ga.cross_entropy(z, p32, return_grad=True, reduction="none", **kw)
        _same_bits(grad, _rounded(grad32), "float32 probabilities")


@pytest.mark.parametrize("layout,axis", ROW_CASES)
def test_maxout_is_exact(layout, axis):
    view = LAYOUTS[layout]
    x, x32 = _pair(view, _with_specials((12, 40), seed=11))
    pool = 2 if x.shape[axis] % 2 == 0 else 1
    r = ga.maxout(x, pool, axis=axis)
    _same_bits(r, _rounded(ga.maxout(x32, pool, axis=axis)), "maxout")
    g = sample(r.shape, np.float16, seed=12, kinks=False)
    _same_bits(ga.maxout_backward(g, x, pool, axis=axis),
               _rounded(ga.maxout_backward(g.astype(np.float32), x32, pool, axis=axis)), "backward")


def test_in_place_float16():
    x = _with_specials((12, 40), seed=13)
    g = sample((12, 40), np.float16, seed=14, scale=1.0, kinks=False)
    for op in ("softmax", "log_softmax"):
        want = getattr(ga, op)(x)
        xi = x.copy()
        assert getattr(ga, op)(xi, out=xi) is xi
        _same_bits(xi, want, op)
        gi = g.copy()
        _same_bits(getattr(ga, op + "_backward")(gi, want, out=gi), getattr(ga, op + "_backward")(g, want), "out=g")
        yi = want.copy()
        _same_bits(getattr(ga, op + "_backward")(g, yi, out=yi), getattr(ga, op + "_backward")(g, want), "out=y")
    with np.errstate(all="ignore"):
        for name in ("gelu", "sigmoid", "relu"):
            xi = x.copy()
            _same_bits(getattr(ga, name)(xi, out=xi), getattr(ga, name)(x), name)
            gi = g.copy()
            _same_bits(getattr(ga, name + "_backward")(gi, x, out=gi), getattr(ga, name + "_backward")(g, x), name)
    # a transposed view in place
    base = x.copy()
    v = base.T
    ga.softmax(v, axis=0, out=v)
    _same_bits(v, ga.softmax(x.T, axis=0), "transposed in place")


# --------------------------------------------------------------------------- memory

N_BIG = 8 << 20  # float16 elements: 16 MiB


def _peak(fn):
    fn()  # compiled and warm
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N_BIG, dtype=np.float32).astype(np.float16)
    g = rng.standard_normal(N_BIG, dtype=np.float32).astype(np.float16)
    return x, g


CALLS = {
    "sigmoid": lambda x, g: ga.sigmoid(x),
    "gelu_backward": lambda x, g: ga.gelu_backward(g, x),
    "prelu": lambda x, g: ga.prelu(x.reshape(64, 128, -1), np.linspace(0, 1, 128).astype(np.float16)),
    "rrelu": lambda x, g: ga.rrelu(x),
    "softmax": lambda x, g: ga.softmax(x.reshape(-1, 4096)),
    "log_softmax_axis0": lambda x, g: ga.log_softmax(x.reshape(1024, -1), axis=0),
    "softmax_one_row": lambda x, g: ga.softmax(x),
    "softmax_backward": lambda x, g: ga.softmax_backward(g.reshape(-1, 1024), x.reshape(-1, 1024)),
    "log_softmax_backward": lambda x, g: ga.log_softmax_backward(g.reshape(-1, 64), x.reshape(-1, 64)),
    "cross_entropy": lambda x, g: ga.cross_entropy(x.reshape(-1, 1024), np.zeros(N_BIG // 1024, np.int64), return_grad=True),
    "cross_entropy_probabilities": lambda x, g: ga.cross_entropy(x.reshape(-1, 1024), g.reshape(-1, 1024), return_grad=True),
    "maxout": lambda x, g: ga.maxout(x, 4),
    "maxout_backward": lambda x, g: ga.maxout_backward(g[: N_BIG // 4], x, 4),
}


@pytest.mark.parametrize("call", CALLS)
def test_no_float32_copy_of_a_large_float16_input(big, call):
    x, g = big
    peak = _peak(lambda: CALLS[call](x, g))
    # the result (the size of the input at most) and small change; a float32 copy
    # of an input or of the result would be twice the input on its own
    assert peak < 1.25 * x.nbytes, f"{call}: peak {peak / x.nbytes:.2f}x the input"


def test_in_place_float16_allocates_nothing_large(big):
    x, g = big
    xi = x.reshape(-1, 2048).copy()
    for fn in (lambda: ga.softmax(xi, out=xi), lambda: ga.tanh(xi, out=xi), lambda: ga.softmax(xi.T, axis=0, out=xi.T)):
        assert _peak(fn) < 0.05 * x.nbytes
