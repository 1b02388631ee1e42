"""Softmax cross-entropy per row: loss, gradient and log-sum-exp in one kernel;
and the check of class-index targets (``nll_loss``'s too).

Per row of C logits z, with the softcap c applied on the fly (never stored),
v_c = c tanh(z_c / c) (v = z without a softcap), m = max_c v_c,
s = sum_c e^{v_c - m}, lse = m + log s, p_c = e^{v_c - m} / s, and target
weights q_c = w_c ((1 - eps) t_c + eps / C) (t one-hot for class indices;
w = 1 without class weights):
  loss  = sum_c q_c ((m - v_c) + log s)  +  z_loss lse^2   (terms with q_c = 0 contribute 0)
  dloss/dz_c = (p_c (sum_k q_k + 2 z_loss lse) - q_c) (1 - th_c^2),   th_c = tanh(z_c / c)
(the last factor is dv_c/dz_c, 1 without a softcap). Each term is formed as
(m - v_c) + log s, never as lse - v_c: m - v_c >= 0 has no cancellation, so
logits of +-1e30 lose nothing (lse - v_c is 0 there). The row sums of the
loss and of q accumulate in float64, everything else is in the compute type;
(m, s) come from the online normaliser (``_rows``). A row whose target is
``ignore`` has loss 0 and gradient 0 (its lse is still written); a row
without a softmax (NaN, +inf, or all -inf: log s is NaN) has a NaN loss. The
gradient is written already multiplied by ``scale`` (the reduction's
1/denominator). Variants as softmax's (``_config.plan``): "thread", "warp",
"block". Operands a flag turns off (``w`` without ``weighted``, ``g`` without
``want_grad``, ``lse`` without ``want_lse``) are never touched. Logits,
probability targets and the gradient are read and written through their
codecs (``_codecs``: ``_Lz``, ``_Lt`` load, ``_Sg`` stores); class weights are
in the compute dtype.
"""

import math

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from . import _arrays, _codecs, _config, _kernels, _operands, _rows, reduce

cuda = _cuda.cuda


def _capped(z, cap):
    # (v, dv/dz) of v = cap tanh(z / cap); (z, 1) for cap == 0 (no softcap)
    if cap != 0.0:
        th = math.tanh(z / cap)
        return cap * th, 1.0 - th * th
    return z, 1.0


def _index(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, w, loss, lse, shape, rows, C, ignore, eps, base, z_loss, cap,
           scale, want_grad, want_lse, weighted):
    # class index ti: q_c = base w_c + hit [c == ti] with base = eps / C and
    # hit = (1 - eps) w_ti, so loss = hit ((m - v_ti) + log s) + base sum_c w_c ((m - v_c) + log s)
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    ti = np.int64(t[_row_offset(row, shape, ts, to)])  # noqa: F821
    skip = ti == ignore
    if skip:
        if lane == 0:
            loss[row] = 0.0
        if want_grad:
            for j in range(lane, C, width):
                g[pg + j * ga] = _Sg(0.0)  # noqa: F821
        if not want_lse:
            return
    one = _C(1.0)  # noqa: F821
    want_sw = weighted and eps != 0.0 and want_grad and not skip  # the gradient's sum_c q_c needs sum_c w_c
    m = -_INF  # noqa: F821
    s = 0.0
    sw = np.float64(0.0)  # sum_c w_c
    for j in range(lane, C, width):
        m, s = _push(m, s, _capped(_Lz(z[pz + j * za]), cap)[0], one)  # noqa: F821
        if want_sw:
            sw += np.float64(w[j])
    m, s = _ms_all(m, s, one)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    ls = math.log(s)
    lse_r = m + ls
    if want_lse and lane == 0:
        lse[row] = lse_r
    if skip:
        return
    hit = (1.0 - eps) * (_C(w[ti]) if weighted else one)  # noqa: F821
    if want_grad:
        # p_c's factor: sum_c q_c = hit + base sum_c w_c (hit + eps without class
        # weights), plus 2 z_loss lse
        q_sum = hit + (base * _C(_sum64_all(sw)) if want_sw else eps)  # noqa: F821
        pf = q_sum + 2.0 * z_loss * lse_r if z_loss != 0.0 else q_sum
    inv_s = 1.0 / s
    acc = np.float64(0.0)  # sum_c w_c ((m - v_c) + log s), for label smoothing
    if want_grad or eps != 0.0:
        for j in range(lane, C, width):
            vj, dv = _capped(_Lz(z[pz + j * za]), cap)  # noqa: F821
            wj = _C(w[j]) if weighted else one  # noqa: F821
            if eps != 0.0 and wj != 0.0:
                acc += np.float64(wj * ((m - vj) + ls))
            if want_grad:
                qj = base * wj + hit if j == ti else base * wj
                g[pg + j * ga] = _Sg((math.exp(vj - m) * inv_s * pf - qj) * scale * dv)  # noqa: F821
    if eps != 0.0:
        acc = _sum64_all(acc) * base  # noqa: F821
    if lane == 0:
        if hit != 0.0:
            acc += np.float64(hit * ((m - _capped(_Lz(z[pz + ti * za]), cap)[0]) + ls))  # noqa: F821
        if z_loss != 0.0:
            acc += np.float64(z_loss * lse_r * lse_r)
        loss[row] = acc if ls == ls else ls


def _prob(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, w, loss, lse, shape, rows, C, ignore, eps, base, z_loss, cap,
          scale, want_grad, want_lse, weighted):
    # probabilities t: q_c = w_c ((1 - eps) t_c + base), base = eps / C
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    pt = _row_offset(row, shape, ts, to)  # noqa: F821
    one = _C(1.0)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    sq = np.float64(0.0)  # sum_c q_c
    for j in range(lane, C, width):
        m, s = _push(m, s, _capped(_Lz(z[pz + j * za]), cap)[0], one)  # noqa: F821
        if want_grad:
            qj = ((1.0 - eps) * _Lt(t[pt + j * ta]) + base) * (_C(w[j]) if weighted else one)  # noqa: F821
            sq += np.float64(qj)
    m, s = _ms_all(m, s, one)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    ls = math.log(s)
    lse_r = m + ls
    if want_lse and lane == 0:
        lse[row] = lse_r
    if want_grad:
        # p_c's factor: sum_c q_c + 2 z_loss lse
        q_sum = _C(_sum64_all(sq))  # noqa: F821
        pf = q_sum + 2.0 * z_loss * lse_r if z_loss != 0.0 else q_sum
    inv_s = 1.0 / s
    acc = np.float64(0.0)
    for j in range(lane, C, width):
        vj, dv = _capped(_Lz(z[pz + j * za]), cap)  # noqa: F821
        qj = ((1.0 - eps) * _Lt(t[pt + j * ta]) + base) * (_C(w[j]) if weighted else one)  # noqa: F821
        if qj != 0.0:
            acc += np.float64(qj * ((m - vj) + ls))
        if want_grad:
            g[pg + j * ga] = _Sg((math.exp(vj - m) * inv_s * pf - qj) * scale * dv)  # noqa: F821
    acc = _sum64_all(acc)  # noqa: F821
    if lane == 0:
        if z_loss != 0.0:
            acc += np.float64(z_loss * lse_r * lse_r)
        # a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        loss[row] = acc if ls == ls else ls


TEMPLATES = {"index": _index, "prob": _prob}


NATIVE = (_codecs.NATIVE,) * 2


def kernel(name, ctype, variant, codecs=NATIVE):
    """The kernel for ``name`` ("index"/"prob") targets, compute dtype ``ctype``
    and ``variant``; the logits (and gradient) and the probability targets
    stored as ``codecs``."""
    ctype = np.dtype(ctype)

    def build():
        b = dict(_rows.helpers(ctype, variant), _Sg=_codecs.store(codecs[0]))
        b["_Lz"], b["_Lt"] = (_codecs.load(c, ctype) for c in codecs)
        b["_capped"] = _compile.instantiate(_capped, b, f"ce.{ctype.name}", _cuda.device, ctype)
        return _kernels.kernel(TEMPLATES[name], b, f"ce.{name}.{variant}.{_codecs.tag(codecs)}", ctype, variant)

    return _kernels.cached(("cross_entropy", name, ctype, variant, codecs), build)


def _check(t, to, ts, shape, rows, classes, ignore, w, parts, res, weighted):
    # res[0] += valid targets; res[1] = max of rows - r over rows r with an
    # out-of-range target (so the first such row; 0: none). One atomic per thread
    # for the count, not one per target. ``weighted``: parts[block] = the block's
    # sum of w[target] over its valid targets, in float64 (summed in a fixed
    # order afterwards, so the total does not depend on timing).
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    valid = 0
    sw = np.float64(0.0)
    while i < rows:
        v = np.int64(t[_row_offset(i, shape, ts, to)])  # noqa: F821
        if v != ignore:
            if v < 0 or v >= classes:
                cuda.atomic.max(res, 1, rows - i)
            else:
                valid += 1
                if weighted:
                    sw += np.float64(w[v])
        i += step
    if valid:
        cuda.atomic.add(res, 0, valid)
    if weighted:
        sw = _sum64_all(sw)  # noqa: F821
        if cuda.threadIdx.x == 0:
            parts[cuda.blockIdx.x] = sw


def check_kernel():
    return _kernels.cached(
        ("check_targets",),
        lambda: _kernels.kernel(_check, _rows.helpers(np.float64, "block"), "check", np.float64, "elementwise"),
    )


def check_targets(ctx, fname, target, classes, ignore_index, weight):
    """(count, denominator): the number of non-ignored targets, and the sum of
    ``weight`` over their classes in float64 (their number when ``weight`` is
    None); ValueError for a target out of range. Raising needs the answer on
    the host: this synchronises the call's stream."""
    rows = target.size
    if rows == 0:
        return 0, 0.0
    res = _arrays.empty(ctx, (2,), np.int64)
    reduce.fill(ctx, res, 0)
    shape, (op,) = _operands.row_operands(ctx, [target], None)
    config = _config.plan("elementwise", 1, rows, "unit", 8, _config.limits(ctx))
    parts = _arrays.empty(ctx, (config.grid,), np.float64)
    weighted = weight is not None
    w = _operands.contiguous_view(ctx, weight if weighted else parts)  # parts stands in: never read
    args = [op.view, op.offset, op.outer, shape, np.int64(rows), np.int64(classes), np.int64(ignore_index), w]
    _kernels.launch(ctx, check_kernel(), config, [*args, _operands.contiguous_view(ctx, parts),
                                                   _operands.contiguous_view(ctx, res), weighted])
    if weighted:
        den = _arrays.empty(ctx, (1,), np.float64)
        reduce.group_sum(ctx, parts, None, den, 1.0, np.float64)
        denominator = _operands.contiguous_view(ctx, den).copy_to_host(stream=ctx.stream)
    counts = _operands.contiguous_view(ctx, res).copy_to_host(stream=ctx.stream)
    _cuda.synchronize(ctx.stream)  # the copies are complete only after it
    count, bad = counts
    if bad:
        pos = int(op.offset) + sum(int(c) * s for c, s in zip(np.unravel_index(rows - int(bad), shape), op.outer))
        found = op.view[pos : pos + 1].copy_to_host(stream=ctx.stream)
        _cuda.synchronize(ctx.stream)
        value = found[0]
        raise ValueError(
            f"{fname}: target index {value} is out of range; expected 0 <= target < {classes} "
            f"or ignore_index={ignore_index}"
        )
    return int(count), float(denominator[0]) if weighted else float(count)


def cross_entropy(ctx, z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse):
    """(per-row losses, gradient or None, per-row lse or None); losses and lse
    in the compute dtype, the gradient in z's dtype and shape, C-contiguous."""
    ctype = COMPUTE[z.dtype]
    C = z.shape[axis]
    rows_shape = z.shape[:axis] + z.shape[axis + 1 :]
    rows = int(np.prod(rows_shape))
    grad = _arrays.empty(ctx, z.shape, z.dtype) if want_grad else None
    loss = _arrays.empty(ctx, rows_shape, ctype)
    lse = _arrays.empty(ctx, rows_shape, ctype) if want_lse else None
    if rows and C:
        layout = _config.row_layout(z, axis)
        config = _config.plan("cross_entropy", rows, C, layout, ctype.itemsize, _config.limits(ctx))
        # without a gradient, z stands in for it (never written)
        shape, ops = _operands.row_operands(ctx, [z, grad if want_grad else z, target], axis)
        codecs = (_codecs.of(z.dtype), _codecs.NATIVE if index else _codecs.of(target.dtype))
        k = kernel("index" if index else "prob", ctype, config.variant, codecs)
        loss_v = _operands.contiguous_view(ctx, loss)
        # the losses' view stands in for the operands that are off (never touched)
        w_v = loss_v if weight is None else _operands.contiguous_view(ctx, weight)
        lse_v = _operands.contiguous_view(ctx, lse) if want_lse else loss_v
        c = ctype.type
        _kernels.launch(
            ctx,
            k,
            config,
            [*[v for o in ops for v in o], w_v, loss_v, lse_v, shape, np.int64(rows), np.int64(C),
             np.int64(ignore_index), c(eps), c(eps / C), c(z_loss), c(softcap or 0.0), c(scale), want_grad, want_lse,
             weight is not None],
        )
    else:
        # no classes: every row's loss and lse are 0 (an empty row is taken as m = 0, s = 1)
        reduce.fill(ctx, loss, 0.0)
        if want_lse:
            reduce.fill(ctx, lse, 0.0)
    return loss, grad, lse
