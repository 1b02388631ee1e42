"""Softmax cross-entropy on Dask arrays, the class axis never gathered.

With the row statistics of ``rowwise.row_statistics`` (T = 1), the row's
log-sum-exp is L = M + log S, and with smoothed targets q = (1-eps) t + eps/C
(t one-hot for class indices; q = 0 in an ignored row):
    loss_row = sum over blocks of sum_c q_c ((M - z_c) + log S)   (terms with q_c = 0 skipped)
    grad     = (softmax(z) sum_c q_c - q) * scale,
softmax(z) from gpu_act block by block (``rowwise.normalised_block``), sum_c q_c
= 1 for a class index, and scale = 1/count for "mean" (count = targets not
ignored, or rows), else 1. These are the kernels' formulas
(gpu_act.backends.cpu.cross_entropy) with the row sums split over blocks.
Per-row losses are summed in float64; a reduced loss is a lazy 0-d array.
"""

import functools
import math
from typing import NamedTuple

import dask.array as da
import numpy as np

from .. import _dispatch, _validate
from .._dtypes import COMPUTE
from ._blocks import as_dask, compute_meta, one_per_block, run
from .rowwise import normalised_block, row_statistics


class _Spec(NamedTuple):
    fname: str
    axis: int
    classes: int
    index: bool
    ignore: int
    eps: float
    backend: object
    ctype: np.dtype


def cross_entropy(name, a):
    fname = f"gpu_act.{name}"
    z = as_dask(fname, "logits", a["logits"])
    target = as_dask(fname, "target", a["target"])
    kw = {k: a[k] for k in ("axis", "reduction", "ignore_index", "label_smoothing", "backend")}
    run(name, z._meta, target._meta, **kw)  # checks dtypes, axis, reduction, label_smoothing, target kind now
    ax = _validate.axis(fname, kw["axis"], z.ndim)
    index = np.dtype(target.dtype).kind in "iu"
    if index:
        rows = z.shape[:ax] + z.shape[ax + 1 :]
        target = as_dask(fname, "target (class indices)", target, rows, z.chunks[:ax] + z.chunks[ax + 1 :])
        # a class axis of length 1 in one block: the same targets go to every class block of a row
        target = target[(slice(None),) * ax + (None,)]
    else:
        target = as_dask(fname, "target (probabilities)", target, z.shape, z.chunks)
    ctype = COMPUTE[np.dtype(z.dtype)]
    spec = _Spec(fname, ax, z.shape[ax], index, int(kw["ignore_index"]), float(kw["label_smoothing"]), kw["backend"], ctype)
    big_m, log_s, share = row_statistics(z, ax, 1.0, spec.backend)
    cmeta = compute_meta(z)
    per_block = one_per_block(z.chunks, ax)
    f64 = np.empty_like(cmeta, dtype=np.float64)
    parts = da.map_blocks(
        functools.partial(_loss_part, spec), z, target, big_m, log_s, chunks=per_block, dtype=np.float64, meta=f64
    )
    row_loss = parts.sum(axis=ax)
    reduction = kw["reduction"]
    scale = 1.0
    if reduction == "none":
        loss = row_loss.astype(z.dtype)
    elif reduction == "sum":
        loss = row_loss.sum().astype(z.dtype)
    else:
        count = _count(spec, target) if index else math.prod(row_loss.shape)
        zero_d = np.empty_like(f64, shape=())
        loss = da.map_blocks(_mean, row_loss.sum(), count, z.dtype, dtype=z.dtype, meta=zero_d.astype(z.dtype))
        scale = da.map_blocks(_inverse, count, dtype=np.float64, meta=zero_d) if index else _inverse(count)
    if not a["return_grad"]:
        return loss
    q_sum = None
    if not index:
        q_sum = target.map_blocks(
            functools.partial(_q_sum, spec), chunks=per_block, dtype=ctype, meta=cmeta
        ).sum(axis=ax, keepdims=True)
    grad = da.map_blocks(
        functools.partial(_grad_block, spec), z, target, share, q_sum, scale,
        dtype=z.dtype, meta=np.empty_like(cmeta, dtype=z.dtype),
    )
    return loss, grad


def _q(spec, tb, classes):
    """The block's smoothed targets q (compute dtype) and, for class indices, the rows
    that count; ``classes`` = (first, stop) of the block's classes."""
    base = spec.eps / spec.classes if spec.classes else 0.0
    if not spec.index:
        return ((1.0 - spec.eps) * tb.astype(spec.ctype, copy=False) + base).astype(spec.ctype, copy=False), None
    _check_block(spec, tb)
    shape = [1] * tb.ndim
    shape[spec.axis] = classes[1] - classes[0]
    onehot = (tb == np.arange(*classes, like=tb).reshape(shape)).astype(spec.ctype)
    valid = tb != spec.ignore
    return np.where(valid, (1.0 - spec.eps) * onehot + base, 0).astype(spec.ctype, copy=False), valid


def _check_block(spec, tb):
    """The block's count of targets not ignored; ValueError for one out of range."""
    be, ctx = _dispatch.resolve(spec.fname, (tb,), spec.backend)
    return be.check_targets(ctx, spec.fname, be.asarray(ctx, tb), spec.classes, spec.ignore)


def _classes(spec, block_info):
    return block_info[0]["array-location"][spec.axis]


def _loss_part(spec, zb, tb, big_m, log_s, block_info=None):
    q, valid = _q(spec, tb, _classes(spec, block_info))
    with np.errstate(invalid="ignore"):
        terms = np.where(q == 0, 0, q * ((big_m - zb.astype(spec.ctype, copy=False)) + log_s))
    part = terms.sum(axis=spec.axis, keepdims=True, dtype=np.float64)
    # a row without a softmax (NaN, +inf, or all -inf) has a NaN loss, even where no
    # target weights it, as in the kernels; an ignored row keeps its 0
    live = np.ones_like(part, dtype=bool) if valid is None else valid
    return np.where(np.isfinite(big_m) | ~live, part, np.nan)


def _q_sum(spec, tb, block_info=None):
    q, _ = _q(spec, tb, _classes(spec, block_info))
    return q.sum(axis=spec.axis, keepdims=True)


def _grad_block(spec, zb, tb, share, q_sum, scale, block_info=None):
    q, valid = _q(spec, tb, _classes(spec, block_info))
    scale = float(scale)
    soft = normalised_block("softmax", spec.axis, 1.0, spec.backend, zb, share)
    with np.errstate(invalid="ignore"):
        grad = np.where(valid, (soft - q) * scale, 0) if spec.index else (soft * q_sum - q) * scale
    return grad.astype(zb.dtype, copy=False)


def _count(spec, target):
    """Lazy count of targets not ignored (each block range-checked as in memory)."""
    ones = tuple((1,) * len(c) for c in target.chunks)
    meta = np.empty((0,) * target.ndim, np.int64)
    return target.map_blocks(functools.partial(_block_count, spec), chunks=ones, dtype=np.int64, meta=meta).sum()


def _block_count(spec, tb):
    n = _check_block(spec, tb)
    return np.full((1,) * tb.ndim, n, np.int64)


def _mean(total, count, dtype):
    count = int(count)
    return (total / count).astype(dtype) if count else np.full_like(total, np.nan, dtype=dtype)


def _inverse(count):
    count = int(count)
    return np.asarray(1.0 / count if count else 0.0)
