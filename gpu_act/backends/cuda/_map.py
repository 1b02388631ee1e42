"""Kernels applied element by element, one per (wrapper, formula, compute
dtype, path), and their launch.

``_w`` is one of ``gpu_act._wrappers`` bound to a registry formula ``_g``
compiled as a device function (``_kernels.formulas``); operands are loaded in
their dtype, converted to the compute dtype ``_C`` (float16 -> float32) and
the result is stored in the output's dtype. Paths: "flat" (every operand one
dense run in the same order: plain 1-D indexing) and "strided" (any layout:
the flat index is split into coordinates of the merged shape). Both are
grid-stride loops. ``run`` writes into its target as given: overlap with the
inputs is ``_staging``'s concern.
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from ..._wrappers import WRAPPERS
from . import _config, _kernels, _operands

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


PATHS = {"flat": _flat, "strided": _strided}


def kernel(wrapper, formula, ctype, path):
    """The kernel applying ``wrapper`` around ``formula`` (None for _copy)."""
    ctype = np.dtype(ctype)
    name = "copy" if formula is None else formula.__name__
    tag = f"{wrapper}.{name}.{path}"

    def build():
        g = {} if formula is None else {"_g": _kernels.formulas(ctype)[formula.__name__]}
        w = _compile.instantiate(WRAPPERS[wrapper], g, f"{tag}.{ctype.name}", _cuda.device, ctype)
        return _kernels.kernel(PATHS[path], {"_w": w, "_C": ctype.type}, f"ew.{tag}", ctype, "elementwise")

    return _kernels.cached(("ew", tag, ctype), build)


def run(ctx, wrapper, formula, arrays, params, target, ctype=None):
    """target = wrapper(arrays...) elementwise; arrays share target's shape."""
    ctype = ctype or COMPUTE[np.result_type(*(a.dtype for a in arrays))]
    p = tuple(ctype.type(v) for v in params)
    # the kernels take three inputs: repeat the last one (its loads are dead code)
    pick = [min(i, len(arrays) - 1) for i in range(3)]
    flat, extent, views = _operands.elementwise_operands(ctx, [*arrays, target])
    k = kernel(wrapper, formula, ctype, "flat" if flat else "strided")
    n = extent if flat else int(np.prod(extent))
    config = _config.plan("elementwise", 1, n, "unit", ctype.itemsize, _config.limits(ctx))
    if flat:
        args = [views[i] for i in pick] + [views[-1], p]
    else:
        args = [v for i in pick for v in views[i]] + [*views[-1], extent, p]
    _kernels.launch(ctx, k, config, args)
