"""Row geometry of strided CuPy arrays, without copies.

``rows(arrays, axis)`` merges every axis but ``axis`` into two, (P, Q), where
all operands lay them out alike; row r = i*Q + k then starts at
i*sP + k*sQ and its elements step by the axis' stride (strides in elements,
any sign, 0 for broadcast). Layouts that do not merge into two (rare) give
None and ``run`` stages through contiguous copies, as it does when ``out``
overlaps an input other than as that very view.
"""

import cupy


def rows(arrays, axis):
    """(P, Q, [(sP, sQ, s_axis) per operand]) or None; leading shapes must agree."""
    a0 = arrays[0]
    if any(s % a.itemsize for a in arrays for s in a.strides):
        return None
    groups = []  # (size, [stride per operand]), outermost first
    for d in range(a0.ndim):
        n = a0.shape[d]
        if d == axis or n == 1:
            continue
        st = [a.strides[d] // a.itemsize for a in arrays]
        if groups and all(gs == s * n for gs, s in zip(groups[-1][1], st)):
            groups[-1] = (groups[-1][0] * n, st)
        else:
            groups.append((n, st))
    if len(groups) > 2:
        return None
    groups = [(1, [0] * len(arrays))] * (2 - len(groups)) + groups
    (P, sP), (Q, sQ) = groups
    return P, Q, [(sP[k], sQ[k], a.strides[axis] // a.itemsize) for k, a in enumerate(arrays)]


def _same_view(a, b):
    return a.data.ptr == b.data.ptr and a.strides == b.strides and a.shape == b.shape


def needs_staging(out, inputs):
    """True when ``out`` overlaps an input other than being that very view."""
    return any(cupy.may_share_memory(out, a) and not _same_view(out, a) for a in inputs)


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
