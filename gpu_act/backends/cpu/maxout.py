"""Maxout on (P, Q, n) row views: the max of each run of `pool` consecutive
entries, and its backward, which routes each gradient to the first maximum of
its group (a NaN counts as the maximum, as in argmax).

Elements are read and written through their codecs (``_L``, ``_Lg``, ``_S``;
see ``_codecs``); the kernels are compiled serial or parallel by size, as the
others (``_kernels.decorator``).
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from . import _codecs
from ._kernels import cached, decorator, launch
from ._numba import SOURCE_HASH, ijit
from ._views import row_casts, rows3, unit_rows


def _argmax(xr, base, pool):
    best = 0
    m = _L(xr[base])  # noqa: F821
    for q in range(1, pool):
        v = _L(xr[base + q])  # noqa: F821
        if m == m and (v > m or v != v):
            m = v
            best = q
    return best


def _forward(x, out, pool):
    P, Q, _ = x.shape
    groups = out.shape[2]
    for r in prange(P * Q):
        i = r // Q
        xr = _U0(x[i, r - i * Q])  # noqa: F821
        o = _U1(out[i, r - i * Q])  # noqa: F821
        for k in range(groups):
            o[k] = _S(_L(xr[k * pool + _argmax(xr, k * pool, pool)]))  # noqa: F821


def _backward(g, x, out, pool):
    P, Q, _ = x.shape
    groups = g.shape[2]
    zero = _S(_C(0.0))  # noqa: F821
    for r in prange(P * Q):
        i = r // Q
        gr = _U0(g[i, r - i * Q])  # noqa: F821
        xr = _U1(x[i, r - i * Q])  # noqa: F821
        o = _U2(out[i, r - i * Q])  # noqa: F821
        for k in range(groups):
            best = _argmax(xr, k * pool, pool)  # noqa: F821
            for q in range(pool):
                o[k * pool + q] = _S(_Lg(gr[k])) if q == best else zero  # noqa: F821


def _kernel(template, ctype, size, cs, units):
    """The kernel for codecs ``cs``: (x, out) forward, (g, x, out) backward;
    ``units``: whether each operand's rows have unit stride (``_views.row_casts``)."""
    how = decorator(size)

    def build():
        flags = "".join(str(int(u)) for u in units)
        tag = f"{ctype.name}.{'.'.join(c.name for c in cs)}.{flags}.{how.__name__}.{SOURCE_HASH}"
        bound = {
            "_C": ctype.type,
            "_L": _codecs.functions(cs[-2], ctype).load,  # x: the last input
            "_Lg": _codecs.functions(cs[0], ctype).load,
            "_S": _codecs.functions(cs[-1], ctype).store,
            **row_casts(units),
        }
        bound["_argmax"] = _compile.instantiate(_argmax, bound, tag, ijit, ctype)
        return _compile.instantiate(template, bound, tag, how, ctype)

    return cached((template.__name__, ctype, how, cs, units), build)


def forward(x, pool, axis, out):
    ctype = COMPUTE[x.dtype]

    def run(v, cs, alias):
        _kernel(_forward, ctype, x.size, cs, unit_rows(v))(v[0], v[1], pool)

    launch(run, lambda a: rows3(a, axis), [x], out)


def backward(g, x, pool, axis, out):
    ctype = COMPUTE[np.result_type(g, x)]

    def run(v, cs, alias):
        _kernel(_backward, ctype, x.size, cs, unit_rows(v))(v[0], v[1], v[2], pool)

    launch(run, lambda a: rows3(a, axis), [g, x], out)
