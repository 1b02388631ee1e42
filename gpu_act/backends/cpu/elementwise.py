"""Elementwise kernels for the CPU, one per (wrapper, formula, compute dtype).

A kernel applies ``_w`` to every element of 2-D views (see ``_views.flat2``);
``_w`` is one of ``gpu_act._wrappers`` bound to a registry formula ``_g``. The
flat element range is split into chunks run in parallel; inside a chunk the
loop runs along a row so LLVM can vectorize contiguous data.

A segment written with plain stores runs ``_segment`` compiled as a function of
its own (``_whole``). Inlined into the kernel, its vectorized loop reloaded the
formula's constants (polynomial coefficients, ...) from memory on every
iteration; in a function of its own LLVM keeps them in vector registers
(sigmoid on 64K float32 in cache, one thread: 0.353 to 0.298 ns per element;
gelu 0.599 to 0.579). The streamed path's 64-element stages keep the inlined
copy: the stage loop in a function of its own measured slower.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ..._wrappers import WRAPPERS
from ...formulas import rrelu_slope
from . import _stream
from ._stream import STAGE, aligned_head, buffer, fence, write_aligned
from ._launch import cached, decorator, formulas, launch
from ._numba import SOURCE_HASH, ijit, jit, pjit
from ._views import flat2

CHUNK = 1 << 14
STREAM_CHUNK = 1 << 16  # streamed: fewer fences and stage buffers (measured ~8% faster than 1 << 14)


def _segment(sa, sb, sc, so, p):
    # 1-D segments indexed from 0: LLVM vectorizes this loop, not one over range(col, col + m)
    for j in range(so.shape[0]):
        so[j] = _w(sa[j], sb[j], sc[j], p)  # noqa: F821


def _template(a, b, c, out, p):
    rows, cols = out.shape
    total = rows * cols
    for k in prange((total + _CHUNK - 1) // _CHUNK):  # noqa: F821
        start = k * _CHUNK  # noqa: F821
        stop = min(start + _CHUNK, total)  # noqa: F821
        r = start // cols
        col = start - r * cols
        if _STREAM:  # noqa: F821
            buf = buffer(STAGE, out.dtype)
        while start < stop:
            m = min(stop - start, cols - col)
            sa, sb, sc, so = a[r, col : col + m], b[r, col : col + m], c[r, col : col + m], out[r, col : col + m]
            head = aligned_head(so) if _STREAM else -1  # noqa: F821
            if head < 0:
                _whole(sa, sb, sc, so, p)  # noqa: F821
            else:
                # plain up to a cache-line boundary of out, then computed into an
                # aligned L1 buffer and streamed out (see _stream)
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


def _kernel(wrapper, formula, ctype, size, stream):
    how = decorator(size)

    def build():
        tag = f"{wrapper}.{formula.__name__}.{ctype.name}.{how.__name__}.{'stream' if stream else 'store'}.{SOURCE_HASH}"
        w = _compile.instantiate(WRAPPERS[wrapper], {"_g": formulas(ctype)[formula.__name__]}, tag, ijit)
        seg = _compile.instantiate(_segment, {"_w": w}, tag, ijit)
        whole = _compile.instantiate(_segment, {"_w": w}, tag + ".whole", jit)
        chunk = STREAM_CHUNK if stream else CHUNK
        return _compile.instantiate(_template, {"_segment": seg, "_whole": whole, "_STREAM": stream, "_CHUNK": chunk}, tag, how)

    return cached(("ew", wrapper, formula, ctype, how, stream), build)


# the template takes three inputs: with fewer, the last one repeats (its loads are dead code)
_PICK = {1: (0, 0, 0), 2: (0, 1, 1), 3: (0, 1, 2)}


def _run(wrapper, formula, arrays, params, out):
    """out = wrapper(arrays...) elementwise; arrays share out's shape."""
    ctype = COMPUTE[np.result_type(*arrays)]
    stream = _stream.wanted(out.size * ctype.itemsize) and _compile.transcendental_cost(formula) <= _stream.MAX_COST
    k = _kernel(wrapper, formula, ctype, out.size, stream)
    p = tuple(map(ctype.type, params))
    a, b, c = _PICK[len(arrays)]

    def run(*v):
        k(v[a], v[b], v[c], v[-1], p)

    launch(run, flat2, arrays, out, ctype)


def unary(f, x, params, out):
    """out = f(x, *params)"""
    _run("_apply", f, [x], params, out)


def scaled(f, g, x, params, out):
    """out = g * f(x, *params)"""
    _run("_scaled", f, [g, x], params, out)


def unary_slope(f, x, slope, out):
    """out = f(x, slope), slope an array broadcastable to x"""
    _run("_apply_slope", f, [x, np.broadcast_to(slope, x.shape)], (), out)


def scaled_slope(f, g, x, slope, out):
    """out = g * f(x, slope)"""
    _run("_scaled_slope", f, [g, x, np.broadcast_to(slope, x.shape)], (), out)


def rrelu_slopes(shape, key, lower, upper, dtype):
    """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""
    ctype = COMPUTE[np.dtype(dtype)]
    fill = cached(
        ("slopes", ctype),
        lambda: _compile.instantiate(_fill_slopes, {"_slope": formulas(ctype)[rrelu_slope.__name__]}, f"{ctype.name}.{SOURCE_HASH}", pjit),
    )
    out = np.empty(int(np.prod(shape)), ctype)
    fill(out, np.uint64(key), ctype.type(lower), ctype.type(upper))
    return out.reshape(shape)
