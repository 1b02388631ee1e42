"""Softmax cross-entropy and negative log-likelihood on (P, Q, C) row views.

Cross-entropy computes loss, gradient and log-sum-exp in one pass over a row.
With v_c the logit as the softmax sees it (z_c, or c tanh(z_c / c) under a
softcap c, computed on the fly), m = max v, s = sum_c e^{v_c - m}, class
weights w (1 without) and smoothed targets t' = (1 - eps) t + eps / C:
  q_c   = w_c t'_c
  loss  = sum_c q_c ((m - v_c) + log s) + z_loss lse^2,   lse = m + log s
  dloss/dz_c = (p_c (sum_k q_k + 2 z_loss lse) - q_c) dv_c/dz_c,
  p = softmax(v), dv/dz = 1 - (v / c)^2 under a softcap, else 1.
Each term is formed as (m - v_c) + log s, never as lse - v_c: m - v_c >= 0
has no cancellation, so logits of +-1e30 lose nothing (lse - v_c is 0 there).
Terms with q_c = 0 contribute 0. Index targets are one-hot t; a row whose
target is ``ignore`` has loss 0 and gradient 0. The gradient is written
already multiplied by ``scale`` (the reduction's 1/denominator). Row sums
accumulate in float64; per-row losses come back in the compute dtype.

With a mask (``_MASKED``), the row's classes are its unmasked ones, C' of
them: m and s run over them, label smoothing spreads eps over them (eps / C'),
masked classes get gradient 0, and target mass on a masked class (a class
index, or a probability > 0) costs +inf (its log-probability is -inf); a row
with no unmasked class is ignored: loss 0, gradient 0, lse -inf.

Whether the kernel applies a softcap, class weights or a mask is decided when
it is compiled (``_CAPPED``, ``_WEIGHTED``, ``_MASKED``): the plain kernel has
none of them in its loops.
Logits, probability targets and the gradient are read and written through
their codecs (``_Lz``, ``_Lt``, ``_S``; see ``_codecs``).
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ._kernels import cached, codecs, decorator
from . import _codecs, _vmath
from ._numba import SOURCE_HASH, ijit
from ._views import row_casts, rows3, unit_rows
from .softmax import masked_row_max, row_max


def _v(z, cap, inv_cap):
    # the logit the softmax sees
    if _CAPPED:  # noqa: F821
        return cap * _tanh(z * inv_cap)  # noqa: F821
    return z


def _dv(v, inv_cap):
    # dv/dz: 1 - tanh^2 = 1 - (v / cap)^2 under a softcap
    if _CAPPED:  # noqa: F821
        u = v * inv_cap
        return 1.0 - u * u
    return 1.0


def _w(w, c):
    if _WEIGHTED:  # noqa: F821
        return w[c]
    return 1.0


def _live(mr, j):
    # whether class j takes part: its mask's, or always without a mask
    return mr[j] if _MASKED else True  # noqa: F821


def _stats(zr, mr, cap, inv_cap):
    # (m, s, log s, count) of the row's v over its unmasked classes: max (through
    # the codec's ordered keys, as softmax; c tanh(z / c) is increasing, so the
    # capped max is the max capped), sum of e^{v - m} (float64), its log, and the
    # number of those classes (C without a mask)
    m = _v(_rmax(zr, mr), cap, inv_cap)  # noqa: F821
    s = np.float64(0.0)
    count = 0
    for j in range(zr.shape[0]):
        e = _exp(_v(_Lz(zr[j]), cap, inv_cap) - m)  # noqa: F821
        live = _live(mr, j)  # noqa: F821
        s += e if live else 0.0
        count += 1 if live else 0
    return m, s, np.log(s), count


def _row_mask(mk, i, k):
    # the mask's row (i, k), or the stand-in of an unmasked kernel, never read
    return _U3(mk[i, k]) if _MASKED else mk[0, 0]  # noqa: F821


def _dead(loss, grad, lse, i, k, want_grad, want_lse):
    # a row with no unmasked class: ignored (loss 0, gradient 0), its lse -inf
    loss[i, k] = 0.0
    if want_grad:
        grad[i, k, :] = _S(_C(0.0))  # noqa: F821
    if want_lse:
        lse[i, k] = -np.inf


def _index_rows(z, mk, t, w, ignore, eps, z_loss, cap, inv_cap, scale, loss, grad, lse, want_grad, want_lse):
    P, Q, C = z.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        zr = _U0(z[i, k])  # noqa: F821
        mr = _row_mask(mk, i, k)  # noqa: F821
        ti = t[i, k]
        if ti == ignore:
            loss[i, k] = 0.0
            if want_grad:
                grad[i, k, :] = _S(_C(0.0))  # noqa: F821
            if want_lse:
                m, s, ls, count = _stats(zr, mr, cap, inv_cap)  # noqa: F821
                lse[i, k] = m + ls if count else -np.inf
            continue
        m, s, ls, count = _stats(zr, mr, cap, inv_cap)  # noqa: F821
        if count == 0:
            _dead(loss, grad, lse, i, k, want_grad, want_lse)  # noqa: F821
            continue
        base = eps / count  # the smoothing over the row's classes
        wt = _w(w, ti)  # noqa: F821
        vt = _v(_Lz(zr[ti]), cap, inv_cap)  # noqa: F821
        hit = (1.0 - eps) * wt
        target_live = _live(mr, ti)  # noqa: F821
        # a target on a masked class: its log-probability is -inf
        acc = hit * ((m - vt) + ls) if target_live else (hit * np.inf if hit != 0.0 else 0.0)
        qsum = hit
        if eps != 0.0:
            # eps / C' * sum over the unmasked classes of w_c ((m - v_c) + log s)
            sd = np.float64(0.0)
            sw = np.float64(0.0)
            for j in range(C):
                if _live(mr, j):  # noqa: F821
                    wj = _w(w, j)  # noqa: F821
                    if wj != 0.0:
                        sd += wj * ((m - _v(_Lz(zr[j]), cap, inv_cap)) + ls)  # noqa: F821
                    sw += wj
            acc += base * sd
            qsum += base * sw
        lr = m + ls
        if z_loss != 0.0:
            acc += z_loss * lr * lr
        loss[i, k] = acc if ls == ls else ls
        if want_lse:
            lse[i, k] = lr
        if want_grad:
            gr = _U2(grad[i, k])  # noqa: F821
            a = _C((qsum + 2.0 * z_loss * lr) / s * scale)  # noqa: F821
            bs = _C(base * scale)  # noqa: F821
            for j in range(C):
                v = _v(_Lz(zr[j]), cap, inv_cap)  # noqa: F821
                gj = (_exp(v - m) * a - bs * _w(w, j)) * _dv(v, inv_cap)  # noqa: F821
                gr[j] = _S(gj if _live(mr, j) else _C(0.0))  # noqa: F821
            if target_live:
                # the target's entry again, minus (1 - eps) w_t scale, from its value in
                # the compute dtype (rounded once), not from the stored one
                g = _exp(vt - m) * a - bs * wt - _C(hit * scale)  # noqa: F821
                gr[ti] = _S(g * _dv(vt, inv_cap))  # noqa: F821


def _prob_rows(z, mk, t, w, eps, z_loss, cap, inv_cap, scale, loss, grad, lse, want_grad, want_lse):
    P, Q, C = z.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        zr = _U0(z[i, k])  # noqa: F821
        tr = _U1(t[i, k])  # noqa: F821
        mr = _row_mask(mk, i, k)  # noqa: F821
        m, s, ls, count = _stats(zr, mr, cap, inv_cap)  # noqa: F821
        if count == 0:
            _dead(loss, grad, lse, i, k, want_grad, want_lse)  # noqa: F821
            continue
        base = eps / count  # the smoothing over the row's classes
        acc = np.float64(0.0)
        qsum = np.float64(0.0)
        for j in range(C):
            live = _live(mr, j)  # noqa: F821
            q = _w(w, j) * ((1.0 - eps) * _Lt(tr[j]) + (base if live else 0.0))  # noqa: F821
            if q != 0.0:
                # target mass on a masked class: its log-probability is -inf
                acc += q * ((m - _v(_Lz(zr[j]), cap, inv_cap)) + ls) if live else q * np.inf  # noqa: F821
            qsum += q
        lr = m + ls
        if z_loss != 0.0:
            acc += z_loss * lr * lr
        # a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        loss[i, k] = acc if ls == ls else ls
        if want_lse:
            lse[i, k] = lr
        if want_grad:
            gr = _U2(grad[i, k])  # noqa: F821
            a = _C((qsum + 2.0 * z_loss * lr) / s * scale)  # noqa: F821
            for j in range(C):
                live = _live(mr, j)  # noqa: F821
                v = _v(_Lz(zr[j]), cap, inv_cap)  # noqa: F821
                q = _C(_w(w, j) * ((1.0 - eps) * _Lt(tr[j]) + base) * scale)  # noqa: F821
                gj = (_exp(v - m) * a - q) * _dv(v, inv_cap)  # noqa: F821
                gr[j] = _S(gj if live else _C(0.0))  # noqa: F821


def _kernel(template, ctype, size, cs, capped, weighted, masked, units):
    """The kernel for codecs ``cs``: (logits, gradient) or (logits, targets, gradient);
    ``units``: whether the rows of logits, targets, gradient and mask have unit
    stride (``_views.row_casts``)."""
    how = decorator(size)

    def build():
        names = ".".join(c.name for c in cs)
        flags = "".join(str(int(f)) for f in (capped, weighted, masked, *units))
        tag = f"{ctype.name}.{names}.{flags}.{how.__name__}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        bound = {
            "_C": ctype.type,
            "_CAPPED": capped,
            "_WEIGHTED": weighted,
            "_MASKED": masked,
            "_exp": vm["exp"],  # vectorizes, unlike np.exp
            "_tanh": vm["tanh"],
            "_Lz": _codecs.functions(cs[0], ctype).load,
            "_Lt": _codecs.functions(cs[-2], ctype).load,
            "_S": _codecs.functions(cs[-1], ctype).store,
            "_rmax": masked_row_max(ctype, cs[0]) if masked else _compile.instantiate(
                _unmasked_max, {"_row_max": row_max(ctype, cs[0])}, tag, ijit, ctype),
            **row_casts(units),
        }
        for helper in (_v, _dv, _w, _live, _row_mask, _stats, _dead):
            bound[helper.__name__] = _compile.instantiate(helper, bound, tag, ijit, ctype)
        return _compile.instantiate(template, bound, tag, how, ctype)

    return cached((template.__name__, ctype, how, cs, capped, weighted, masked, units), build)


def _unmasked_max(zr, mr):
    return _row_max(zr)  # noqa: F821


_ANY = np.ones((1, 1, 1), np.bool_)  # the mask argument of an unmasked kernel, never read


def cross_entropy(z, target, axis, index, ignore, eps, weight, z_loss, softcap, scale, want_grad, want_lse, mask):
    """(per-row losses, gradient or None, per-row lse or None): losses and lse in the
    compute dtype, shape z.shape without ``axis``; the gradient C-contiguous in z's
    shape and dtype. ``mask``: None, or a bool array of z's rank (size-1 axes
    broadcast) of the classes that take part."""
    ctype = COMPUTE[z.dtype]
    zm = np.moveaxis(z, axis, -1)
    lead, C = zm.shape[:-1], zm.shape[-1]
    loss = np.empty(lead, ctype)
    lse = np.empty(lead, ctype) if want_lse else None
    grad = np.empty(z.shape, z.dtype) if want_grad else None
    if loss.size == 0 or C == 0:
        loss[...] = 0.0
        if want_lse:
            lse[...] = 0.0  # no classes: m = 0 and s = 1, as the GPU kernels
        return loss, grad, lse
    inputs = [zm] if index else [zm, np.moveaxis(target, axis, -1)]
    masks = [] if mask is None else [np.moveaxis(np.broadcast_to(mask, z.shape), axis, -1)]
    gm = [np.moveaxis(grad, axis, -1)] if want_grad else []
    views = rows3(inputs + masks + gm, -1)
    staged = views is None  # a layout that does not merge into (P, Q): contiguous copies
    if staged:
        views = rows3([np.ascontiguousarray(a) for a in inputs + masks] + [np.empty(zm.shape, z.dtype) for _ in gm],
                      -1)
    cs = codecs(inputs + [grad if want_grad else z])
    values = views[: len(inputs)] + views[len(inputs) + len(masks) :]
    values = [_codecs.storage(v, c) for v, c in zip(values, cs)]
    mk = views[len(inputs)] if masks else _ANY
    P, Q = values[0].shape[:2]
    loss2 = loss.reshape(P, Q)
    lse2 = lse.reshape(P, Q) if want_lse else np.empty((1, 1), ctype)
    g3 = values[-1] if want_grad else np.empty((1, 1, 1), cs[-1].storage)
    w = np.ones(1, ctype) if weight is None else np.ascontiguousarray(weight, ctype)
    cap = ctype.type(softcap if softcap is not None else 1.0)
    args = (ctype.type(eps), ctype.type(z_loss), cap, ctype.type(1.0 / cap), ctype.type(scale))
    # whose rows have unit stride: logits, targets (class indices have none: logits stand in), gradient, mask
    units = unit_rows([values[0], values[0] if index else values[1], g3, mk])
    k = _kernel(_index_rows if index else _prob_rows, ctype, z.size, cs, softcap is not None, weight is not None,
                mask is not None, units)
    outs = (loss2, g3, lse2, want_grad, want_lse)
    if index:
        t2 = np.ascontiguousarray(target, dtype=np.int64).reshape(P, Q)
        k(values[0], mk, t2, w, np.int64(ignore), *args, *outs)
    else:
        k(values[0], mk, values[1], w, *args, *outs)
    if staged and want_grad:
        gm[0][...] = values[-1].view(z.dtype).reshape(gm[0].shape)
    return loss, grad, lse


def nll_loss(lp, target, axis, ignore, weight, scale, want_grad):
    """(per-row -w[t] lp[t] in the compute dtype, gradient or None): a gather, and
    the gradient's one entry per row, -w[t] scale, scattered into zeros."""
    ctype = COMPUTE[lp.dtype]
    lpm = np.moveaxis(lp, axis, -1)
    t = np.asarray(target, np.int64)
    valid = t != ignore
    tc = np.where(valid, t, 0)
    w = np.ones(lpm.shape[-1], ctype) if weight is None else np.asarray(weight, ctype)
    wt = np.where(valid, w[tc] if w.size else 0, 0).astype(ctype)
    picked = np.take_along_axis(lpm, tc[..., None], axis=-1)[..., 0].astype(ctype) if lpm.size else np.zeros(t.shape, ctype)
    with np.errstate(invalid="ignore"):
        rows = np.where(valid, -wt * picked, 0).astype(ctype)
    grad = None
    if want_grad:
        grad = np.zeros(lp.shape, lp.dtype)
        if lp.size:
            with np.errstate(over="ignore"):  # a float16 weight * scale beyond 65504 is inf
                np.put_along_axis(np.moveaxis(grad, axis, -1), tc[..., None], (-wt * ctype.type(scale))[..., None].astype(lp.dtype), axis=-1)
    return rows, grad

