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


def _index_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C, ignore, eps,
               base, z_loss, cap, scale, flags):
    # class index ti: q_c = base w_c + hit [c == ti] with base = eps / C and
    # hit = (1 - eps) w_ti, so loss = hit ((m - v_ti) + log s) + base sum_c w_c ((m - v_c) + log s).
    # With _MASKED (mk the mask, else a stand-in never read): the sums run over the
    # unmasked classes, C' of them (base = eps / C', counted only for smoothing), masked
    # classes get gradient 0, a masked target costs +inf; a row with none unmasked
    # (its sum s is 0: nothing pushed) is ignored, its lse -inf.
    # The three flags come as one tuple: Python passes a call of more than 30
    # arguments as a star-args tuple, which numba-cuda-mlir does not inline, and
    # this function's shared-memory reductions must be inlined into the kernel
    want_grad, want_lse, weighted = flags
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
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
    count = np.int32(0)  # unmasked classes (of this worker)
    for j in range(lane, C, width):
        if not _MASKED or mk[pm + j * ma]:  # noqa: F821
            m, s = _push(m, s, _capped(_Lz(z[pz + j * za]), cap)[0], one)  # noqa: F821
            if want_sw:
                sw += np.float64(w[j])
            count += np.int32(1)
    m, s = _ms_all(m, s, one)  # noqa: F821
    dead = _MASKED and s == 0.0  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    ls = math.log(s)
    lse_r = -_INF if dead else m + ls  # noqa: F821
    if want_lse and lane == 0:
        lse[row] = lse_r
    if skip:
        return
    if dead:
        if lane == 0:
            loss[row] = 0.0
        if want_grad:
            for j in range(lane, C, width):
                g[pg + j * ga] = _Sg(0.0)  # noqa: F821
        return
    if _MASKED and eps != 0.0:  # noqa: F821
        base = _C(eps / _sum64_all(np.float64(count)))  # noqa: F821
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
            live = not _MASKED or mk[pm + j * ma] != 0  # noqa: F821
            vj, dv = _capped(_Lz(z[pz + j * za]), cap)  # noqa: F821
            wj = _C(w[j]) if weighted else one  # noqa: F821
            if eps != 0.0 and wj != 0.0 and live:
                acc += np.float64(wj * ((m - vj) + ls))
            if want_grad:
                qj = base * wj + hit if j == ti else base * wj
                gj = (math.exp(vj - m) * inv_s * pf - qj) * scale * dv
                g[pg + j * ga] = _Sg(gj if live else 0.0)  # noqa: F821
    if eps != 0.0:
        acc = _sum64_all(acc) * base  # noqa: F821
    if lane == 0:
        if hit != 0.0:
            if not _MASKED or mk[pm + ti * ma]:  # noqa: F821
                acc += np.float64(hit * ((m - _capped(_Lz(z[pz + ti * za]), cap)[0]) + ls))  # noqa: F821
            else:  # the target's log-probability is -inf
                acc += np.float64(hit) * np.inf
        if z_loss != 0.0:
            acc += np.float64(z_loss * lse_r * lse_r)
        loss[row] = acc if ls == ls else ls


def _index(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, w, loss, lse, shape, rows, C, ignore, eps, base, z_loss, cap,
           scale, want_grad, want_lse, weighted):
    # no mask: z's operand stands in for it, never read
    _index_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, z, zo, zs, za, w, loss, lse, shape, rows, C,  # noqa: F821
               ignore, eps, base, z_loss, cap, scale, (want_grad, want_lse, weighted))


def _index_masked(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C, ignore,
                  eps, base, z_loss, cap, scale, want_grad, want_lse, weighted):
    _index_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C,  # noqa: F821
               ignore, eps, base, z_loss, cap, scale, (want_grad, want_lse, weighted))


def _prob_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C, ignore, eps,
              base, z_loss, cap, scale, flags):
    # probabilities t: q_c = w_c ((1 - eps) t_c + base), base = eps / C. With _MASKED:
    # base = eps / C' on the unmasked classes only, masked classes get gradient 0,
    # target mass on one costs +inf; a row with none unmasked is ignored, its lse -inf.
    # flags: (want_grad, want_lse, weighted), one argument as in _index_row
    want_grad, want_lse, weighted = flags
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pz = _row_offset(row, shape, zs, zo)  # noqa: F821
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    pt = _row_offset(row, shape, ts, to)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    one = _C(1.0)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    sq = np.float64(0.0)  # sum_c q_c (with a mask: without its smoothing part)
    for j in range(lane, C, width):
        if not _MASKED or mk[pm + j * ma]:  # noqa: F821
            m, s = _push(m, s, _capped(_Lz(z[pz + j * za]), cap)[0], one)  # noqa: F821
        if want_grad:
            smooth = 0.0 if _MASKED else base  # noqa: F821
            sq += np.float64(((1.0 - eps) * _Lt(t[pt + j * ta]) + smooth) * (_C(w[j]) if weighted else one))  # noqa: F821
    m, s = _ms_all(m, s, one)  # noqa: F821
    dead = _MASKED and s == 0.0  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    ls = math.log(s)
    lse_r = -_INF if dead else m + ls  # noqa: F821
    if want_lse and lane == 0:
        lse[row] = lse_r
    if dead:
        if lane == 0:
            loss[row] = 0.0
        if want_grad:
            for j in range(lane, C, width):
                g[pg + j * ga] = _Sg(0.0)  # noqa: F821
        return
    if want_grad:
        # p_c's factor: sum_c q_c + 2 z_loss lse
        q_sum = _C(_sum64_all(sq))  # noqa: F821
    if _MASKED and eps != 0.0:  # noqa: F821
        # the smoothing eps / C' over the row's C' classes: another pass over the mask
        # (and weights), kept out of the first pass's registers
        count = np.int32(0)
        sw = np.float64(0.0)
        for j in range(lane, C, width):
            if mk[pm + j * ma]:
                count += np.int32(1)
                sw += np.float64(w[j]) if weighted else 1.0
        base = _C(eps / _sum64_all(np.float64(count)))  # noqa: F821
        if want_grad:
            q_sum += base * _C(_sum64_all(sw))  # noqa: F821
    if want_grad:
        pf = q_sum + 2.0 * z_loss * lse_r if z_loss != 0.0 else q_sum
    inv_s = 1.0 / s
    acc = np.float64(0.0)
    for j in range(lane, C, width):
        wj = _C(w[j]) if weighted else one  # noqa: F821
        if _MASKED and not mk[pm + j * ma]:  # noqa: F821
            # a masked class: target mass on it costs +inf (its log-probability is
            # -inf), its gradient is 0
            qj = (1.0 - eps) * _Lt(t[pt + j * ta]) * wj  # noqa: F821
            if qj != 0.0:
                acc += np.float64(qj) * np.inf
            if want_grad:
                g[pg + j * ga] = _Sg(0.0)  # noqa: F821
            continue
        vj, dv = _capped(_Lz(z[pz + j * za]), cap)  # noqa: F821
        qj = ((1.0 - eps) * _Lt(t[pt + j * ta]) + base) * wj  # noqa: F821
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


def _prob(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, w, loss, lse, shape, rows, C, ignore, eps, base, z_loss, cap,
          scale, want_grad, want_lse, weighted):
    # no mask: z's operand stands in for it, never read
    _prob_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, z, zo, zs, za, w, loss, lse, shape, rows, C,  # noqa: F821
              ignore, eps, base, z_loss, cap, scale, (want_grad, want_lse, weighted))


def _prob_masked(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C, ignore,
                 eps, base, z_loss, cap, scale, want_grad, want_lse, weighted):
    _prob_row(z, zo, zs, za, g, go, gs, ga, t, to, ts, ta, mk, mo, ms, ma, w, loss, lse, shape, rows, C,  # noqa: F821
              ignore, eps, base, z_loss, cap, scale, (want_grad, want_lse, weighted))


# (target kind, masked) -> (template, the device function of one row it calls)
TEMPLATES = {
    ("index", False): (_index, _index_row),
    ("index", True): (_index_masked, _index_row),
    ("prob", False): (_prob, _prob_row),
    ("prob", True): (_prob_masked, _prob_row),
}


NATIVE = (_codecs.NATIVE,) * 2


def kernel(name, ctype, variant, codecs=NATIVE, masked=False):
    """The kernel for ``name`` ("index"/"prob") targets, compute dtype ``ctype``
    and ``variant``; the logits (and gradient) and the probability targets
    stored as ``codecs``; ``masked``: it takes and reads a mask."""
    ctype = np.dtype(ctype)

    def build():
        b = dict(_rows.helpers(ctype, variant), _Sg=_codecs.store(codecs[0]), _MASKED=masked)
        b["_Lz"], b["_Lt"] = (_codecs.load(c, ctype) for c in codecs)
        b["_capped"] = _compile.instantiate(_capped, b, f"ce.{ctype.name}", _cuda.device, ctype)
        template, row = TEMPLATES[name, masked]
        tag = f"{name}.{variant}.{_codecs.tag(codecs)}.{int(masked)}"
        b[row.__name__] = _compile.instantiate(row, b, f"ce.{tag}.{ctype.name}", _cuda.device, ctype)
        return _kernels.kernel(template, b, f"ce.{tag}", ctype, variant)

    return _kernels.cached(("cross_entropy", name, ctype, variant, codecs, masked), build)


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


def _any_row(m, mo, ms, ma, out, shape, rows, n):
    # out[r] = whether row r of the mask has a True entry; one thread per row
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < rows:
        p = _row_offset(i, shape, ms, mo)  # noqa: F821
        found = False
        j = 0
        while j < n and not found:
            found = m[p + j * ma]
            j += 1
        out[i] = found
        i += step


def _live_targets(t, to, ts, lv, lo, ls, shape, rows, ignore, out):
    # out[r] = target r, or ignore where row r has no unmasked class (lv False)
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < rows:
        live = lv[_row_offset(i, shape, ls, lo)]  # noqa: F821
        out[i] = np.int64(t[_row_offset(i, shape, ts, to)]) if live else ignore  # noqa: F821
        i += step


def rows_kernel(name):
    """The kernel "any" (``_any_row``) or "live" (``_live_targets``)."""
    template = {"any": _any_row, "live": _live_targets}[name]
    return _kernels.cached(
        ("mask-rows", name),
        lambda: _kernels.kernel(template, _rows.helpers(np.float64, "thread"), f"mask.{name}", np.float64,
                                "elementwise"),
    )


def live_rows(ctx, mask, shape, axis):
    """(live, count): whether each row of an array of ``shape`` along ``axis`` has
    an unmasked entry (bool, the rows' shape, broadcast where the mask is) and
    how many do, read back to the host (the call's stream is synchronised)."""
    n = mask.shape[axis]
    rows = mask.size // n if n else 0
    found = _arrays.empty(ctx, mask.shape[:axis] + mask.shape[axis + 1 :], np.bool_)
    if rows:
        outer, (op,) = _operands.row_operands(ctx, [mask], axis)
        config = _config.plan("elementwise", 1, rows, "unit", 8, _config.limits(ctx))
        args = [*op, _operands.contiguous_view(ctx, found), outer, np.int64(rows), np.int64(n)]
        _kernels.launch(ctx, rows_kernel("any"), config, args)
    else:
        reduce.fill(ctx, found, False)
    host = _operands.contiguous_view(ctx, found).copy_to_host(stream=ctx.stream) if found.size else np.zeros(0, bool)
    _cuda.synchronize(ctx.stream)  # the copy is complete only after it
    rows_shape = tuple(k for i, k in enumerate(shape) if i != axis)
    count = int(np.count_nonzero(np.broadcast_to(host.reshape(found.shape), rows_shape)))
    return _operands.broadcast(found, rows_shape), count


def check_targets(ctx, fname, target, classes, ignore_index, weight, live=None):
    """(count, denominator): the number of non-ignored targets, and the sum of
    ``weight`` over their classes in float64 (their number when ``weight`` is
    None); ValueError for a target out of range. Rows where ``live`` is False
    count as ignored. Raising needs the answer on the host: this synchronises
    the call's stream."""
    rows = target.size
    if rows == 0:
        return 0, 0.0
    if live is not None:  # the targets of the rows without an unmasked class, ignored
        shape, (op, lop) = _operands.row_operands(ctx, [target, live], None)
        effective = _arrays.empty(ctx, target.shape, np.int64)
        config = _config.plan("elementwise", 1, rows, "unit", 8, _config.limits(ctx))
        args = [op.view, op.offset, op.outer, lop.view, lop.offset, lop.outer, shape, np.int64(rows),
                np.int64(ignore_index), _operands.contiguous_view(ctx, effective)]
        _kernels.launch(ctx, rows_kernel("live"), config, args)
        target = effective
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


def cross_entropy(ctx, z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse,
                  mask=None):
    """(per-row losses, gradient or None, per-row lse or None); losses and lse
    in the compute dtype, the gradient in z's dtype and shape, C-contiguous.
    ``mask``: None, or a bool array of z's rank (size-1 axes read through
    stride 0) of the classes that take part."""
    ctype = COMPUTE[z.dtype]
    C = z.shape[axis]
    rows_shape = z.shape[:axis] + z.shape[axis + 1 :]
    rows = int(np.prod(rows_shape))
    grad = _arrays.empty(ctx, z.shape, z.dtype) if want_grad else None
    loss = _arrays.empty(ctx, rows_shape, ctype)
    lse = _arrays.empty(ctx, rows_shape, ctype) if want_lse else None
    if rows and C:
        layout = _config.row_layout(z, axis)
        op = "cross_entropy" if mask is None else "cross_entropy_masked"
        config = _config.plan(op, rows, C, layout, ctype.itemsize, _config.limits(ctx))
        masks = [] if mask is None else [_operands.broadcast(mask, z.shape)]
        # without a gradient, z stands in for it (never written)
        shape, ops = _operands.row_operands(ctx, [z, grad if want_grad else z, target, *masks], axis)
        codecs = (_codecs.of(z.dtype), _codecs.NATIVE if index else _codecs.of(target.dtype))
        k = kernel("index" if index else "prob", ctype, config.variant, codecs, mask is not None)
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
