"""Array layouts as (shape, byte strides, item size), for every backend.

- ``c_strides``: the strides of a C-contiguous array;
- ``merge_dims``: the dimensions several same-shape operands lay out alike,
  merged, so that kernels walk few dimensions (a C-contiguous array: one);
- ``extent`` / ``needs_staging``: the bytes a layout spans, and whether an
  output shares memory with an input other than as that very view (the output
  is then written through a temporary);
- ``self_overlapping``: whether two elements of one layout share memory (an
  ``out=`` that does is refused: one output element would be written by
  several results);
- ``channel_sum_plan``: the axes and accumulation dtype of a per-channel sum
  (PReLU's weight gradient), which the array backends then run.
"""

import numpy as np

# layouts of more elements than this that fail the quick test below are
# treated as overlapping rather than enumerated
_ENUMERATE_MAX = 1 << 22


def c_strides(shape, itemsize):
    """Byte strides of a C-contiguous array of ``shape``."""
    acc, strides = itemsize, []
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def merge_dims(shape, strides_list):
    """[(size, [byte stride per operand])], outermost first: dimensions of
    length 1 dropped, neighbours merged where every operand lays them out
    contiguously (its stride of the outer one is n times that of the inner)."""
    dims = []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        st = [s[i] for s in strides_list]
        if dims and all(ps == s * n for ps, s in zip(dims[-1][1], st)):
            dims[-1] = (dims[-1][0] * n, st)
        else:
            dims.append((n, st))
    return dims


def extent(ptr, shape, strides, itemsize):
    """(first byte, one past the last byte) a layout spans."""
    lo = hi = ptr
    for n, s in zip(shape, strides):
        if s < 0:
            lo += s * (n - 1)
        else:
            hi += s * (n - 1)
    return lo, hi + itemsize


def needs_staging(out, inputs):
    """True when layout ``out`` shares bytes with one of ``inputs`` other than as
    the very same view (in place is fine: each element is read, then written,
    by one worker). Layouts are (pointer, shape, byte strides, item size); the
    test is on the spans, so it may stage where elements interleave without
    touching (x[::2] and x[1::2])."""
    lo, hi = extent(*out)
    for a in inputs:
        alo, ahi = extent(*a)
        if alo < hi and lo < ahi and a[:3] != out[:3]:
            return True
    return False


def self_overlapping(shape, strides, itemsize):
    """True when two different elements of the layout overlap in memory.

    Dimensions of length 1 never matter and a stride of 0 over a longer one
    always overlaps. Otherwise, with the dimensions sorted by |stride|, each
    stride reaching past everything the smaller ones span proves there is no
    overlap (every real layout: C, F, transposed, sliced, reversed). Layouts
    failing that test are decided exactly by listing their elements' offsets,
    up to a size, beyond which they count as overlapping.
    """
    dims = [(abs(int(s)), int(n)) for n, s in zip(shape, strides) if n > 1]
    if any(s == 0 for s, _ in dims):
        return True
    dims.sort()
    span = itemsize  # bytes spanned by the dimensions with smaller strides
    for s, n in dims:
        if s < span:
            break
        span = s * (n - 1) + span
    else:
        return False
    size = int(np.prod([n for _, n in dims]))
    if size > _ENUMERATE_MAX:
        return True
    offsets = np.zeros(1, np.int64)
    for s, n in dims:
        offsets = (offsets[:, None] + s * np.arange(n, dtype=np.int64)).ravel()
    offsets.sort()
    return bool(np.any(np.diff(offsets) < itemsize))


def channel_sum_plan(dtype, ndim, channel_axis):
    """(axes, accumulation dtype) of the sum over every axis but ``channel_axis``
    (all axes when None), accumulated in at least float32."""
    return tuple(i for i in range(ndim) if i != channel_axis), np.result_type(dtype, np.float32)
