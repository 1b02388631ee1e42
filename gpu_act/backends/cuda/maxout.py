"""Maxout on rows: the max of each run of ``pool`` consecutive entries along
the axis, and its backward, which routes each gradient to the first maximum
of its group (a NaN counts as the maximum, as in argmax). One thread per
group, grid-stride over (row, group) in C order. Values are compared and
gradients written through the operands' codec (``_codecs``: ``_Lx``, ``_Lg``
load, ``_So`` stores); the forward copies the maximum's stored element as it
is (out has x's dtype)."""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from . import _codecs, _config, _kernels, _operands, _rows, _staging

cuda = _cuda.cuda


def _argmax(x, p, step, pool):
    # index in [0, pool) of the first maximum of x[p], x[p + step], ...
    best = 0
    m = _Lx(x[p])  # noqa: F821
    for q in range(1, pool):
        v = _Lx(x[p + q * step])  # noqa: F821
        if m == m and (v > m or v != v):
            m = v
            best = q
    return best


def _forward(x, xo, xs, xa, out, oo, os_, oa, shape, total, groups, pool):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < total:
        row = i // groups
        k = i - row * groups
        px = _row_offset(row, shape, xs, xo) + k * pool * xa  # noqa: F821
        out[_row_offset(row, shape, os_, oo) + k * oa] = x[px + _argmax(x, px, xa, pool) * xa]  # noqa: F821
        i += step


def _backward(g, go, gs, ga, x, xo, xs, xa, out, oo, os_, oa, shape, total, groups, pool):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < total:
        row = i // groups
        k = i - row * groups
        px = _row_offset(row, shape, xs, xo) + k * pool * xa  # noqa: F821
        best = _argmax(x, px, xa, pool)  # noqa: F821
        gv = _Lg(g[_row_offset(row, shape, gs, go) + k * ga])  # noqa: F821
        po = _row_offset(row, shape, os_, oo) + k * pool * oa  # noqa: F821
        for q in range(pool):
            out[po + q * oa] = _So(gv if q == best else 0.0)  # noqa: F821
        i += step


TEMPLATES = {"forward": _forward, "backward": _backward}


def kernel(name, ctype, codec=_codecs.NATIVE):
    """The kernel ``name`` ("forward"/"backward"), its operands stored as ``codec``."""
    ctype = np.dtype(ctype)

    def build():
        b = dict(_rows.helpers(ctype, "thread"), _So=_codecs.store(codec))
        b["_Lx"] = b["_Lg"] = _codecs.load(codec, ctype)
        b["_argmax"] = _compile.instantiate(_argmax, b, f"maxout.{ctype.name}.{codec}", _cuda.device, ctype)
        return _kernels.kernel(TEMPLATES[name], b, f"maxout.{name}.{codec}", ctype, "elementwise")

    return _kernels.cached(("maxout", name, ctype, codec), build)


def _run(ctx, name, inputs, pool, axis, out):
    ctype = COMPUTE[np.result_type(*(a.dtype for a in inputs))]
    x = inputs[-1]
    groups = x.shape[axis] // pool
    total = x.size // x.shape[axis] * groups
    k = kernel(name, ctype, _codecs.of(out.dtype))  # the inputs have out's dtype (the API's rule)
    config = _config.plan("elementwise", 1, total, "unit", ctype.itemsize, _config.limits(ctx))

    def run(target):
        shape, ops = _operands.row_operands(ctx, [*inputs, target], axis)
        args = [v for o in ops for v in o]
        _kernels.launch(ctx, k, config, [*args, shape, np.int64(total), np.int64(groups), np.int64(pool)])

    _staging.staged(ctx, out, inputs, run)


def forward(ctx, x, pool, axis, out):
    _run(ctx, "forward", [x], pool, axis, out)


def backward(ctx, g, x, pool, axis, out):
    _run(ctx, "backward", [g, x], pool, axis, out)
