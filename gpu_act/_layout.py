"""Array layouts as (shape, byte strides, item size), for every backend.

- ``c_strides``: the strides of a C-contiguous array;
- ``self_overlapping``: whether two elements of one layout share memory (an
  ``out=`` that does is refused: one output element would be written by
  several results).
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
