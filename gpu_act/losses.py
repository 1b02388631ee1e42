"""The losses: softmax cross-entropy, negative log-likelihood and binary
cross-entropy, each with its gradient computed in the same pass.

Backends return unreduced losses (per row, per element) in the compute dtype
and the gradient already scaled by the reduction; the reduction happens here,
once for every backend (``_reduce``): "none" casts to the input's dtype, "sum"
and "mean" sum in float64 (``Backend.total``), "mean" divides by its
denominator: the number of counted targets (weighted: the sum of their
classes' weights) for class indices, the number of rows for probability
targets, the number of elements for the binary losses (PyTorch's rules).
"""

import math

import numpy as np

from . import _dispatch, _validate
from ._dtypes import ACCEPTED_NAMES, COMPUTE, accepted, check_float

REDUCTIONS = ("mean", "sum", "none")


def _reduction(fname, reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{fname}: reduction={reduction!r} is not accepted; expected one of {', '.join(REDUCTIONS)}")
    return reduction


def _scales(reduction, denominator):
    """(loss scale, gradient scale) of a reduction: 1/denominator for "mean" (the
    loss NaN and the gradient 0 when nothing counts), else 1."""
    if reduction != "mean":
        return 1.0, 1.0
    return (1.0 / denominator, 1.0 / denominator) if denominator else (math.nan, 0.0)


def _reduce(be, ctx, unreduced, reduction, loss_scale, dtype):
    if reduction == "none":
        return be.astype(ctx, unreduced, dtype)
    return be.total(ctx, unreduced, loss_scale, dtype)


def _parameter(fname, what, value, ctype, low, low_open=False):
    """A real parameter, finite in the compute dtype and >= low (> low with low_open)."""
    v = _validate.real(fname, what, value)
    top = float(np.finfo(ctype).max)
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and abs(v) <= top
    if not ok:
        rel = ">" if low_open else ">="
        raise ValueError(f"{fname}: {what}={value!r} is not accepted; expected a finite number {rel} {low} (at most {top:.4g} in {ctype})")
    return v


def _class_weight(fname, be, ctx, weight, classes, ctype):
    """``weight`` as C class weights in the compute dtype, or None."""
    if weight is None:
        return None
    (w,) = _validate.inputs(fname, be, ctx, [("weight", weight)])
    if w.ndim != 1 or w.shape[0] != classes:
        raise ValueError(f"{fname}: weight has shape {tuple(w.shape)}; expected ({classes},), one weight per class")
    return be.astype(ctx, w, ctype)


def _class_call(fname, what, x, target, weight, axis, reduction, ignore_index, backend, stream, mask=None):
    """(backend, call context, input, target, ignore_index, class axis, reduction)
    of a loss over a class axis, each checked."""
    be, ctx = _dispatch.resolve(fname, (x, target, weight, mask), backend, stream)
    (a,) = _validate.inputs(fname, be, ctx, [(what, x)])
    t = _validate.array(fname, be, ctx, "target", target)
    ignore = _validate.integer(fname, "ignore_index", ignore_index, -(2**63), 2**63)
    if a.ndim == 0:
        raise ValueError(f"{fname}: {what} must have at least 1 dimension (the class axis); got a 0-d array")
    return be, ctx, a, t, ignore, _validate.axis(fname, axis, a.ndim), _reduction(fname, reduction)


def _index_targets(fname, be, ctx, t, z, ax, ignore, w, live=None):
    """(count, denominator) of class-index targets, checked against z's classes
    (rows where ``live`` is False, with no unmasked class, ignored)."""
    _validate.same_shape(fname, "target (class indices)", t, tuple(z.shape[:ax]) + tuple(z.shape[ax + 1 :]))
    return be.check_targets(ctx, fname, t, z.shape[ax], ignore, w, live)


def cross_entropy(
    logits,
    target,
    axis=-1,
    *,
    weight=None,
    reduction="mean",
    ignore_index=-100,
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
    mask=None,
    return_grad=False,
    return_lse=False,
    backend=None,
    stream=None,
):
    """Cross-entropy between softmax(logits) and ``target`` along the class ``axis``.

    ``target`` holds integer class indices (logits' shape without ``axis``) or
    float probabilities (logits' shape). ``weight``: one weight per class
    (PyTorch's semantics). ``reduction`` is "mean" (over the weights of the
    counted class indices; over rows for probabilities), "sum" or "none".
    ``z_loss`` adds z_loss * lse^2 per counted row; ``softcap`` c passes the
    logits through c tanh(z / c) first. Returns the loss; with
    ``return_grad=True`` also d loss / d logits ((softmax(v) (sum q + 2 z_loss
    lse) - q) times the cap's derivative and the reduction's scale, from the
    same kernel; for "none" the gradient of the sum of the row losses); with
    ``return_lse=True`` also the per-row log-sum-exp (of the capped logits), in
    the compute dtype: (loss[, grad][, lse]). ``mask`` (bool, broadcast to the
    logits): a row's classes are its True entries; label smoothing spreads
    over them, the others get gradient 0 and target mass on them costs +inf;
    a row with none is ignored as ``ignore_index`` (loss and gradient 0, not
    counted by "mean", lse -inf).
    """
    fname = "gpu_act.cross_entropy"
    be, ctx, z, t, ignore, ax, reduction = _class_call(
        fname, "logits", logits, target, weight, axis, reduction, ignore_index, backend, stream, mask
    )
    eps = _validate.real(fname, "label_smoothing", label_smoothing)
    if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
        raise ValueError(f"{fname}: label_smoothing={label_smoothing!r} is not accepted; expected 0 <= label_smoothing <= 1")
    ctype = COMPUTE[np.dtype(z.dtype)]
    zl = _parameter(fname, "z_loss", z_loss, ctype, 0.0)
    cap = None
    if softcap is not None:
        cap = _parameter(fname, "softcap", softcap, ctype, 0.0, low_open=True)
        low, high = float(np.finfo(ctype).tiny), 1.0 / float(np.finfo(ctype).tiny)
        if not low <= cap <= high:
            raise ValueError(
                f"{fname}: softcap={softcap!r} is not accepted for {z.dtype} logits (computed in {ctype}, "
                f"where softcap and 1/softcap must be normal numbers); expected {low:.4g} <= softcap <= {high:.4g}"
            )
    w = _class_weight(fname, be, ctx, weight, z.shape[ax], ctype)
    kind = np.dtype(t.dtype).kind
    if not (kind in "iu" or accepted(t.dtype)):
        raise TypeError(
            f"{fname}: target has dtype {t.dtype}; expected integer class indices or probabilities of {ACCEPTED_NAMES}"
        )
    index = kind in "iu"
    if not index:
        check_float(fname, "target (probabilities)", t.dtype)
        _validate.same_shape(fname, "target (probabilities)", t, z.shape)
    m = _validate.mask(fname, be, ctx, mask, z.shape)
    live, counted = be.live_rows(ctx, m, z.shape, ax) if m is not None and z.size else (None, None)
    if index:
        _, denominator = _index_targets(fname, be, ctx, t, z, ax, ignore, w, live)
    else:
        denominator = math.prod(z.shape[:ax] + z.shape[ax + 1 :]) if counted is None else counted
    loss_scale, grad_scale = _scales(reduction, denominator)
    rows, grad, lse = be.cross_entropy(ctx, z, t, ax, index, ignore, eps, w, zl, cap, grad_scale, return_grad, return_lse,
                                       m)
    out = [be.wrap(ctx, _reduce(be, ctx, rows, reduction, loss_scale, z.dtype), logits)]
    if return_grad:
        out.append(be.wrap(ctx, grad, logits))
    if return_lse:
        out.append(be.wrap(ctx, lse, logits))
    return out[0] if len(out) == 1 else tuple(out)


def nll_loss(log_probs, target, axis=-1, *, weight=None, reduction="mean", ignore_index=-100, return_grad=False,
             backend=None, stream=None):
    """Negative log-likelihood of class indices: -weight[t] log_probs[t] per row,
    reduced as PyTorch's ``nll_loss`` ("mean" divides by the summed weights of the
    counted targets). ``log_softmax`` then ``nll_loss`` is ``cross_entropy``.
    With ``return_grad=True`` returns (loss, d loss / d log_probs)."""
    fname = "gpu_act.nll_loss"
    be, ctx, lp, t, ignore, ax, reduction = _class_call(
        fname, "log_probs", log_probs, target, weight, axis, reduction, ignore_index, backend, stream
    )
    if np.dtype(t.dtype).kind not in "iu":
        raise TypeError(f"{fname}: target has dtype {t.dtype}; expected integer class indices")
    ctype = COMPUTE[np.dtype(lp.dtype)]
    w = _class_weight(fname, be, ctx, weight, lp.shape[ax], ctype)
    _, denominator = _index_targets(fname, be, ctx, t, lp, ax, ignore, w)
    loss_scale, grad_scale = _scales(reduction, denominator)
    rows, grad = be.nll_loss(ctx, lp, t, ax, ignore, w, grad_scale, return_grad)
    loss = be.wrap(ctx, _reduce(be, ctx, rows, reduction, loss_scale, lp.dtype), log_probs)
    return (loss, be.wrap(ctx, grad, log_probs)) if return_grad else loss


def _broadcast_operand(fname, be, ctx, what, obj, shape):
    """``obj`` as a native array of len(shape) dims, each shape's or 1, or None."""
    if obj is None:
        return None
    (a,) = _validate.inputs(fname, be, ctx, [(what, obj)])
    full = _validate.broadcasts_to(fname, what, a, shape)
    return a if full == tuple(a.shape) else a.reshape(full)


def _binary(fname, logits, x, target, weight, pos_weight, reduction, return_grad, backend, stream):
    what = "logits" if logits else "probs"
    be, ctx = _dispatch.resolve(fname, (x, target, weight, pos_weight), backend, stream)
    z, t = _validate.inputs(fname, be, ctx, [(what, x), ("target", target)])
    _validate.same_shape(fname, "target", t, z.shape)
    reduction = _reduction(fname, reduction)
    w = _broadcast_operand(fname, be, ctx, "weight", weight, z.shape)
    pw = _broadcast_operand(fname, be, ctx, "pos_weight", pos_weight, z.shape)
    if pw is not None and be.any_negative(ctx, pw):
        raise ValueError(f"{fname}: pos_weight has a negative entry; expected pos_weight >= 0")
    size = math.prod(z.shape)
    loss_scale, grad_scale = _scales(reduction, size)
    if size:
        elems, grad = be.binary_cross_entropy(ctx, z, t, w, pw, logits, grad_scale, return_grad)
    else:
        elems, grad = be.empty(ctx, z.shape, COMPUTE[np.dtype(z.dtype)]), be.empty(ctx, z.shape, z.dtype)
    loss = be.wrap(ctx, _reduce(be, ctx, elems, reduction, loss_scale, z.dtype), x)
    return (loss, be.wrap(ctx, grad, x)) if return_grad else loss


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None, reduction="mean",
                                     return_grad=False, backend=None, stream=None):
    """w [(1 - t) z + (1 + (pw - 1) t) softplus(-z)] per element, PyTorch's
    ``binary_cross_entropy_with_logits``: ``weight`` w broadcasts to the logits,
    ``pos_weight`` pw (>= 0) too (typically one per class, the last axis);
    computed without overflow at any z (limits at +-inf). "mean" averages over
    all elements. With ``return_grad=True`` returns (loss, d loss / d logits),
    w ((1 + (pw - 1) t) sigmoid(z) - pw t) times the reduction's scale."""
    return _binary("gpu_act.binary_cross_entropy_with_logits", True, logits, target, weight, pos_weight, reduction,
                   return_grad, backend, stream)


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean", return_grad=False, backend=None,
                         stream=None):
    """-w [t log p + (1 - t) log(1 - p)] per element, each log clamped at -100
    (PyTorch's ``binary_cross_entropy``: p = 0 or 1 gives a finite loss). A
    probability outside [0, 1] gives NaN (its loss and gradient; no error, no
    host synchronisation). With ``return_grad=True`` returns (loss, d loss / dp),
    w (p - t) / max(p (1 - p), 1e-12) times the reduction's scale."""
    return _binary("gpu_act.binary_cross_entropy", False, probs, target, weight, None, reduction, return_grad,
                   backend, stream)
