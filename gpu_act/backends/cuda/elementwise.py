"""Elementwise kernels, one per (wrapper, formula, compute dtype, path).

``_w`` is one of ``gpu_act._wrappers`` bound to a registry formula ``_g``
compiled as a device function (``_launch.formulas``); operands are loaded in
their dtype, converted to the compute dtype ``_C`` (float16 -> float32) and
the result is stored in the output's dtype. Paths: "flat" (every operand one
dense run in the same order: plain 1-D indexing) and "strided" (any layout:
the flat index is split into coordinates of the merged shape). Both are
grid-stride loops.
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from ..._wrappers import WRAPPERS
from ...formulas import rrelu_slope
from . import _arrays, _launch

cuda = _cuda.cuda


def _flat(a, b, c, out, p):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    n = out.shape[0]
    while i < n:
        out[i] = _w(_C(a[i]), _C(b[i]), _C(c[i]), p)  # noqa: F821
        i += step


def _strided(a, ao, ast, b, bo, bst, c, co, cst, out, oo, ost, shape, p):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    total = 1
    for k in range(len(shape)):
        total *= shape[k]
    while i < total:
        # C-order coordinates of i, accumulated into each operand's offset
        r = i
        pa, pb, pc, po = ao, bo, co, oo
        for k in range(len(shape) - 1, -1, -1):
            q = r // shape[k]
            j = r - q * shape[k]
            r = q
            pa += j * ast[k]
            pb += j * bst[k]
            pc += j * cst[k]
            po += j * ost[k]
        out[po] = _w(_C(a[pa]), _C(b[pb]), _C(c[pc]), p)  # noqa: F821
        i += step


def _fill_slopes(out, key, lower, upper):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = _slope(key, np.uint64(i), lower, upper)  # noqa: F821
        i += step


PATHS = {"flat": _flat, "strided": _strided}


def kernel(wrapper, formula, ctype, path):
    """The kernel applying ``wrapper`` around ``formula`` (None for _copy)."""
    ctype = np.dtype(ctype)
    name = "copy" if formula is None else formula.__name__
    tag = f"{wrapper}.{name}.{path}"

    def build():
        g = {} if formula is None else {"_g": _launch.formulas(ctype)[formula.__name__]}
        w = _compile.instantiate(WRAPPERS[wrapper], g, f"{tag}.{ctype.name}", _cuda.device, ctype)
        return _launch.kernel(PATHS[path], {"_w": w, "_C": ctype.type}, f"ew.{tag}", ctype, "elementwise")

    return _launch.cached(("ew", tag, ctype), build)


def _run(ctx, wrapper, formula, arrays, params, out, ctype=None):
    """out = wrapper(arrays...) elementwise; arrays share out's shape."""
    ctype = ctype or COMPUTE[np.result_type(*(a.dtype for a in arrays))]
    p = tuple(ctype.type(v) for v in params)
    # the kernels take three inputs: repeat the last one (its loads are dead code)
    pick = [min(i, len(arrays) - 1) for i in range(3)]

    def run(target):
        ops = [*arrays, target]
        flat, extent, views = _launch.elementwise_operands(ctx, ops)
        k = kernel(wrapper, formula, ctype, "flat" if flat else "strided")
        n = extent if flat else int(np.prod(extent))
        config = _launch.elementwise_config(n, _launch.limits(ctx))
        if flat:
            args = [views[i] for i in pick] + [views[-1], p]
        else:
            args = [v for i in pick for v in views[i]] + [*views[-1], extent, p]
        _launch.launch(ctx, k, config, args)

    _launch.staged(ctx, out, arrays, run)


def unary(ctx, f, x, params, out):
    """out = f(x, *params)"""
    _run(ctx, "_apply", f, [x], params, out)


def scaled(ctx, f, g, x, params, out):
    """out = g * f(x, *params)"""
    _run(ctx, "_scaled", f, [g, x], params, out)


def _broadcast(slope, shape):
    """A zero-stride view of ``slope`` (unit dims where it broadcasts) with ``shape``."""
    pad = len(shape) - slope.ndim
    strides = [0] * pad + [s if n != 1 else 0 for n, s in zip(slope.shape, slope.strides)]
    return slope._view(shape, strides)


def unary_slope(ctx, f, x, slope, out):
    """out = f(x, slope), slope an array broadcastable to x"""
    _run(ctx, "_apply_slope", f, [x, _broadcast(slope, x.shape)], (), out)


def scaled_slope(ctx, f, g, x, slope, out):
    """out = g * f(x, slope)"""
    _run(ctx, "_scaled_slope", f, [g, x, _broadcast(slope, x.shape)], (), out)


def convert(ctx, src, dst):
    """dst[...] = src, cast to dst's dtype (any layouts, same shape)."""
    _run(ctx, "_copy", None, [src], (), dst, ctype=dst.dtype)


def slopes_kernel(ctype):
    ctype = np.dtype(ctype)
    return _launch.cached(
        ("slopes", ctype, "elementwise"),
        lambda: _launch.kernel(_fill_slopes, {"_slope": _launch.formulas(ctype)[rrelu_slope.__name__]}, "slopes", ctype, "elementwise"),
    )


def rrelu_slopes(ctx, shape, key, lower, upper, dtype):
    """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""
    ctype = COMPUTE[np.dtype(dtype)]
    fill = slopes_kernel(ctype)
    n = int(np.prod(shape))
    out = _arrays.empty(ctx, (n,), ctype)
    view = _launch.contiguous_view(ctx, out)
    config = _launch.elementwise_config(n, _launch.limits(ctx))
    _launch.launch(ctx, fill, config, [view, np.uint64(key), ctype.type(lower), ctype.type(upper)])
    return out.reshape(tuple(shape))
