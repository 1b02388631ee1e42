"""Gated linear units' backward pass on the CPU: one kernel per (gate formula,
compute dtype, operand codecs) writes both halves of the gradient of x,

    da = g * b * act'(a),    db = g * act(a),

reading g, a and b once. The operands are 3-D views of one shape
(``_views.flat``: the halves of x and of the gradient are strided views,
merged where their dimensions allow), read and written through their codecs
(``_codecs``: float16 and bfloat16 as uint16 bits, computed in float32); the
gate's formulas are the registry's, compiled with the vectorizable math
(``_kernels.formulas``). The flat element range is split into chunks run in
parallel, each walked along rows so contiguous rows vectorize. The forward,
act(a) * b, is the elementwise ``scaled`` kernel over the two half views.

In place (da and db the very halves a and b) each element is read before it
is written by the same worker; an output that overlaps an input otherwise is
written through a temporary, copied into it at the end.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from . import _codecs
from ._kernels import cached, codecs, decorator, formulas, overlap
from ._numba import SOURCE_HASH, device
from ._views import flat, row as _row, same, unit as _unit

CHUNK = 1 << 14


def _segment(sg, sa, sb, sda, sdb, p):
    # 1-D segments indexed from 0, so that LLVM vectorizes the loop
    for j in range(sg.shape[0]):
        gv = _Lg(sg[j])  # noqa: F821
        av = _La(sa[j])  # noqa: F821
        sda[j] = _Sa(gv * _Lb(sb[j]) * _der(av, *p))  # noqa: F821
        sdb[j] = _Sb(gv * _fwd(av, *p))  # noqa: F821


def _backward(g, a, b, da, db, p):
    # 3-D views (P, R, cols) of P * R rows
    cols = g.shape[-1]
    inner = g.shape[g.ndim - 2]
    total = g.size
    for k in prange((total + CHUNK - 1) // CHUNK):
        start = k * CHUNK
        stop = min(start + CHUNK, total)
        r = start // cols
        col = start - r * cols
        while start < stop:
            m = min(stop - start, cols - col)
            e = col + m
            _seg(_U(_row(g, r, inner)[col:e]), _U(_row(a, r, inner)[col:e]), _U(_row(b, r, inner)[col:e]),  # noqa: F821
                 _U(_row(da, r, inner)[col:e]), _U(_row(db, r, inner)[col:e]), p)  # noqa: F821
            start += m
            r += 1
            col = 0


def _kernel(fwd, der, ctype, size, cs, unit):
    """The kernel of gate ``fwd`` (derivative ``der``) for operand codecs ``cs`` (g, a, b, da, db);
    ``unit``: whether every operand's rows are contiguous (typed so, its loops vectorize)."""
    how = decorator(size)

    def build():
        tag = f"{fwd.__name__}.{ctype.name}.{'.'.join(c.name for c in cs)}.{how.__name__}.{int(unit)}.{SOURCE_HASH}"
        fm = formulas(ctype)
        loads = [_codecs.functions(c, ctype).load for c in cs[:3]]
        stores = [_codecs.functions(c, ctype).store for c in cs[3:]]
        io = {"_fwd": fm[fwd.__name__], "_der": fm[der.__name__], "_Lg": loads[0], "_La": loads[1], "_Lb": loads[2],
              "_Sa": stores[0], "_Sb": stores[1]}
        seg = _compile.instantiate(_segment, io, tag, device)
        return _compile.instantiate(_backward, {"_seg": seg, "_U": _unit if unit else same}, tag, how)

    return cached(("gated", fwd, der, ctype, how, cs, unit), build)


def backward(f, d, g, a, b, params, da, db):
    """da = g * b * d(a, *params), db = g * f(a, *params)."""
    ctype = COMPUTE[np.result_type(g, a, b)]
    p = tuple(map(ctype.type, params))
    inputs = [g, a, b]
    outs = [np.empty(o.shape, o.dtype) if overlap(o, inputs)[1] else o for o in (da, db)]
    views = flat(inputs + outs)
    if views is None:  # a layout that does not merge: contiguous copies and outputs
        inputs = [np.ascontiguousarray(v) for v in inputs]
        outs = [o if o.flags.c_contiguous else np.empty(o.shape, o.dtype) for o in outs]
        views = flat(inputs + outs)
    cs = codecs(inputs + outs)
    views = [_codecs.storage(v, c) for v, c in zip(views, cs)]
    unit = all(v.strides[-1] == v.itemsize or v.shape[-1] == 1 for v in views)
    _kernel(f, d, ctype, g.size, cs, unit)(*views, p)
    for o, t in zip((da, db), outs):
        if t is not o:
            np.copyto(o, t)
