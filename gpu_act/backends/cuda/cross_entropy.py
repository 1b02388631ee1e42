"""Softmax cross-entropy per row: loss and gradient in one kernel.

With m the row max, s = sum_c e^{z_c - m} and smoothed targets t' = (1-eps) t + eps/C:
  loss  = sum_c t'_c ((m - z_c) + log s)     (terms with t'_c = 0 contribute 0)
  dloss/dz_c = softmax(z)_c sum_k t'_k - t'_c
Each term is formed as (m - z_c) + log s, never as lse - z_c: m - z_c >= 0
has no cancellation, so logits of +-1e30 lose nothing (lse - z_c is 0 there).
Index targets are one-hot t; a row whose target is ``ignore`` has loss 0 and
gradient 0. (m, s) come from the online normaliser (``_rows``); the gradient
is written already multiplied by ``scale`` (the reduction's 1/count).
Variants as softmax's (``_config.plan``): "thread", "warp", "block".
"""

import math

import numpy as np

from ... import _cuda
from ..._dtypes import COMPUTE
from . import _arrays, _config, _kernels, _operands, _rows, reduce

cuda = _cuda.cuda


def _index(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, loss, shape, rows, C, ignore, eps, base, inv_c, scale, want_grad):
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    ti = np.int64(t[_row_offset(row, shape, ts, to)])  # noqa: F821
    if ti == ignore:
        if lane == 0:
            loss[row] = 0.0
        if want_grad:
            for j in range(lane, C, width):
                g[pg + j * ga] = 0.0
        return
    one = _C(1.0)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    for j in range(lane, C, width):
        m, s = _push(m, s, _C(z[pz + j * za]), one)  # noqa: F821
    m, s = _ms_all(m, s, one)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    ls = math.log(s)
    inv_s = 1.0 / s
    hit = (1.0 - eps) * scale
    sd = 0.0  # sum_c (m - z_c), for label smoothing
    if want_grad or eps != 0.0:
        for j in range(lane, C, width):
            zj = _C(z[pz + j * za])  # noqa: F821
            sd += m - zj
            if want_grad:
                gj = (math.exp(zj - m) * inv_s - base) * scale
                g[pg + j * ga] = gj - hit if j == ti else gj
    if eps != 0.0:
        sd = _sum_all(sd)  # noqa: F821
    if lane == 0:
        nll = (m - _C(z[pz + ti * za])) + ls  # noqa: F821
        if eps != 0.0:
            # eps * mean_c((m - z_c) + log s)
            nll = (1.0 - eps) * nll + eps * (sd * inv_c + ls)
        loss[row] = nll


def _prob(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, loss, shape, rows, C, ignore, eps, base, inv_c, scale, want_grad):
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    pt = _row_offset(row, shape, ts, to)  # noqa: F821
    one = _C(1.0)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    st = 0.0
    for j in range(lane, C, width):
        m, s = _push(m, s, _C(z[pz + j * za]), one)  # noqa: F821
        st += (1.0 - eps) * _C(t[pt + j * ta]) + base  # noqa: F821
    m, s = _ms_all(m, s, one)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    st = _sum_all(st)  # noqa: F821
    ls = math.log(s)
    inv_s = 1.0 / s
    acc = 0.0
    for j in range(lane, C, width):
        zj = _C(z[pz + j * za])  # noqa: F821
        tj = (1.0 - eps) * _C(t[pt + j * ta]) + base  # noqa: F821
        if tj != 0.0:
            acc += tj * ((m - zj) + ls)
        if want_grad:
            g[pg + j * ga] = (math.exp(zj - m) * inv_s * st - tj) * scale
    acc = _sum_all(acc)  # noqa: F821
    if lane == 0:
        # a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        loss[row] = acc if ls == ls else ls


TEMPLATES = {"index": _index, "prob": _prob}


def kernel(name, ctype, variant):
    ctype = np.dtype(ctype)
    return _kernels.cached(
        ("cross_entropy", name, ctype, variant),
        lambda: _kernels.kernel(TEMPLATES[name], _rows.helpers(ctype, variant), f"ce.{name}.{variant}", ctype, variant),
    )


def _check(t, to, ts, shape, rows, classes, ignore, res):
    # res[0] += valid targets; res[1] = max of rows - r over rows r with an
    # out-of-range target (so the first such row; 0: none). One atomic per thread
    # for the count, not one per target.
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    valid = 0
    while i < rows:
        v = np.int64(t[_row_offset(i, shape, ts, to)])  # noqa: F821
        if v != ignore:
            if v < 0 or v >= classes:
                cuda.atomic.max(res, 1, rows - i)
            else:
                valid += 1
        i += step
    if valid:
        cuda.atomic.add(res, 0, valid)


def check_kernel():
    return _kernels.cached(
        ("check_targets",),
        lambda: _kernels.kernel(_check, _rows.helpers(np.float32, "thread"), "check", np.float32, "elementwise"),
    )


def check_targets(ctx, fname, target, classes, ignore_index):
    """The number of non-ignored targets; ValueError for one out of range.
    Raising needs the answer on the host: this synchronises the call's stream."""
    rows = target.size
    if rows == 0:
        return 0
    res = _arrays.empty(ctx, (2,), np.int64)
    reduce.fill(ctx, res, 0)
    shape, (op,) = _operands.row_operands(ctx, [target], None)
    config = _config.plan("elementwise", 1, rows, "unit", 8, _config.limits(ctx))
    args = [op.view, op.offset, op.outer, shape, np.int64(rows), np.int64(classes), np.int64(ignore_index)]
    _kernels.launch(ctx, check_kernel(), config, [*args, _operands.contiguous_view(ctx, res)])
    count, bad = _operands.contiguous_view(ctx, res).copy_to_host(stream=ctx.stream)
    _cuda.synchronize(ctx.stream)
    if bad:
        pos = int(op.offset) + sum(int(c) * s for c, s in zip(np.unravel_index(rows - int(bad), shape), op.outer))
        value = op.view[pos : pos + 1].copy_to_host(stream=ctx.stream)[0]
        _cuda.synchronize(ctx.stream)
        raise ValueError(
            f"{fname}: target index {value} is out of range; expected 0 <= target < {classes} "
            f"or ignore_index={ignore_index}"
        )
    return int(count)


def cross_entropy(ctx, z, target, axis, index, ignore_index, eps, reduction, count, want_grad):
    """(loss, grad): loss reduced as asked (a 0-d array for mean/sum) in z's dtype."""
    ctype = COMPUTE[z.dtype]
    C = z.shape[axis]
    rows_shape = z.shape[:axis] + z.shape[axis + 1 :]
    rows = int(np.prod(rows_shape))
    grad = _arrays.empty(ctx, z.shape, z.dtype) if want_grad else None
    if reduction == "none":
        per_row = _arrays.empty(ctx, rows_shape, z.dtype)
    else:
        per_row = _arrays.empty(ctx, (max(rows, 1),), np.float64)
    if rows and C:
        layout = _config.row_layout(z, axis)
        config = _config.plan("cross_entropy", rows, C, layout, ctype.itemsize, _config.limits(ctx))
        g = grad if want_grad else _arrays.empty(ctx, z.shape[:axis] + (1,) + z.shape[axis + 1 :], z.dtype)
        shape, ops = _operands.row_operands(ctx, [z, g, target], axis)
        scale = (1.0 / count if count else 0.0) if reduction == "mean" else 1.0
        k = kernel("index" if index else "prob", ctype, config.variant)
        args = [v for o in ops[:2] for v in o] + list(ops[2])
        c = ctype.type
        _kernels.launch(
            ctx,
            k,
            config,
            [*args, _operands.contiguous_view(ctx, per_row), shape, np.int64(rows), np.int64(C), np.int64(ignore_index),
             c(eps), c(eps / C), c(1.0 / C), c(scale), want_grad],
        )
    else:
        reduce.fill(ctx, per_row, 0.0)
        if want_grad and grad.size:
            reduce.fill(ctx, grad, 0.0)
    if reduction == "none":
        return per_row, grad
    loss = _arrays.empty(ctx, (), z.dtype)
    if reduction == "sum":
        scale = 1.0
    else:
        scale = 1.0 / count if count else math.nan
    reduce.group_sum(ctx, per_row, None, loss.reshape((1,)), scale)
    return loss, grad
