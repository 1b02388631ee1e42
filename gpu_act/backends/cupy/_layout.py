"""Row geometry of strided CuPy arrays, without copies.

``rows(arrays, axis)`` merges every axis but ``axis`` into two, (P, Q), where
all operands lay them out alike; row r = i*Q + k then starts at
i*sP + k*sQ and its elements step by the axis' stride (strides in elements,
any sign, 0 for broadcast). Layouts that do not merge into two (rare) give
None and ``run`` stages through contiguous copies, as it does when ``out``
overlaps an input other than as that very view.
"""

import cupy

from ... import _layout


def rows(arrays, axis):
    """(P, Q, [(sP, sQ, s_axis) per operand]) or None; leading shapes must agree."""
    a0 = arrays[0]
    axis %= a0.ndim
    if any(s % a.itemsize for a in arrays for s in a.strides):
        return None
    others = [d for d in range(a0.ndim) if d != axis]
    groups = _layout.merge_dims(
        [a0.shape[d] for d in others], [[a.strides[d] // a.itemsize for d in others] for a in arrays]
    )
    if len(groups) > 2:
        return None
    groups = [(1, [0] * len(arrays))] * (2 - len(groups)) + groups
    (P, sP), (Q, sQ) = groups
    return P, Q, [(sP[k], sQ[k], a.strides[axis] // a.itemsize) for k, a in enumerate(arrays)]


def needs_staging(out, inputs):
    """True when ``out`` overlaps an input other than being that very view."""
    return _layout.needs_staging(_layout_of(out), [_layout_of(a) for a in inputs])


def _layout_of(a):
    return (a.data.ptr, a.shape, a.strides, a.itemsize)


def run(launch, inputs, out, axis):
    """``launch(arrays, P, Q, strides)`` on (inputs..., out), staging when needed."""
    dst = cupy.empty(out.shape, out.dtype) if needs_staging(out, inputs) else out
    geo = rows(inputs + [dst], axis)
    if geo is None:
        inputs = [cupy.ascontiguousarray(a) for a in inputs]
        if dst is out:
            dst = cupy.empty(out.shape, out.dtype)
        geo = rows(inputs + [dst], axis)
    launch(inputs + [dst], *geo)
    if dst is not out:
        out[...] = dst
