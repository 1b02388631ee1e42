"""Elementwise kernels for the CPU, one per (wrapper, formula, compute dtype).

A kernel applies ``_w`` to every element of 3-D views (see ``_views.flat``);
``_w`` is one of ``gpu_act._wrappers`` bound to a registry formula ``_g``. The
flat element range is split into chunks run in parallel; inside a chunk the
loop runs along a row so LLVM can vectorize contiguous data.

A segment written with plain stores runs ``_segment`` compiled as a function of
its own (``_whole``): inlined into the kernel, its vectorized loop would reload
the formula's constants (polynomial coefficients, ...) from memory on every
iteration; in a function of its own LLVM keeps them in vector registers. The
streamed path's 64-element stages keep the inlined copy, which is faster there
(bench/NOTES.md). A contiguous call that runs on the calling thread with plain
stores calls ``_whole`` itself on the flat arrays (``_plan``): no kernel is
compiled for it.

A view whose rows are contiguous but not the whole array (a row slice, one
half of a gated unit's input) has segments of unit stride that Numba types as
strided: they are cast to contiguous (``_views.unit``, ``_Ua``..``_Uo``), which
LLVM vectorizes; truly strided operands keep their stride, broadcast ones
their one value.

Each operand is read and the result written through its storage codec
(``_codecs``: float16 as uint16 bits, converted in the loop), bound as
``_Ga``/``_Gb``/``_Gc`` (which read element j, or element 0 of an operand
broadcast along the segments) and ``_S``. In place, ``_whole`` writes through the input
argument that out is (``_dst``, see ``_kernels``): its loop then vectorizes.
The defaults below are float32/float64 operands written to ``out``.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ..._wrappers import WRAPPERS
from ...formulas import rrelu_slope
from . import _codecs, _nontemporal
from ._nontemporal import STAGE, aligned_head, buffer, fence, write_aligned
from ._kernels import apart, cached, decorator, formulas, launch, pick
from ._numba import SOURCE_HASH, ijit, kernel_jit, shared_jit
from ._views import flat, row as _row, same, unit as _unit

CHUNK = 1 << 14
STREAM_CHUNK = 1 << 16  # streamed: fewer fences and stage buffers per chunk


def _element(a, j):
    return _L(a[j])  # noqa: F821


def _first(a, j):
    # an operand broadcast along the segment (stride 0): its one value, loop-invariant.
    # LLVM vectorizes a loop of unit strides (it checks them at run time); stride 0
    # would keep the loop scalar
    return _L(a[0])  # noqa: F821


_Ga = _Gb = _Gc = _compile.instantiate(_element, {"_L": _codecs.identity}, f"native.{SOURCE_HASH}", ijit)
_S = _codecs.identity
_dst = pick(3)
_Ua = _Ub = _Uc = _Uo = _unit  # segments of unit stride, typed contiguous (the common call)


def _segment(sa, sb, sc, so, p):
    # 1-D segments indexed from 0: LLVM vectorizes this loop, not one over range(col, col + m)
    d = _dst(sa, sb, sc, so)
    for j in range(d.shape[0]):
        d[j] = _S(_w(_Ga(sa, j), _Gb(sb, j), _Gc(sc, j), p))  # noqa: F821


def _template(a, b, c, out, p):
    # 3-D views (P, R, cols) of P * R rows
    cols = out.shape[-1]
    inner = out.shape[out.ndim - 2]
    total = out.size
    for k in prange((total + _CHUNK - 1) // _CHUNK):  # noqa: F821
        start = k * _CHUNK  # noqa: F821
        stop = min(start + _CHUNK, total)  # noqa: F821
        r = start // cols
        col = start - r * cols
        if _STREAM:  # noqa: F821
            buf = buffer(STAGE, out.dtype)
        while start < stop:
            m = min(stop - start, cols - col)
            sa = _Ua(_row(a, r, inner)[col : col + m])  # noqa: F821
            sb = _Ub(_row(b, r, inner)[col : col + m])  # noqa: F821
            sc = _Uc(_row(c, r, inner)[col : col + m])  # noqa: F821
            so = _Uo(_row(out, r, inner)[col : col + m])  # noqa: F821
            head = aligned_head(so) if _STREAM else -1  # noqa: F821
            if head < 0:
                _whole(sa, sb, sc, so, p)  # noqa: F821
            else:
                # plain up to a cache-line boundary of out, then computed into an
                # aligned L1 buffer and streamed out (see _nontemporal)
                h = min(head, m)
                _segment(sa[:h], sb[:h], sc[:h], so[:h], p)
                for s in range(h, m, STAGE):
                    e = min(s + STAGE, m)
                    t = buf[: e - s]
                    _segment(sa[s:e], sb[s:e], sc[s:e], t, p)
                    write_aligned(so[s:e], t)
            start += m
            r += 1
            col = 0
        if _STREAM:  # noqa: F821
            fence()


def _fill_slopes(out, key, lower, upper):
    n = out.shape[0]
    for k in prange((n + CHUNK - 1) // CHUNK):
        for i in range(k * CHUNK, min(k * CHUNK + CHUNK, n)):
            out[i] = _slope(key, np.uint64(i), lower, upper)  # noqa: F821


def _bound(wrapper, formula, ctype):
    """The wrapper bound to the formula in compute dtype ``ctype``: compiled once and
    inlined into every kernel variant of (wrapper, formula, ctype)."""

    def build():
        tag = f"{wrapper}.{formula.__name__}.{ctype.name}.{SOURCE_HASH}"
        return _compile.instantiate(WRAPPERS[wrapper], {"_g": formulas(ctype)[formula.__name__]}, tag, ijit)

    return cached(("bound", wrapper, formula, ctype), build)


def _getter(codec, ctype, broadcast):
    """The load of one operand element (``_first`` where the operand is broadcast along
    the segments, else ``_element``) through ``codec``, shared by every kernel."""
    return cached(
        ("get", codec, ctype, broadcast),
        lambda: _compile.instantiate(
            _first if broadcast else _element, {"_L": _codecs.functions(codec, ctype).load},
            f"{codec.name}.{ctype.name}.{SOURCE_HASH}", ijit
        ),
    )


def _io(wrapper, formula, ctype, cs, bcast):
    # the bound formula, the operands' loads and the output's store
    get = [_getter(c, ctype, f) for c, f in zip(cs, bcast)]
    return {"_w": _bound(wrapper, formula, ctype), "_Ga": get[0], "_Gb": get[1], "_Gc": get[2],
            "_S": _codecs.functions(cs[3], ctype).store}


def _whole(wrapper, formula, ctype, cs, dst, bcast=(False,) * 3):
    """``_segment`` as a function of its own, writing through argument ``dst``: called
    by the kernels for each plain segment, and from Python on a whole contiguous
    array that runs on the calling thread (``_plan``), where a kernel around it
    would only add a compile and a call."""

    def build():
        names = ".".join(c.name for c in cs)
        flags = "".join("b" if f else "e" for f in bcast)
        tag = f"{wrapper}.{formula.__name__}.{ctype.name}.{names}.{dst}.{flags}.whole.{SOURCE_HASH}"
        return _compile.instantiate(_segment, {**_io(wrapper, formula, ctype, cs, bcast), "_dst": pick(dst)}, tag,
                                    shared_jit)

    return cached(("whole", wrapper, formula, ctype, cs, dst, bcast), build)


def _kernel(wrapper, formula, ctype, size, stream, cs, dst, bcast, unit=True):
    """The kernel for operand codecs ``cs`` (a, b, c, out) writing through argument
    ``dst`` (3: out; 0-2: the input that out is, in place); ``bcast``: whether each
    of a, b, c is broadcast along the segments (its innermost stride is 0);
    ``unit``: whether every other operand's innermost stride is its item size (its
    segments are then typed contiguous, so the loops vectorize)."""
    how = decorator(size)

    def build():
        names = ".".join(c.name for c in cs)
        flags = "".join("b" if f else ("e" if unit else "s") for f in bcast)
        tag = f"{wrapper}.{formula.__name__}.{ctype.name}.{names}.{dst}.{flags}.{how.__name__}.{'stream' if stream else 'store'}.{SOURCE_HASH}"
        io = _io(wrapper, formula, ctype, cs, bcast)
        # the streamed stages write into a buffer, never in place
        seg = _compile.instantiate(_segment, {**io, "_dst": pick(3)}, tag, ijit)
        whole = _whole(wrapper, formula, ctype, cs, dst, bcast)
        chunk = STREAM_CHUNK if stream else CHUNK
        casts = [same if f or not unit else _unit for f in bcast]
        return _compile.instantiate(
            _template,
            {"_segment": seg, "_whole": whole, "_STREAM": stream, "_CHUNK": chunk,
             "_Ua": casts[0], "_Ub": casts[1], "_Uc": casts[2], "_Uo": _unit if unit else same},
            tag,
            how,
        )

    return cached(("ew", wrapper, formula, ctype, how, stream, cs, dst, bcast, unit), build)


# the template takes three inputs: with fewer, the last one repeats (its loads are dead code)
_PICK = {1: (0, 0, 0), 2: (0, 1, 1), 3: (0, 1, 2)}


def _plan(wrapper, formula, dtypes, size):
    """(function, views3, compute dtype, storage dtypes) for C-contiguous operands
    of ``dtypes`` (inputs..., out) of ``size`` elements, out apart from every
    input: what a call computes before it runs, once per (wrapper, formula,
    dtypes, thread use, store kind). The function is the kernel over 3-D views
    (``views3``) or, on the calling thread with plain stores, the segment
    function itself (``_whole``) over the flat arrays. A storage dtype is None
    for an operand read as it is (float32, float64)."""
    nbytes = size * dtypes[-1].itemsize
    how = decorator(size)
    key = (formula, wrapper, dtypes, how, _nontemporal.wanted(nbytes))

    def build():
        ctype = COMPUTE[np.result_type(*dtypes[:-1])]
        stream = _streamed(formula, nbytes)
        cs = tuple(_codecs.codec(d) for d in dtypes)
        a, b, c = _PICK[len(dtypes) - 1]
        picked = (cs[a], cs[b], cs[c], cs[-1])
        storage = tuple(None if cd.native else cd.storage for cd in cs)
        if how is kernel_jit and not stream:
            return _whole(wrapper, formula, ctype, picked, 3), False, ctype, storage
        return _kernel(wrapper, formula, ctype, size, stream, picked, 3, (False,) * 3), True, ctype, storage

    return cached(key, build)


def _streamed(formula, nbytes):
    """Whether a kernel of ``formula`` writing ``nbytes`` streams its output
    (``_nontemporal``: a large output, a formula cheap enough to be memory-bound)."""
    return _nontemporal.wanted(nbytes) and _nontemporal.transcendental_cost(formula) <= _nontemporal.MAX_COST


def _run(wrapper, formula, arrays, params, out):
    """out = wrapper(arrays...) elementwise; arrays share out's shape."""
    picked = _PICK[len(arrays)]
    a, b, c = picked
    if out.flags.c_contiguous and all([x.flags.c_contiguous for x in arrays]) and apart(out, arrays):
        k, views3, ctype, storage = _plan(wrapper, formula, tuple([x.dtype for x in arrays]) + (out.dtype,), out.size)
        shape = (1, 1, out.size) if views3 else (out.size,)
        v = [x.reshape(shape) if st is None else x.reshape(shape).view(st) for x, st in zip(arrays + [out], storage)]
        k(v[a], v[b], v[c], v[-1], tuple([ctype.type(p) for p in params]) if params else ())
        return
    ctype = COMPUTE[np.result_type(*arrays)]
    stream = _streamed(formula, out.size * out.dtype.itemsize)
    p = tuple(map(ctype.type, params))

    def run(v, cs, alias):
        dst = 3 if alias is None else picked.index(alias)
        # stride 0 along the segments (of length 1 too: element 0 is then the element)
        zero = [w.strides[-1] == 0 for w in v]
        bcast = (zero[a], zero[b], zero[c])
        unit = all(z or w.strides[-1] == w.itemsize or w.shape[-1] == 1 for w, z in zip(v, zero))
        k = _kernel(wrapper, formula, ctype, out.size, stream, (cs[a], cs[b], cs[c], cs[-1]), dst, bcast, unit)
        k(v[a], v[b], v[c], v[-1], p)

    launch(run, flat, arrays, out)


def unary(f, x, params, out):
    """out = f(x, *params)"""
    _run("unary", f, [x], params, out)


def scaled(f, g, x, params, out):
    """out = g * f(x, *params)"""
    _run("scaled", f, [g, x], params, out)


def unary_slope(f, x, slope, out):
    """out = f(x, slope), slope an array broadcastable to x"""
    _run("unary_slope", f, [x, np.broadcast_to(slope, x.shape)], (), out)


def scaled_slope(f, g, x, slope, out):
    """out = g * f(x, slope)"""
    _run("scaled_slope", f, [g, x, np.broadcast_to(slope, x.shape)], (), out)


def rrelu_slopes(shape, key, lower, upper, dtype):
    """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""
    ctype = COMPUTE[np.dtype(dtype)]
    size = int(np.prod(shape))
    how = decorator(size)
    fill = cached(
        ("slopes", ctype, how),
        lambda: _compile.instantiate(
            _fill_slopes, {"_slope": formulas(ctype)[rrelu_slope.__name__]}, f"{ctype.name}.{how.__name__}.{SOURCE_HASH}", how
        ),
    )
    out = np.empty(size, ctype)
    fill(out, np.uint64(key), ctype.type(lower), ctype.type(upper))
    return out.reshape(shape)
