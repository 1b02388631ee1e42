"""Launchers of the row-wise kernels (kernels/softmax.cu, cross_entropy.cu,
maxout.cu) on strided CuPy arrays, on CuPy's current stream."""

import math

import cupy
import numpy as np

from ..._dtypes import COMPUTE, inverse_temperature
from ... import kernels
from . import _config, _layout, _modules

i64 = np.int64


def _softmax(direction, inputs, out, axis, temperature, log):
    dtype = out.dtype.name
    inv_t = inverse_temperature(temperature, COMPUTE[out.dtype])

    def launch(arrays, P, Q, strides):
        n = arrays[0].shape[axis]
        team, grid, block = _config.plan("rows", P * Q, n, strides[0][2], strides[0][1], inv_t.itemsize)
        fn = _modules.function("softmax.cu", dtype, kernels.softmax_name(direction, dtype, team, log))
        flat = [i64(s) for st in strides for s in st]
        fn((grid,), (block,), (*arrays, i64(P * Q), i64(Q), i64(n), *flat, inv_t))

    _layout.run(launch, inputs, out, axis)


def softmax(x, axis, temperature, log, out):
    _softmax("fwd", [x], out, axis, temperature, log)


def softmax_backward(g, y, axis, temperature, log, out):
    _softmax("bwd", [g, y], out, axis, temperature, log)


def _maxout(direction, inputs, out, pool, axis):
    dtype = out.dtype.name

    def launch(arrays, P, Q, strides):
        x = arrays[0] if direction == "fwd" else arrays[1]
        groups = x.shape[axis] // pool
        rows = P * Q
        _, grid, block = _config.plan("items", rows * groups, 1)
        # neighbouring threads take neighbouring rows when the axis is strided and rows are adjacent
        rows_fast = np.int32(abs(strides[0][2]) != 1 and abs(strides[0][1]) == 1)
        fn = _modules.function("maxout.cu", dtype, kernels.maxout_name(direction, dtype))
        flat = [i64(s) for st in strides for s in st]
        fn((grid,), (block,), (*arrays, i64(rows), i64(Q), i64(groups), i64(pool), *flat, rows_fast))

    _layout.run(launch, inputs, out, axis)


def maxout(x, pool, axis, out):
    _maxout("fwd", [x], out, pool, axis)


def maxout_backward(g, x, pool, axis, out):
    _maxout("bwd", [g, x], out, pool, axis)


def cross_entropy_rows(z, target, axis, index, ignore, eps, scale, want_grad):
    """(per-row loss as float64 in z's shape without ``axis``, gradient in z's
    dtype and shape, C-contiguous, or None), from one kernel."""
    dtype = z.dtype.name
    ctype = COMPUTE[z.dtype]
    rows_shape = z.shape[:axis] + z.shape[axis + 1 :]
    n = z.shape[axis]
    rows = math.prod(rows_shape)
    loss = cupy.empty(rows_shape, cupy.float64)
    grad = cupy.empty(z.shape, z.dtype) if want_grad else None
    if rows == 0 or n == 0:
        loss[...] = 0.0
        return loss, grad
    if index:
        operands = [z]
        t = cupy.ascontiguousarray(target, dtype=cupy.int64)
    else:
        operands = [z, target if target.dtype == z.dtype else target.astype(ctype)]
    g = grad if want_grad else cupy.empty((1,) * z.ndim, z.dtype)  # never written without want_grad
    geo = _layout.rows(operands + [g if want_grad else z], axis)
    if geo is None:
        operands = [cupy.ascontiguousarray(a) for a in operands]
        geo = _layout.rows(operands + [g if want_grad else operands[0]], axis)
    P, Q, strides = geo
    gs = strides[-1] if want_grad else (0, 0, 0)
    team, grid, block = _config.plan("rows", rows, n, strides[0][2], strides[0][1], ctype.itemsize)
    common = (i64(rows), i64(Q), i64(n), *(i64(s) for s in strides[0]), *(i64(s) for s in gs))
    if index:
        fn = _modules.function("cross_entropy.cu", dtype, kernels.xent_index_name(dtype, team))
        args = (operands[0], t, loss, g, *common, i64(ignore))
    else:
        ttype = kernels.TYPES[operands[1].dtype.name]
        fn = _modules.function("cross_entropy.cu", dtype, kernels.xent_prob_name(dtype, ttype, team))
        args = (operands[0], operands[1], loss, g, *common, *(i64(s) for s in strides[1]))
    fn((grid,), (block,), (*args, ctype.type(eps), ctype.type(scale), np.int32(want_grad)))
    return loss, grad
