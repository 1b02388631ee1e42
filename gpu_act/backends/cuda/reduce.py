"""Sums over every axis but one (PReLU's weight gradient) and over everything
(the losses' reductions, ``total``): one block per output, a strided walk
over the group's elements accumulated in the kernel's type (at least float32;
float64 for the losses), then a reduction over the block's warps. Elements
are read and sums written through their arrays' codecs (``_codecs``)."""

import numpy as np

from ... import _cuda
from ..._dtypes import COMPUTE
from . import _arrays, _codecs, _config, _kernels, _operands, _rows

cuda = _cuda.cuda


def _group_sum(a, ao, ast, aa, shape, total, out, scale):
    c = cuda.blockIdx.x
    t = cuda.threadIdx.x
    base = ao + c * aa
    acc = 0.0
    for e in range(t, total, cuda.blockDim.x):
        acc += _La(a[_row_offset(e, shape, ast, base)])  # noqa: F821
    acc = _sum_all(acc)  # noqa: F821
    if t == 0:
        out[c] = _So(acc * scale)  # noqa: F821


NATIVE = (_codecs.NATIVE,) * 2


def kernel(ctype, codecs=NATIVE):
    """The group sum accumulating in ``ctype`` (any input and output dtype), its
    input and output stored as ``codecs``."""
    ctype = np.dtype(ctype)

    def build():
        b = dict(_rows.helpers(ctype, "block"), _La=_codecs.load(codecs[0], ctype), _So=_codecs.store(codecs[1]))
        return _kernels.kernel(_group_sum, b, f"group_sum.{_codecs.tag(codecs)}", ctype, "reduce")

    return _kernels.cached(("group_sum", ctype, codecs), build)


def group_sum(ctx, a, axis, out, scale, ctype):
    """out[c] = scale * sum of a over every axis but ``axis`` (all axes when
    None), accumulated in ``ctype``; ``out`` is 1-D, C-contiguous; a is not empty."""
    ctype = np.dtype(ctype)
    groups = 1 if axis is None else a.shape[axis]
    total = a.size // groups
    shape, (op,) = _operands.row_operands(ctx, [a], axis)
    args = [op.view, op.offset, op.outer, op.axis, shape, np.int64(total), _operands.contiguous_view(ctx, out)]
    config = _config.plan("reduce", groups, total, "unit", ctype.itemsize, _config.limits(ctx))
    k = kernel(ctype, (_codecs.of(a.dtype), _codecs.of(out.dtype)))
    _kernels.launch(ctx, k, config, [*args, ctype.type(scale)])


def channel_sum(ctx, a, channel_axis, dtype):
    """Sum over every axis but ``channel_axis`` (all axes when None), accumulated
    in a's compute dtype (at least float32), returned as a 1-D array of ``dtype``."""
    groups = 1 if channel_axis is None else a.shape[channel_axis]
    out = _arrays.empty(ctx, (groups,), dtype)
    if a.size:
        group_sum(ctx, a, channel_axis, out, 1.0, COMPUTE[a.dtype])
    else:
        fill(ctx, out, 0.0)
    return out


def total(ctx, a, scale, dtype):
    """0-d array of ``dtype``: (the sum of every element of ``a``, accumulated in
    float64) * scale, rounded once; 0 * scale when ``a`` is empty."""
    out = _arrays.empty(ctx, (), dtype)
    if a.size:
        group_sum(ctx, a, None, out.reshape((1,)), scale, np.float64)
    else:
        fill(ctx, out, 0.0 * scale)
    return out


def _fill(out, value):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = value
        i += step


def fill_kernel():
    return _kernels.cached(("fill",), lambda: _kernels.kernel(_fill, {}, "fill", np.float64, "elementwise"))


def fill(ctx, out, value):
    """out[...] = value, out C-contiguous (the value goes as a kernel argument,
    as one stored element)."""
    if not out.size:
        return
    k = fill_kernel()
    config = _config.plan("elementwise", 1, out.size, "unit", 8, _config.limits(ctx))
    _kernels.launch(ctx, k, config, [_operands.contiguous_view(ctx, out), _codecs.scalar(out.dtype, value)])
