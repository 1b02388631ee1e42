"""Launchers of the row-wise kernels (kernels/softmax.cu, cross_entropy.cu,
maxout.cu) on strided CuPy arrays, on CuPy's current stream. softmax's
``temperature`` is negative for softmin (the kernels take the signed 1/T)."""

import math

import cupy
import numpy as np

from ..._dtypes import COMPUTE, inverse_temperature
from ... import kernels
from . import _config, _layout, _modules

i64 = np.int64


def _masked(inputs, mask):
    """(the value inputs and, with a mask, the mask broadcast to their shape (read
    through stride 0), the masked flag of the kernels)."""
    if mask is None:
        return list(inputs), np.int32(0)
    return [*inputs, cupy.broadcast_to(mask, inputs[0].shape)], np.int32(1)


def _with_mask(arrays, strides, masked, values):
    """(the kernel's arrays: ``values`` inputs, the mask, out; their strides as
    flat int64s, the mask's after the inputs'): without a mask a stand-in
    pointer (never read) with strides 0."""
    if masked:
        return arrays, [i64(s) for st in strides for s in st]
    stand_in = cupy.empty((1,), np.bool_)
    flat = [i64(s) for st in strides[:values] for s in st] + [i64(0)] * 3 + [i64(s) for s in strides[-1]]
    return [*arrays[:values], stand_in, arrays[-1]], flat


def _softmax(direction, inputs, mask, out, axis, temperature, log):
    dtype = out.dtype.name
    inv_t = inverse_temperature(temperature, COMPUTE[out.dtype])
    arrays, masked = _masked(inputs, mask)

    def launch(arrays, P, Q, strides):
        n = arrays[0].shape[axis]
        team, grid, block = _config.plan("rows", P * Q, n, strides[0][2], strides[0][1], inv_t.itemsize)
        fn = _modules.function("softmax.cu", dtype, kernels.softmax_name(direction, dtype, team, log))
        operands, flat = _with_mask(arrays, strides, masked, len(inputs))
        args = (*operands, i64(P * Q), i64(Q), i64(n), *flat, inv_t, masked)
        if direction == "bwd":
            fn((grid,), (block,), args)
        else:  # the forward keeps a block team's row on chip where it fits: x read once
            shared = _config.shared_row(team, n, inv_t.itemsize)
            fn((grid,), (block,), (*args, np.int32(shared > 0)), shared_mem=shared)

    _layout.run(launch, arrays, out, axis)


def softmax(x, axis, temperature, log, mask, out):
    _softmax("fwd", [x], mask, out, axis, temperature, log)


def softmax_backward(g, y, axis, temperature, log, mask, out):
    _softmax("bwd", [g, y], mask, out, axis, temperature, log)


def logsumexp(x, axis, temperature, mask, out):
    """T log sum e^{x/T} along ``axis`` into ``out`` (x's rank, length 1 along
    ``axis``); an empty row (or one with no unmasked entry) is the empty sum's log, -inf."""
    dtype = out.dtype.name
    ctype = COMPUTE[out.dtype]
    inv_t = inverse_temperature(temperature, ctype)
    arrays, masked = _masked([x], mask)

    def launch(arrays, P, Q, strides):
        n = arrays[0].shape[axis]
        team, grid, block = _config.plan("rows", P * Q, n, strides[0][2], strides[0][1], ctype.itemsize)
        fn = _modules.function("softmax.cu", dtype, kernels.logsumexp_name("fwd", dtype, team))
        args, flat = _with_mask(arrays, strides, masked, 1)
        fn((grid,), (block,), (*args, i64(P * Q), i64(Q), i64(n), *flat[:-1], inv_t, ctype.type(temperature),
                               masked))

    _layout.run(launch, arrays, out, axis)


def logsumexp_backward(g, x, r, axis, temperature, mask, out):
    """g e^{(x - r)/T}, g and r of x's rank with length 1 along ``axis``; masked entries 0."""
    dtype = out.dtype.name
    ctype = COMPUTE[out.dtype]
    inv_t = inverse_temperature(temperature, ctype)
    arrays, masked = _masked([x, g, r], mask)

    def launch(arrays, P, Q, strides):
        n = arrays[0].shape[axis]
        team, grid, block = _config.plan("rows", P * Q, n, strides[0][2], strides[0][1], ctype.itemsize)
        fn = _modules.function("softmax.cu", dtype, kernels.logsumexp_name("bwd", dtype, team))
        args, flat = _with_mask(arrays, strides, masked, 3)
        del flat[5], flat[7]  # the axis strides of g and r (of length 1 along it)
        fn((grid,), (block,), (*args, i64(P * Q), i64(Q), i64(n), *flat, inv_t, masked))

    _layout.run(launch, arrays, out, axis)


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


def cross_entropy(z, target, axis, index, ignore, eps, weight, z_loss, softcap, scale, want_grad, want_lse, mask):
    """(per-row losses, gradient or None, per-row log-sum-exp or None) from one
    kernel: losses and lse in the compute type, z's shape without ``axis``; the
    gradient in z's dtype and shape, C-contiguous. ``weight``: None or the C
    class weights in the compute type; ``softcap`` None or the cap; ``mask``
    None or a bool array of z's rank (size-1 axes read through stride 0)."""
    dtype = z.dtype.name
    ctype = COMPUTE[z.dtype]
    rows_shape = z.shape[:axis] + z.shape[axis + 1 :]
    n = z.shape[axis]
    rows = math.prod(rows_shape)
    loss = cupy.empty(rows_shape, ctype)
    lse = cupy.empty(rows_shape, ctype) if want_lse else None
    grad = cupy.empty(z.shape, z.dtype) if want_grad else None
    if rows == 0 or n == 0:
        # no rows, or no classes: every sum over the classes is 0
        loss[...] = 0.0
        if want_lse:
            lse[...] = 0.0
        return loss, grad, lse
    if index:
        operands = [z]
        t = cupy.ascontiguousarray(target, dtype=cupy.int64)
    else:
        operands = [z, target if target.dtype == z.dtype else target.astype(ctype)]
    # arrays the kernel takes but never touches without their flag; the weights indexed by class
    g = grad if want_grad else cupy.empty((1,) * z.ndim, z.dtype)
    w = cupy.ascontiguousarray(weight) if weight is not None else cupy.empty((1,), ctype)
    lse_out = lse if want_lse else cupy.empty((1,), ctype)
    operands, masked = _masked(operands, mask)
    geo = _layout.rows(operands + [g if want_grad else z], axis)
    if geo is None:
        operands = [cupy.ascontiguousarray(a) for a in operands]
        geo = _layout.rows(operands + [g if want_grad else operands[0]], axis)
    P, Q, strides = geo
    gs = strides[-1] if want_grad else (0, 0, 0)
    mk, ms = (operands[-1], strides[-2]) if masked else (cupy.empty((1,), np.bool_), (0, 0, 0))
    team, grid, block = _config.plan("rows", rows, n, strides[0][2], strides[0][1], ctype.itemsize)
    common = (i64(rows), i64(Q), i64(n), *(i64(s) for s in (*strides[0], *ms, *gs)))
    outs = (w, loss, lse_out, g)
    if index:
        fn = _modules.function("cross_entropy.cu", dtype, kernels.xent_index_name(dtype, team))
        args = (operands[0], t, mk, *outs, *common, i64(ignore))
    else:
        ttype = kernels.TYPES[operands[1].dtype.name]
        fn = _modules.function("cross_entropy.cu", dtype, kernels.xent_prob_name(dtype, ttype, team))
        args = (operands[0], operands[1], mk, *outs, *common, *(i64(s) for s in strides[1]))
    c = ctype.type
    fn((grid,), (block,), (*args, c(eps), c(z_loss), c(softcap or 0.0), c(scale), np.int32(weight is not None),
                           np.int32(want_grad), np.int32(want_lse), masked))
    return loss, grad, lse


def nll_loss(lp, target, axis, ignore, weight, scale, want_grad):
    """(per-row losses -w[t] lp[t] in the compute type, lp's shape without
    ``axis``; gradient in lp's dtype and shape, C-contiguous, or None): zeros
    but -w[t] * scale at each row's target, from one kernel on a zeroed array."""
    dtype = lp.dtype.name
    ctype = COMPUTE[lp.dtype]
    rows_shape = lp.shape[:axis] + lp.shape[axis + 1 :]
    n = lp.shape[axis]
    rows = math.prod(rows_shape)
    loss = cupy.empty(rows_shape, ctype)
    grad = cupy.zeros(lp.shape, lp.dtype) if want_grad else None
    if rows == 0 or n == 0:
        # no classes: every target is ignored (check_targets)
        loss[...] = 0.0
        return loss, grad
    t = cupy.ascontiguousarray(target, dtype=cupy.int64)
    g = grad if want_grad else cupy.empty((1,) * lp.ndim, lp.dtype)
    w = cupy.ascontiguousarray(weight) if weight is not None else cupy.empty((1,), ctype)
    geo = _layout.rows([lp, g if want_grad else lp], axis)
    if geo is None:
        lp = cupy.ascontiguousarray(lp)
        geo = _layout.rows([lp, g if want_grad else lp], axis)
    _, Q, (lps, gs) = geo
    if not want_grad:
        gs = (0, 0, 0)
    _, grid, block = _config.plan("items", rows, 1)
    fn = _modules.function("cross_entropy.cu", dtype, kernels.nll_name(dtype))
    fn((grid,), (block,), (lp, t, w, loss, g, i64(rows), i64(Q), *(i64(s) for s in lps), *(i64(s) for s in gs),
                           i64(ignore), ctype.type(scale), np.int32(weight is not None), np.int32(want_grad)))
    return loss, grad
