"""Outputs that share memory with an input: written through a temporary.

``staged(ctx, out, inputs, run)`` calls ``run(target)`` with target = out, or,
when out overlaps an input other than as that very view, with a new array
that ``convert`` then copies into out (through out's strides).
"""

from ... import _layout
from . import _arrays, _codecs, _map


def _layout_of(a):
    return (a.ptr, a.shape, a.strides, a.dtype.itemsize)


def staged(ctx, out, inputs, run):
    if not _layout.needs_staging(_layout_of(out), [_layout_of(a) for a in inputs]):
        run(out)
        return
    tmp = _arrays.empty(ctx, out.shape, out.dtype)
    run(tmp)
    convert(ctx, tmp, out)


def convert(ctx, src, dst):
    """dst[...] = src, cast to dst's dtype (any layouts, same shape): through
    the type that holds dst's elements exactly (``_codecs.value_type``)."""
    _map.run(ctx, "copy", None, [src], (), dst, ctype=_codecs.value_type(dst.dtype))
