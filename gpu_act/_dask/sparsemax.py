"""Sparsemax and its backward pass on Dask arrays.

An axis held in one chunk: one gpu_act call per block. An axis split into
several chunks is never gathered. In units of d = x - M (M the row max over
the blocks; +inf entries at 0 and the rest at -inf when M = +inf, as the
kernels do), the threshold tau solves f(tau) = sum_j max(d_j - tau, 0) = 1,
with f(-1) >= 1 > f(0) = 0. A fixed number of rounds (ROUNDS) narrows a
bracket [lo, lo + w) by CANDIDATES each: every block bins its elements above
lo into the CANDIDATES intervals between the thresholds t_k = lo + k w /
CANDIDATES (one more bin for those above the bracket) and returns per row and
bin their count and their sum of d - lo; added over the blocks, suffix sums
give #{d > t_k} and f(t_k) at every candidate at once, and lo moves to the
largest t_k with f(t_k) >= 1 (w shrinks by CANDIDATES). After the rounds the
bracket is 2^-24 wide for float32 work, 2^-48 for float64. Then the exact
fix of the kernels (gpu_act.backends.cpu.sparsemax): from the support above
lo, tau = lo + (f(lo) - 1) / #{d > lo} (never above the true threshold, so
{d > tau} holds the whole support); the support is re-checked at tau, and
where it changed the step is taken once more from it (the kernels repeat it
until it stays; what the bracket leaves is then below the dtype's
resolution). Every block is then projected by gpu_act itself, relu(d - tau)
in the compute dtype.
A NaN in a row, or a row of only -inf, makes it NaN, as in memory.

Backward: dx = g - s / c on the support {y > 0}, 0 off it, with s the sum of
g over the support and c its size, added up over the blocks in float64 (a
NaN in g or y makes c NaN, and the row NaN), as the kernels do.
"""

import functools
import math

import dask.array as da
import numpy as np

from .. import _validate
from .._dtypes import COMPUTE
from ._blocks import as_dask, compute_meta, kept, one_per_block, run, task

CANDIDATES = 64  # thresholds per round: each round narrows the bracket 64-fold
ROUNDS = {4: 4, 8: 8}  # rounds by the compute dtype's size: a bracket of 2^-24 or 2^-48


def _indices(ndim):
    """Block indices of an array (0..ndim-1) and of its per-block statistics (two more axes)."""
    ind = tuple(range(ndim))
    return ind, ind + (ndim, ndim + 1)


def _per_block(chunks, ax):
    """``adjust_chunks`` making a block's statistics one entry long along ``ax``."""
    return {ax: (1,) * len(chunks[ax])}


# ---------------------------------------------------------------- forward
def sparsemax(name, a):
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    kw = {"axis": a["axis"], "backend": a["backend"]}
    meta = run(name, x._meta, **kw)  # checks dtype and axis now
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    if x.ndim == 0 or len(x.chunks[ax]) == 1:
        return x.map_blocks(task(name, **kw), dtype=meta.dtype, meta=meta)
    ctype = COMPUTE[np.dtype(x.dtype)]
    cmeta = compute_meta(x)
    fmeta = cmeta.astype(np.float64)
    ind, stats_ind = _indices(x.ndim)
    m = x.map_blocks(functools.partial(_block_max, ax), chunks=one_per_block(x.chunks, ax), dtype=ctype, meta=cmeta)
    big_m = da.reduction(m, np.max, np.max, axis=ax, keepdims=True, dtype=ctype, meta=cmeta)

    def statistics(fn, threshold, size):
        """``fn(xb, mb, tb)`` of every block, shape (..., 1, ..., 2, size), added up over the blocks."""
        part = da.blockwise(fn, stats_ind, x, ind, big_m, ind, threshold, ind, new_axes={x.ndim: 2, x.ndim + 1: size},
                            adjust_chunks=_per_block(x.chunks, ax), dtype=np.float64, meta=fmeta)
        return part.sum(axis=ax, keepdims=True)

    def per_row(fn, *arrays):
        """``fn`` of per-row arrays (index ``ind``) and row statistics (``stats_ind``)."""
        args = [v for arr in arrays for v in (arr, stats_ind if arr.ndim > x.ndim else ind)]
        return da.blockwise(fn, ind, *args, concatenate=True, dtype=np.float64, meta=fmeta)

    lo = big_m.map_blocks(_start, dtype=np.float64, meta=fmeta)
    w = 1.0
    for _ in range(ROUNDS[ctype.itemsize]):
        counts = statistics(functools.partial(_interval_sums, ax, w), lo, CANDIDATES + 1)
        lo = per_row(functools.partial(_narrowed, w), lo, counts)
        w /= CANDIDATES
    at_lo = statistics(functools.partial(_interval_sums, ax, 0.0), lo, 1)
    tau = per_row(functools.partial(_newton, ctype), lo, at_lo)
    at_tau = statistics(functools.partial(_interval_sums, ax, 0.0), tau, 1)
    tau = per_row(functools.partial(_settled, ctype), tau, at_lo, at_tau)
    block = functools.partial(_projected, ax, kw["backend"])
    return da.map_blocks(block, x, big_m, tau, dtype=meta.dtype, meta=meta)


def _block_max(ax, xb):
    """The block's row max in the compute dtype (NaN where a row holds one; -inf for no elements)."""
    ctype = COMPUTE[xb.dtype]
    if xb.shape[ax] == 0:
        return np.full_like(xb, -np.inf, shape=kept(xb.shape, ax), dtype=ctype)
    with np.errstate(invalid="ignore"):  # (a NaN warns in bfloat16)
        return xb.max(axis=ax, keepdims=True).astype(ctype)


def _start(mb):
    return np.full_like(mb, -1.0, dtype=np.float64)


def _relative(xb, mb):
    """d = x - M in the compute dtype; where M = +inf, 0 at the +inf entries and -inf elsewhere."""
    ctype = COMPUTE[xb.dtype]
    x = xb.astype(ctype, copy=False)
    with np.errstate(invalid="ignore"):
        return np.where(x == np.inf, ctype.type(0), x - mb)


def _interval_sums(ax, w, xb, mb, lob):
    """Per row of the block (its axis ``ax`` kept, of length 1), over the elements
    with d > lo: their count and sum of d - lo in each interval (t_k, t_k+1] of
    the CANDIDATES thresholds t_k = lo + k w / CANDIDATES, the last interval
    holding those above lo + w; one interval (all above lo) for w = 0.
    Shape: (..., 1, ..., 2, intervals), [..., 0, :] counts, [..., 1, :] sums."""
    size = CANDIDATES + 1 if w else 1
    with np.errstate(invalid="ignore"):
        t = _relative(xb, mb).astype(np.float64) - lob
    t = np.moveaxis(t, ax, -1)
    rows_shape = t.shape[:-1]
    t = t.reshape(math.prod(rows_shape), t.shape[-1])
    above = t > 0  # NaN is not: a NaN row is made NaN by M (_projected)
    k = np.ceil(t * (CANDIDATES / w)) - 1 if w else np.zeros_like(t)
    k = np.where(above, np.clip(k, 0, size - 1), 0).astype(np.int64)
    cell = (k + size * np.arange(t.shape[0], like=t)[:, None])[above]
    minlength = t.shape[0] * size
    counts = np.bincount(cell, minlength=minlength).astype(np.float64)
    sums = np.bincount(cell, weights=t[above], minlength=minlength)
    out = np.stack([counts, sums]).reshape((2, *rows_shape, size))
    return np.expand_dims(np.moveaxis(out, 0, -2), ax)


def _narrowed(w, lob, counts):
    """lo moved to the largest candidate t_k with f(t_k) >= 1 (f decreasing; lo itself when none)."""
    c = np.flip(np.cumsum(np.flip(counts[..., 0, :], -1), -1), -1)  # #{d > t_k}
    s = np.flip(np.cumsum(np.flip(counts[..., 1, :], -1), -1), -1)  # sum of d - lo over d > t_k
    step = w / CANDIDATES
    k = np.arange(CANDIDATES, like=c)
    f = s[..., :CANDIDATES] - (k * step) * c[..., :CANDIDATES]
    best = np.maximum(np.sum(f >= 1.0, axis=-1) - 1, 0)
    return lob + best * step


def _newton(ctype, tb, at):
    """tau from the support above t: t + (f(t) - 1) / #{d > t}, rounded to the compute dtype."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tb + (at[..., 1, 0] - 1.0) / at[..., 0, 0]).astype(ctype).astype(np.float64)


def _settled(ctype, tau, at_lo, at_tau):
    """tau where the re-checked support is the one it came from (then exact), else
    the step from the re-checked support (which holds the whole support)."""
    return np.where(at_tau[..., 0, 0] == at_lo[..., 0, 0], tau, _newton(ctype, tau, at_tau))


def _projected(ax, backend, xb, mb, taub):
    """The block's sparsemax: relu(d - tau) by gpu_act, in the compute dtype; NaN
    for a row with a NaN (M is NaN) or of only -inf."""
    ctype = COMPUTE[xb.dtype]
    with np.errstate(invalid="ignore"):
        tau = np.where(np.isnan(mb) | (mb == -np.inf), np.nan, taub).astype(ctype)
        z = _relative(xb, mb) - tau
    return run("relu", z, backend=backend).astype(xb.dtype, copy=False)


# ---------------------------------------------------------------- backward
def sparsemax_backward(name, a):
    fname = f"gpu_act.{name}"
    y = as_dask(fname, "output", a["output"])
    g = as_dask(fname, "grad_output", a["grad_output"], y.shape, y.chunks)
    kw = {"axis": a["axis"], "backend": a["backend"]}
    meta = run(name, g._meta, y._meta, **kw)
    ax = _validate.axis(fname, kw["axis"], y.ndim)
    if y.ndim == 0 or len(y.chunks[ax]) == 1:
        return da.map_blocks(task(name, **kw), g, y, dtype=meta.dtype, meta=meta)
    ind, stats_ind = _indices(y.ndim)
    fmeta = compute_meta(y).astype(np.float64)
    part = da.blockwise(functools.partial(_support_sums, ax), stats_ind, g, ind, y, ind,
                        new_axes={y.ndim: 2, y.ndim + 1: 1}, adjust_chunks=_per_block(y.chunks, ax),
                        dtype=np.float64, meta=fmeta)
    total = part.sum(axis=ax, keepdims=True)
    return da.blockwise(_backward_block, ind, g, ind, y, ind, total, stats_ind, concatenate=True, dtype=meta.dtype,
                        meta=meta)


def _support_sums(ax, g, y):
    """Per row of the block: [size of the support {y > 0}, sum of g over it], in
    float64; the size NaN where g or y holds a NaN. Shape (..., 1, ..., 2, 1)."""
    gd, yd = g.astype(np.float64), y.astype(np.float64)
    on = yd > 0
    nan = np.isnan(gd) | np.isnan(yd)
    with np.errstate(invalid="ignore"):
        c = np.where(nan, np.nan, on).sum(axis=ax, keepdims=True)
        s = np.where(on, gd, 0.0).sum(axis=ax, keepdims=True)
    return np.stack([c, s], axis=-1)[..., None]


def _backward_block(g, y, total):
    ctype = COMPUTE[y.dtype]
    gc, yc = g.astype(ctype, copy=False), y.astype(ctype, copy=False)
    c, s = total[..., 0, 0], total[..., 1, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        zero = (c * 0.0).astype(ctype)  # NaN for a row with a NaN
        mean = np.where(c != 0, s / c, zero).astype(ctype)
        dx = np.where(yc > 0, gc - mean, zero)
    return dx.astype(y.dtype, copy=False)
