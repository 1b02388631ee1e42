"""Zero-copy views that give the CPU kernels a small fixed rank.

Adjacent dimensions are merged where every operand lays them out
contiguously with respect to each other (``gpu_act._layout.merge_dims``); broadcast (stride 0), negative and
non-unit strides are kept as they are. Kernels then see 3-D arrays of any
strides: ``(P, R, n)`` (elementwise, P * R rows) or ``(P, Q, n)`` (row-wise,
the reduced axis last).
Layouts that do not collapse that far (rare) return None and the caller
stages through contiguous copies.
"""

import numpy as np
from numba import types
from numba.core import ir_utils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numpy.lib.stride_tricks import as_strided

from ..._layout import merge_dims
from ._numba import ijit


def _views(arrays, groups, rank, tail):
    """Views of shape (group sizes padded to `rank`) + tail shape."""
    groups = [(1, [0] * len(arrays))] * (rank - len(groups)) + groups
    out = []
    for k, a in enumerate(arrays):
        shape = tuple(g[0] for g in groups) + tuple(a.shape[len(a.shape) - len(tail[k]) :])
        strides = tuple(g[1][k] for g in groups) + tuple(a.strides[len(a.strides) - len(tail[k]) :])
        out.append(as_strided(a, shape, strides, writeable=a.flags.writeable))
    return out


def _contiguous(arrays):
    return all(a.flags.c_contiguous for a in arrays)


def flat(arrays):
    """3-D views (P, R, n) of same-shape operands, their dims merged (one kernel
    signature for every layout), or None where they merge into more than three."""
    if _contiguous(arrays):  # the common case, without as_strided's cost
        shape = (1, 1, arrays[0].size)
        return [a.reshape(shape) for a in arrays]
    groups = merge_dims(arrays[0].shape, [a.strides for a in arrays])
    if len(groups) > 3:
        return None
    return _views(arrays, groups, 3, [()] * len(arrays))


def rows3(arrays, axis):
    """(P, Q, n_k) views with `axis` moved last; the leading dims must agree."""
    if axis in (-1, arrays[0].ndim - 1) and _contiguous(arrays):
        return [a.reshape(1, a.size // max(a.shape[-1], 1), a.shape[-1]) for a in arrays]
    moved = [np.moveaxis(a, axis, -1) for a in arrays]
    groups = merge_dims(moved[0].shape[:-1], [a.strides[:-1] for a in moved])
    if len(groups) > 2:
        return None
    return _views(moved, groups, 2, [(a.shape[-1],) for a in moved])


def same_view(a, b):
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )



def row(a, q, inner):
    """In a kernel: row q of the P * inner rows of a 3-D view (P, inner, n) from ``flat``."""


@overload(row, inline="always")
def _row_impl(a, q, inner):
    def row3(a, q, inner):
        i = q // inner
        return a[i, q - i * inner]

    return row3


@intrinsic
def unit(typingctx, a):
    """In a kernel: the 1-D array ``a``, whose stride the caller knows to be its
    item size, typed C-contiguous. A loop over an array of any layout indexes it
    through its stride, which LLVM cannot vectorize; typed C-contiguous, it can
    (a row of a row-sliced or half view is contiguous, its 3-D view is not)."""
    if not isinstance(a, types.Array) or a.ndim != 1:
        return None

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, sig.return_type, args[0])  # the same array struct

    return a.copy(layout="C")(a), codegen


@ijit
def same(a):
    """In a kernel: ``a`` as it is (the other choice to ``unit``)."""
    return a


def _returns_its_argument(lhs, args, alias_map, arg_aliases):
    rhs = args[0].name
    if rhs in arg_aliases:
        arg_aliases.add(lhs)
    else:
        alias_map.setdefault(rhs, set()).add(lhs)
        alias_map.setdefault(lhs, set()).add(rhs)


# Numba's parfor pass drops the stores to an array it does not know to be a view
# of an argument, and it takes a call's result for a new array: a row cast by
# ``unit`` or ``same`` and written in a parallel loop's body would lose its last
# store. Both return their argument, which is declared here.
for _fn in ("unit", "same"):
    ir_utils.alias_func_extensions[(_fn, __name__)] = _returns_its_argument


def unit_rows(views):
    """Per view: whether its rows (the last axis) have unit stride or at most one
    element, and so may be typed contiguous in a kernel (``unit``)."""
    return tuple(v.shape[-1] <= 1 or v.strides[-1] == v.itemsize for v in views)


def row_casts(units):
    """The bindings ``_U0``, ``_U1``, ... of a row kernel: ``unit`` for the operands
    whose rows have unit stride (``unit_rows``), else ``same``. Kernels are typed
    any-layout (``_numba.Kernel``); cast so, their row loops vectorize."""
    return {f"_U{k}": unit if u else same for k, u in enumerate(units)}
