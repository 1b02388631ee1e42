"""Softmax cross-entropy with the gradient computed in the same pass."""

import math

import numpy as np

from . import _dispatch, _validate
from ._dtypes import check_float

REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(
    logits,
    target,
    axis=-1,
    *,
    reduction="mean",
    ignore_index=-100,
    label_smoothing=0.0,
    return_grad=False,
    backend=None,
    stream=None,
):
    """Cross-entropy between softmax(logits) and ``target`` along the class ``axis``.

    ``target`` holds integer class indices (logits' shape without ``axis``) or
    float probabilities (logits' shape). ``reduction`` is "mean" (over
    non-ignored targets; over rows for probabilities), "sum" or "none".
    With ``return_grad=True`` returns (loss, d loss / d logits): the gradient
    (softmax(z) * sum(t) - t) scaled by the reduction, from the same kernel;
    for "none" it is the gradient of the sum of the per-row losses.
    """
    fname = "gpu_act.cross_entropy"
    be, ctx = _dispatch.resolve(fname, (logits, target), backend, stream)
    (z,) = _validate.inputs(fname, be, ctx, [("logits", logits)])
    t = _validate.array(fname, be, ctx, "target", target)
    ignore = _validate.integer(fname, "ignore_index", ignore_index, -(2**63), 2**63)
    if z.ndim == 0:
        raise ValueError(f"{fname}: logits must have at least 1 dimension (the class axis); got a 0-d array")
    ax = _validate.axis(fname, axis, z.ndim)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fname}: reduction={reduction!r} is not accepted; expected one of {', '.join(REDUCTIONS)}")
    eps = _validate.real(fname, "label_smoothing", label_smoothing)
    if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
        raise ValueError(f"{fname}: label_smoothing={label_smoothing!r} is not accepted; expected 0 <= label_smoothing <= 1")
    kind = np.dtype(t.dtype).kind
    rows_shape = tuple(z.shape[:ax]) + tuple(z.shape[ax + 1 :])
    if kind in "iu":
        index = True
        _validate.same_shape(fname, "target (class indices)", t, rows_shape)
        count = be.check_targets(ctx, fname, t, z.shape[ax], ignore)
    elif kind == "f":
        index = False
        check_float(fname, "target (probabilities)", t.dtype)
        _validate.same_shape(fname, "target (probabilities)", t, z.shape)
        count = math.prod(rows_shape)
    else:
        raise TypeError(
            f"{fname}: target has dtype {t.dtype}; expected integer class indices or float16/float32/float64 probabilities"
        )
    loss, grad = be.cross_entropy(ctx, z, t, ax, index, ignore, eps, reduction, count, return_grad)
    loss = be.wrap(ctx, loss, logits)
    return (loss, be.wrap(ctx, grad, logits)) if return_grad else loss
