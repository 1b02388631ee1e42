"""Gated linear units' backward pass: one kernel per (gate formula, compute
dtype, path, operand codecs) writes both halves of the gradient of x,

    da = g * b * act'(a),    db = g * act(a),

reading g, a and b once, each element loaded through its codec (``_codecs``:
``_Lg``, ``_La``, ``_Lb``; stored by ``_Sa``, ``_Sb``). The gate's formula and
derivative are the registry's device functions (``_kernels.formulas``).
Paths as the elementwise kernels' (``_map``): "flat" when the five operands
are dense runs in the same order, else "strided" over their merged shape;
grid-stride loops launched by ``_config.plan``. An output that overlaps an
input other than as that very view (in place: da and db the halves a and b)
is written through a temporary (``_staging.convert``). The forward, act(a) * b,
is the elementwise ``scaled`` kernel over the two half views.
"""

import numpy as np

from ... import _cuda, _layout
from ..._dtypes import COMPUTE
from . import _arrays, _codecs, _config, _kernels, _operands, _staging

cuda = _cuda.cuda


def _flat(g, a, b, da, db, p):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    n = g.shape[0]
    while i < n:
        gv = _Lg(g[i])  # noqa: F821
        av = _La(a[i])  # noqa: F821
        da[i] = _Sa(gv * _Lb(b[i]) * _der(av, *p))  # noqa: F821
        db[i] = _Sb(gv * _fwd(av, *p))  # noqa: F821
        i += step


def _strided(g, go, gst, a, ao, ast, b, bo, bst, da, dao, dast, db, dbo, dbst, shape, p):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    total = 1
    for k in range(len(shape)):
        total *= shape[k]
    while i < total:
        # C-order coordinates of i, accumulated into each operand's offset
        r = i
        pg, pa, pb, pda, pdb = go, ao, bo, dao, dbo
        for k in range(len(shape) - 1, -1, -1):
            q = r // shape[k]
            j = r - q * shape[k]
            r = q
            pg += j * gst[k]
            pa += j * ast[k]
            pb += j * bst[k]
            pda += j * dast[k]
            pdb += j * dbst[k]
        gv = _Lg(g[pg])  # noqa: F821
        av = _La(a[pa])  # noqa: F821
        da[pda] = _Sa(gv * _Lb(b[pb]) * _der(av, *p))  # noqa: F821
        db[pdb] = _Sb(gv * _fwd(av, *p))  # noqa: F821
        i += step


PATHS = {"flat": _flat, "strided": _strided}
NATIVE = (_codecs.NATIVE,) * 5


def kernel(fwd, der, ctype, path, codecs=NATIVE):
    """The kernel of gate ``fwd`` (derivative ``der``), its operands g, a, b, da, db stored as ``codecs``."""
    ctype = np.dtype(ctype)

    def build():
        fm = _kernels.formulas(ctype)
        b = {"_fwd": fm[fwd.__name__], "_der": fm[der.__name__], "_Sa": _codecs.store(codecs[3]),
             "_Sb": _codecs.store(codecs[4])}
        b.update({f"_L{o}": _codecs.load(c, ctype) for o, c in zip("gab", codecs)})
        return _kernels.kernel(PATHS[path], b, f"glu.{fwd.__name__}.{path}.{_codecs.tag(codecs)}", ctype, "elementwise")

    return _kernels.cached(("glu", fwd, der, ctype, path, codecs), build)


def _layout_of(a):
    return (a.ptr, a.shape, a.strides, a.dtype.itemsize)


def backward(ctx, f, d, g, a, b, params, da, db):
    """da = g * b * d(a, *params), db = g * f(a, *params)."""
    inputs = [g, a, b]
    ctype = COMPUTE[np.result_type(*(COMPUTE[v.dtype] for v in inputs))]
    p = tuple(ctype.type(v) for v in params)
    spans = [_layout_of(v) for v in inputs]
    targets = [_arrays.empty(ctx, o.shape, o.dtype) if _layout.needs_staging(_layout_of(o), spans) else o
               for o in (da, db)]
    flat, extent, views = _operands.elementwise_operands(ctx, inputs + targets)
    k = kernel(f, d, ctype, "flat" if flat else "strided", tuple(_codecs.of(v.dtype) for v in inputs + targets))
    n = extent if flat else int(np.prod(extent))
    config = _config.plan("elementwise", 1, n, "unit", ctype.itemsize, _config.limits(ctx))
    args = views + [p] if flat else [v for op in views for v in op] + [extent, p]
    _kernels.launch(ctx, k, config, args)
    for o, t in zip((da, db), targets):
        if t is not o:
            _staging.convert(ctx, t, o)
