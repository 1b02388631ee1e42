"""Kernel operands of the CUDA backend, without copies.

Every array goes to a kernel as a 1-D view of the memory it spans, the
element offset of its first element and its element strides, after merging
the dimensions that all operands lay out alike (``gpu_act._layout``):

- ``elementwise_operands``: a flat fast path when every operand is one dense
  run in the same order, else strided operands over the merged shape;
- ``row_operands``: rows indexed in C order over every dimension but the
  reduced one, which is walked with its own stride;
- ``contiguous_view``: a C-contiguous array as one 1-D view;
- ``broadcast``: an operand of fewer or unit dims seen with a larger shape.

Views are of the storage dtype (``_codecs.storage``: uint16 for bfloat16).
"""

from collections import namedtuple

import numpy as np

from ... import _cuda, _layout
from . import _codecs

_views = {}
_VIEWS_MAX = 512


def _flat_view(ctx, a, lo, nbytes):
    """A 1-D array over [lo, lo + nbytes) of a's memory (cached by address:
    views hold no reference, the caller's arrays keep the memory alive)."""
    dtype = _codecs.storage(a.dtype)
    if _cuda.SIMULATOR:
        return _cuda.flat(a.owner, a.ptr, lo, nbytes, dtype)
    key = (lo, nbytes, dtype.char, ctx.device)
    v = _views.get(key)
    if v is None:
        if len(_views) >= _VIEWS_MAX:
            _views.clear()
        v = _views[key] = _cuda.flat(None, a.ptr, lo, nbytes, dtype)
    return v


def _span(ctx, a, shape, strides):
    """(view, element offset of a's first element) for a with these byte strides."""
    size = a.dtype.itemsize
    lo, hi = _layout.extent(a.ptr, shape, strides, size)
    return _flat_view(ctx, a, lo, hi - lo), (a.ptr - lo) // size


def _elements(a, strides):
    size = a.dtype.itemsize
    if any(s % size for s in strides):
        raise ValueError(f"array strides {a.strides} are not multiples of the item size {size}")
    return tuple(s // size for s in strides)


def merged(shape, strides_list):
    """(merged shape, [merged byte strides per operand]), at least one dimension."""
    dims = _layout.merge_dims(shape, strides_list) or [(1, [0] * len(strides_list))]
    return tuple(d[0] for d in dims), [tuple(d[1][k] for d in dims) for k in range(len(strides_list))]


def elementwise_operands(ctx, arrays):
    """(contiguous, n or shape, [per-operand args]): a flat fast path when every
    operand is one dense run in the same order, else strided operands."""
    shape, strides = merged(arrays[0].shape, [a.strides for a in arrays])
    if len(shape) == 1 and all(s[0] == a.dtype.itemsize for s, a in zip(strides, arrays)):
        n = shape[0]
        return True, n, [_flat_view(ctx, a, a.ptr, n * a.dtype.itemsize) for a in arrays]
    ops = []
    for a, st in zip(arrays, strides):
        view, off = _span(ctx, a, shape, st)
        ops.append((view, np.int64(off), _elements(a, st)))
    return False, shape, ops


def broadcast(a, shape):
    """A view of ``a`` with ``shape``, its unit dims (and missing leading ones)
    read through stride 0."""
    pad = len(shape) - a.ndim
    strides = [0] * pad + [s if n != 1 else 0 for n, s in zip(a.shape, a.strides)]
    return a._view(tuple(shape), strides)


RowOperand = namedtuple("RowOperand", "view offset outer axis")


def row_operands(ctx, arrays, axis):
    """(outer shape, [RowOperand]): rows are indexed in C order over every dim
    but ``axis``; ``axis`` (None for arrays without it, e.g. index targets or
    per-row losses) is walked with stride ``RowOperand.axis``."""
    outer_strides = []
    for a in arrays:
        st = list(a.strides)
        if axis is not None and len(st) == len(arrays[0].shape):
            del st[axis]
        outer_strides.append(st)
    outer_shape = [n for i, n in enumerate(arrays[0].shape) if i != axis]
    shape, strides = merged(outer_shape, outer_strides)
    ops = []
    for a, st in zip(arrays, strides):
        has_axis = axis is not None and a.ndim == arrays[0].ndim
        if has_axis:
            full_shape = shape + (a.shape[axis],)
            full_st = st + (a.strides[axis],)
        else:
            full_shape, full_st = shape, st
        view, off = _span(ctx, a, full_shape, full_st)
        el = _elements(a, full_st)
        ops.append(RowOperand(view, np.int64(off), el[: len(shape)], np.int64(el[-1] if has_axis else 0)))
    return shape, ops


def contiguous_view(ctx, a):
    """A 1-D view of C-contiguous ``a``."""
    return _flat_view(ctx, a, a.ptr, a.size * a.dtype.itemsize)
