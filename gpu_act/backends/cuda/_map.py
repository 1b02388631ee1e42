"""Kernels applied element by element, one per (wrapper, formula, compute
dtype, path), and their launch.

``_w`` is one of ``gpu_act._wrappers`` bound to a registry formula ``_g``
compiled as a device function (``_kernels.formulas``); each operand is
loaded through its codec's load (``_La``, ``_Lb``, ``_Lc``: converted to the
compute dtype, float16 and bfloat16 -> float32) and the result stored through
the output's (``_So``), so operands of different dtypes mix (``_codecs``).
Paths: "flat" (every operand one dense run in the same order: plain 1-D
indexing) and "strided" (any layout: the flat index is split into coordinates
of the merged shape). Both are grid-stride loops. ``run`` writes into its
target as given: overlap with the inputs is ``_staging``'s concern.
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from ..._wrappers import WRAPPERS
from . import _codecs, _config, _kernels, _operands

cuda = _cuda.cuda


def _flat(a, b, c, out, p):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    n = out.shape[0]
    while i < n:
        out[i] = _So(_w(_La(a[i]), _Lb(b[i]), _Lc(c[i]), p))  # noqa: F821
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
        out[po] = _So(_w(_La(a[pa]), _Lb(b[pb]), _Lc(c[pc]), p))  # noqa: F821
        i += step


PATHS = {"flat": _flat, "strided": _strided}


NATIVE = (_codecs.NATIVE,) * 4


def kernel(wrapper, formula, ctype, path, codecs=NATIVE):
    """The kernel applying ``wrapper`` around ``formula`` (None for _copy), its
    operands a, b, c and out stored as ``codecs``."""
    ctype = np.dtype(ctype)
    name = "copy" if formula is None else formula.__name__
    tag = f"{wrapper}.{name}.{path}"

    def build():
        g = {} if formula is None else {"_g": _kernels.formulas(ctype)[formula.__name__]}
        w = _compile.instantiate(WRAPPERS[wrapper], g, f"{tag}.{ctype.name}", _cuda.device, ctype)
        b = {"_w": w, "_So": _codecs.store(codecs[3])}
        b.update({f"_L{o}": _codecs.load(c, ctype) for o, c in zip("abc", codecs)})
        return _kernels.kernel(PATHS[path], b, f"ew.{tag}.{_codecs.tag(codecs)}", ctype, "elementwise")

    return _kernels.cached(("ew", tag, ctype, codecs), build)


def run(ctx, wrapper, formula, arrays, params, target, ctype=None):
    """target = wrapper(arrays...) elementwise; arrays share target's shape."""
    ctype = ctype or COMPUTE[np.result_type(*(COMPUTE[a.dtype] for a in arrays))]
    p = tuple(ctype.type(v) for v in params)
    # the kernels take three inputs: repeat the last one (its loads are dead code)
    pick = [min(i, len(arrays) - 1) for i in range(3)]
    flat, extent, views = _operands.elementwise_operands(ctx, [*arrays, target])
    codecs = tuple(_codecs.of(a.dtype) for a in [*(arrays[i] for i in pick), target])
    k = kernel(wrapper, formula, ctype, "flat" if flat else "strided", codecs)
    n = extent if flat else int(np.prod(extent))
    config = _config.plan("elementwise", 1, n, "unit", ctype.itemsize, _config.limits(ctx))
    if flat:
        args = [views[i] for i in pick] + [views[-1], p]
    else:
        args = [v for i in pick for v in views[i]] + [*views[-1], extent, p]
    _kernels.launch(ctx, k, config, args)
