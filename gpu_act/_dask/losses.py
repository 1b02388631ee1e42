"""The losses on Dask arrays; cross-entropy's class axis is never gathered.

Cross-entropy: with v the logits as the softmax sees them (z, or c tanh(z/c)
under a softcap c, in the compute dtype), the row statistics of
``rowwise.row_statistics`` (T = 1) give the row's log-sum-exp L = M + log S.
With class weights w (1 without) and smoothed targets
q = w ((1-eps) t + eps/C) (t one-hot for class indices; q = 0 in an ignored row):
    loss_row = sum over blocks of sum_c q_c ((M - v_c) + log S)   (terms with q_c = 0 skipped)
               + z_loss L^2
    grad     = (softmax(v) (sum_c q_c + 2 z_loss L) - q) * scale * dv/dz,
softmax(v) from gpu_act block by block (``rowwise.normalised_block``), and
scale = 1/denominator for "mean" (the weights of the targets not ignored, or
the rows), else 1. These are the kernels' formulas
(gpu_act.backends.cpu.cross_entropy) with the row sums split over blocks.
Per-row losses are summed in float64; a reduced loss is a lazy 0-d array.
Class weights are small: a Dask ``weight`` is computed when the graph is built.

With a mask (a Dask array of the logits' chunks, each block a broadcast view),
the row statistics run over the unmasked classes, C' (the row's number of
them, summed over blocks) replaces C in the smoothing, terms of target mass on
masked classes are +inf, masked classes get gradient 0, and rows with C' = 0
are ignored (loss and gradient 0, not counted, lse -inf): the kernels' rules.

nll_loss: each class block gathers the targets that fall in it (the others
become ``ignore_index`` for that block) and the per-row partials add up.
The binary losses are elementwise: one gpu_act call per block.
"""

import functools
import math
from typing import NamedTuple

import dask.array as da
import numpy as np

from .. import _dispatch, _validate
from .._dtypes import COMPUTE
from ._blocks import as_dask, as_mask, compute_meta, given, one_per_block, run
from .rowwise import normalised_block, row_statistics


class _Spec(NamedTuple):
    fname: str
    axis: int
    classes: int
    index: bool
    ignore: int
    eps: float
    weight: object  # None or the C class weights, in memory, compute dtype
    z_loss: float
    softcap: object  # None or the cap
    backend: object
    ctype: np.dtype


def _in_memory(w):
    return w.compute() if isinstance(w, da.Array) else w


def _check(name, z, target, weight, kw, ax):
    """The in-memory function on one row of zeros with the whole class axis (or on
    the empty metas, without class weights): every argument is checked now."""
    if weight is None or z.ndim == 0:
        run(name, z._meta, target._meta, weight=weight, **kw)
        return
    shape = [1] * z.ndim
    shape[ax] = z.shape[ax]
    z1 = np.zeros_like(z._meta, shape=shape)
    if np.dtype(target.dtype).kind in "iu":
        t1 = np.full_like(target._meta, kw["ignore_index"], shape=shape[:ax] + shape[ax + 1 :])
    else:
        t1 = np.zeros_like(target._meta, shape=shape)
    run(name, z1, t1, weight=weight, **kw)


def cross_entropy(name, a):
    fname = f"gpu_act.{name}"
    z = as_dask(fname, "logits", a["logits"])
    target = as_dask(fname, "target", a["target"])
    weight = _in_memory(a["weight"])
    kw = {k: a[k] for k in ("axis", "reduction", "ignore_index", "label_smoothing", "z_loss", "softcap", "backend")}
    ax = _validate.axis(fname, kw["axis"], z.ndim)
    _check(name, z, target, weight, kw, ax)
    ctype = COMPUTE[np.dtype(z.dtype)]
    if weight is not None:
        weight = weight.astype(ctype)
    index = np.dtype(target.dtype).kind in "iu"
    if index:
        rows = z.shape[:ax] + z.shape[ax + 1 :]
        target = as_dask(fname, "target (class indices)", target, rows, z.chunks[:ax] + z.chunks[ax + 1 :])
        # a class axis of length 1 in one block: the same targets go to every class block of a row
        target = target[(slice(None),) * ax + (None,)]
    else:
        target = as_dask(fname, "target (probabilities)", target, z.shape, z.chunks)
    cap = None if kw["softcap"] is None else float(kw["softcap"])
    spec = _Spec(fname, ax, z.shape[ax], index, int(kw["ignore_index"]), float(kw["label_smoothing"]), weight,
                 float(kw["z_loss"]), cap, kw["backend"], ctype)
    cmeta = compute_meta(z)
    v = z if cap is None else z.map_blocks(functools.partial(_capped, spec), dtype=ctype, meta=cmeta)
    per_block = one_per_block(z.chunks, ax)
    f64 = np.empty_like(cmeta, dtype=np.float64)
    mask = as_mask(fname, a["mask"], z)
    count = None  # each row's number of unmasked classes (float64, the class axis kept)
    if mask is not None:
        count = da.map_blocks(functools.partial(_block_count, ax), mask, chunks=per_block, dtype=np.float64,
                              meta=f64).sum(axis=ax, keepdims=True)
    extra = given(mask, count)
    big_m, log_s, share = row_statistics(v, ax, 1.0, spec.backend, mask=mask)
    parts = da.map_blocks(functools.partial(_loss_part, spec), v, target, big_m, log_s, *extra, chunks=per_block,
                          dtype=np.float64, meta=f64)
    row_loss = parts.sum(axis=ax)
    live = None if count is None else count > 0
    if index:
        denominator = lambda: _denominator(spec, target, live)  # noqa: E731
    else:
        denominator = lambda: math.prod(row_loss.shape) if live is None else live.sum()  # noqa: E731
    loss, scale = _reduced(row_loss, kw["reduction"], z.dtype, denominator)
    out = [loss]
    lse = da.map_blocks(_lse, big_m, log_s, *given(count), dtype=ctype, meta=cmeta)
    if a["return_grad"]:
        q_sum = None
        if not index or mask is not None:
            q_sum = da.map_blocks(functools.partial(_q_sum, spec), target, *extra, chunks=per_block, dtype=ctype,
                                  meta=cmeta).sum(axis=ax, keepdims=True)
        out.append(da.map_blocks(
            functools.partial(_grad_block, spec, z.dtype), v, target, share, q_sum, lse, scale, *extra,
            dtype=z.dtype, meta=np.empty_like(cmeta, dtype=z.dtype),
        ))
    if a["return_lse"]:
        out.append(lse.squeeze(axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


def _capped(spec, zb):
    # v = c tanh(z / c), in the compute dtype
    c = spec.ctype.type(spec.softcap)
    return c * np.tanh(zb.astype(spec.ctype, copy=False) / c)


def _block_count(ax, mb):
    return mb.sum(axis=ax, keepdims=True, dtype=np.float64)


def _lse(big_m, log_s, count=None):
    # M + log S; NaN for a row without a softmax (NaN, +inf or only -inf), as the
    # kernels; -inf for a row with no unmasked class
    with np.errstate(invalid="ignore"):
        lse = np.where(np.isfinite(big_m), big_m + log_s, np.nan)
        if count is not None:
            lse = np.where(count > 0, lse, -np.inf)
        return lse.astype(big_m.dtype, copy=False)


def _block_weight(spec, classes, like):
    """The block's class weights shaped to broadcast along the class axis, or 1."""
    if spec.weight is None:
        return 1.0
    shape = [1] * like.ndim
    shape[spec.axis] = classes[1] - classes[0]
    return spec.weight[classes[0] : classes[1]].reshape(shape)


def _q(spec, tb, classes, mb=None, count=None):
    """The block's q = w t' (compute dtype) and, for class indices, the rows that
    count; ``classes`` = (first, stop) of the block's classes. With a mask block
    ``mb`` and the rows' numbers of unmasked classes ``count``, the smoothing is
    eps / C' on unmasked classes only, and rows with C' = 0 do not count."""
    if count is None:
        base = spec.eps / spec.classes if spec.classes else 0.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.where(count > 0, spec.eps / count, 0.0) * mb
    w = _block_weight(spec, classes, tb)
    if not spec.index:
        t = (1.0 - spec.eps) * tb.astype(spec.ctype, copy=False) + base
        return (w * t).astype(spec.ctype, copy=False), None
    live = None if count is None else count > 0
    _check_block(spec, tb, live)
    shape = [1] * tb.ndim
    shape[spec.axis] = classes[1] - classes[0]
    onehot = (tb == np.arange(*classes, like=tb).reshape(shape)).astype(spec.ctype)
    valid = tb != spec.ignore
    if live is not None:
        valid = valid & live
    return np.where(valid, w * ((1.0 - spec.eps) * onehot + base), 0).astype(spec.ctype, copy=False), valid


def _check_block(spec, tb, live=None):
    """The block's (count, weight sum) of targets not ignored (nor in rows where
    ``live`` is False); ValueError for one out of range."""
    be, ctx = _dispatch.resolve(spec.fname, (tb,), spec.backend)
    w = None if spec.weight is None else be.asarray(ctx, spec.weight)
    lv = None if live is None else be.asarray(ctx, live)
    return be.check_targets(ctx, spec.fname, be.asarray(ctx, tb), spec.classes, spec.ignore, w, lv)


def _classes(spec, block_info, arg=0):
    # (first, stop) of the block's classes, from argument ``arg``, which has the class axis
    return block_info[arg]["array-location"][spec.axis]


def _loss_part(spec, vb, tb, big_m, log_s, mb=None, count=None, block_info=None):
    classes = _classes(spec, block_info)
    q, valid = _q(spec, tb, classes, mb, count)
    with np.errstate(invalid="ignore", over="ignore"):
        terms = q * ((big_m - vb.astype(spec.ctype, copy=False)) + log_s)
        if mb is not None:  # target mass on a masked class: its log-probability is -inf
            terms = np.where(mb, terms, q * np.inf)
        terms = np.where(q == 0, 0, terms)
    part = terms.sum(axis=spec.axis, keepdims=True, dtype=np.float64)
    live = np.ones_like(part, dtype=bool) if valid is None else valid
    if count is not None:
        live = live & (count > 0)
    if spec.z_loss and classes[0] == 0:  # z_loss L^2, once per counted row (in its first block)
        lse = (big_m + log_s).astype(np.float64)
        part = part + np.where(live, spec.z_loss * lse * lse, 0)
    # a row without a softmax (NaN, +inf, or all -inf) has a NaN loss, even where no
    # target weights it, as in the kernels; an ignored row keeps its 0
    return np.where(live, np.where(np.isfinite(big_m), part, np.nan), 0)


def _q_sum(spec, tb, mb=None, count=None, block_info=None):
    # index targets have no class axis (length 1): the mask's blocks have it
    q, _ = _q(spec, tb, _classes(spec, block_info, 0 if mb is None else 1), mb, count)
    return q.sum(axis=spec.axis, keepdims=True)


def _index_q_sum(spec, tb):
    # sum_c q_c of a row with class index t: (1 - eps) w_t + eps/C sum_c w_c
    if spec.weight is None:
        return 1.0
    valid = tb != spec.ignore
    wt = spec.weight[np.where(valid, tb, 0)]
    return (1.0 - spec.eps) * wt + spec.eps / spec.classes * spec.weight.sum(dtype=np.float64)


def _grad_block(spec, dtype, vb, tb, share, q_sum, lse, scale, mb=None, count=None, block_info=None):
    q, valid = _q(spec, tb, _classes(spec, block_info), mb, count)
    scale = float(scale)
    soft = normalised_block("softmax", spec.axis, 1.0, spec.backend, vb, share, mb)
    total = _index_q_sum(spec, tb) if q_sum is None else q_sum
    with np.errstate(invalid="ignore"):
        if spec.z_loss:
            total = total + 2.0 * spec.z_loss * lse
        grad = (soft * total - q) * scale
        if spec.softcap is not None:
            u = vb.astype(spec.ctype, copy=False) / spec.ctype.type(spec.softcap)
            grad = grad * (1.0 - u * u)
        if spec.index:
            grad = np.where(valid, grad, 0)
        if mb is not None:  # masked classes, and rows with none unmasked, 0
            grad = np.where(mb & (count > 0), grad, 0)
    return grad.astype(dtype, copy=False)


def _denominator(spec, target, live=None):
    """Lazy sum of the weights of the targets not ignored (their count without
    weights), nor in rows where ``live`` is False, each block range-checked as in memory."""
    ones = tuple((1,) * len(c) for c in target.chunks)
    meta = np.empty((0,) * target.ndim, np.float64)
    return da.map_blocks(functools.partial(_block_denominator, spec), target, *given(live), chunks=ones,
                         dtype=np.float64, meta=meta).sum()


def _block_denominator(spec, tb, live=None):
    _, d = _check_block(spec, tb, live)
    return np.full((1,) * tb.ndim, d, np.float64)


def _mean(total, denominator, dtype):
    denominator = float(denominator)
    with np.errstate(over="ignore"):
        return (total / denominator).astype(dtype) if denominator else np.full_like(total, np.nan, dtype=dtype)


def _inverse(denominator):
    denominator = float(denominator)
    return np.asarray(1.0 / denominator if denominator else 0.0)


# ---------------------------------------------------------------- nll_loss
def nll_loss(name, a):
    fname = f"gpu_act.{name}"
    lp = as_dask(fname, "log_probs", a["log_probs"])
    target = as_dask(fname, "target", a["target"])
    weight = _in_memory(a["weight"])
    kw = {k: a[k] for k in ("axis", "reduction", "ignore_index", "backend")}
    ax = _validate.axis(fname, kw["axis"], lp.ndim)
    _check(name, lp, target, weight, kw, ax)
    ctype = COMPUTE[np.dtype(lp.dtype)]
    if weight is not None:
        weight = weight.astype(ctype)
    rows = lp.shape[:ax] + lp.shape[ax + 1 :]
    target = as_dask(fname, "target (class indices)", target, rows, lp.chunks[:ax] + lp.chunks[ax + 1 :])
    target = target[(slice(None),) * ax + (None,)]
    spec = _Spec(fname, ax, lp.shape[ax], True, int(kw["ignore_index"]), 0.0, weight, 0.0, None, kw["backend"], ctype)
    cmeta = compute_meta(lp)
    f64 = np.empty_like(cmeta, dtype=np.float64)
    parts = da.map_blocks(functools.partial(_nll_block, spec, False), lp, target,
                          chunks=one_per_block(lp.chunks, ax), dtype=np.float64, meta=f64)
    row_loss = parts.sum(axis=ax)
    loss, scale = _reduced(row_loss, kw["reduction"], lp.dtype, lambda: _denominator(spec, target))
    if not a["return_grad"]:
        return loss
    grad = da.map_blocks(functools.partial(_nll_block, spec, True), lp, target, scale, dtype=lp.dtype,
                         meta=np.empty_like(cmeta, dtype=lp.dtype))
    return loss, grad


def _nll_block(spec, want_grad, lpb, tb, scale=1.0, block_info=None):
    """The block's per-row partial losses (float64), or its gradient: the targets in
    the block's classes, shifted to block indices; the others ignored (-1)."""
    c0, c1 = _classes(spec, block_info)
    _check_block(spec, tb)
    inside = (tb != spec.ignore) & (tb >= c0) & (tb < c1)
    local = np.where(inside, tb - c0, -1).squeeze(axis=spec.axis)
    w = None if spec.weight is None else spec.weight[c0:c1]
    kw = {"axis": spec.axis, "weight": w, "reduction": "none", "ignore_index": -1, "backend": spec.backend}
    if not want_grad:
        return np.expand_dims(run("nll_loss", lpb, local, **kw).astype(np.float64), spec.axis)
    _, grad = run("nll_loss", lpb, local, return_grad=True, **kw)
    with np.errstate(over="ignore"):
        return (grad.astype(spec.ctype) * spec.ctype.type(float(scale))).astype(lpb.dtype, copy=False)


def _reduced(unreduced, reduction, dtype, denominator):
    """(loss, gradient scale): "none" as is; "sum" and "mean" summed in float64, the
    mean divided by ``denominator()`` (lazy or a number)."""
    if reduction == "none":
        return unreduced.astype(dtype), 1.0
    total = unreduced.astype(np.float64).sum()
    if reduction == "sum":
        return total.astype(dtype), 1.0
    d = denominator()
    zero_d = np.empty_like(unreduced._meta, shape=(), dtype=np.float64)
    loss = da.map_blocks(_mean, total, d, dtype, dtype=dtype, meta=zero_d.astype(dtype))
    if isinstance(d, da.Array):
        return loss, da.map_blocks(_inverse, d, dtype=np.float64, meta=zero_d)
    return loss, _inverse(d)


# ---------------------------------------------------------------- binary cross-entropy
def _binary_operand(fname, what, obj, x):
    """A weight as a Dask array broadcast to x's shape and chunks (read through
    stride 0 in each block), or None."""
    if obj is None:
        return None
    w = as_dask(fname, what, obj)
    w = w.reshape(_validate.broadcasts_to(fname, what, w, x.shape))
    w = w.rechunk(tuple((1,) if n == 1 else c for n, c in zip(w.shape, x.chunks)))
    return da.broadcast_to(w, x.shape, chunks=x.chunks)


def binary_cross_entropy(name, a):
    fname = f"gpu_act.{name}"
    first = "logits" if "logits" in a else "probs"
    x = as_dask(fname, first, a[first])
    t = as_dask(fname, "target", a["target"], x.shape, x.chunks)
    kw = {"reduction": a["reduction"], "backend": a["backend"]}
    pos = {"pos_weight": None} if "pos_weight" in a else {}
    run(name, x._meta, t._meta, **pos, **kw)  # checks dtypes and the reduction now
    if pos and a["pos_weight"] is not None:  # a negative pos_weight raises now
        pw = _in_memory(a["pos_weight"])
        z1 = np.zeros_like(x._meta, shape=(1,) * (x.ndim - np.ndim(pw)) + tuple(np.shape(pw)))
        run(name, z1, z1, pos_weight=pw, **kw)
    ops = [_binary_operand(fname, k, a.get(k), x) for k in ("weight", "pos_weight")]
    names = [k for k, o in zip(("weight", "pos_weight"), ops) if o is not None]
    present = [o for o in ops if o is not None]
    meta = np.empty_like(x._meta, shape=(0,) * x.ndim, dtype=x.dtype)
    block = functools.partial(_binary_block, name, names, a["backend"])
    elems = da.map_blocks(functools.partial(block, False), x, t, *present, dtype=x.dtype, meta=meta)
    loss, scale = _reduced(elems, a["reduction"], x.dtype, lambda: math.prod(x.shape))
    if not a["return_grad"]:
        return loss
    grad = da.map_blocks(functools.partial(block, True), x, t, *present, dtype=x.dtype, meta=meta)
    if scale != 1.0:
        grad = (grad.astype(COMPUTE[np.dtype(x.dtype)]) * scale).astype(x.dtype)
    return loss, grad


def _binary_block(name, names, backend, want_grad, xb, tb, *weights):
    kw = dict(zip(names, weights))
    res = run(name, xb, tb, reduction="none", return_grad=want_grad, backend=backend, **kw)
    return res[1] if want_grad else res
