"""Softmax family, logsumexp and maxout on Dask arrays.

An axis held in one chunk: one gpu_act call per block. An axis split into
several chunks is never gathered; with x/T in row units and per block b
    m_b = max_b x,   l_b = log s_b = log sum_b e^{(x - m_b)/T}
(l_b = -max of gpu_act's log_softmax of the block, which is -log s_b at the
block's maximum), the online-normalizer rule gives the row's
    M = max_b m_b,   S = sum_b e^{w_b},   w_b = (m_b - M)/T + l_b = log(s_b e^{(m_b - M)/T})
and each block is normalised by f_b = w_b - log S (log of its share of the row):
    log_softmax = log_softmax_b(x) + f_b,   softmax = softmax_b(x) e^{f_b},
block-local results of gpu_act times the share. A block of only -inf (or none)
holds no mass: w_b = -inf, and its outputs are -inf / 0 when the row has a
finite maximum; NaN, +inf or a row of only -inf make the row NaN as in memory.
Backward passes combine per-block sums the same way (sum(g y) or sum(g)).
softmin, softmax of -x/T, takes the same statistics of -x: m_b = -min_b x and
l_b = -log max_b softmin_b(x) (softmin's largest entry is 1/s_b), no negated
copy. logsumexp is M + T log S (its limit M where M is not finite), and its
backward is elementwise given the result: one gpu_act call per block.
With a mask (a Dask array of x's chunks, each block a broadcast view) every
block is computed with its block of the mask; the block maxima and backward
sums read through it (NumPy's ``where=``), and masked entries keep the
block's own 0 (-inf): a row with no unmasked entry is all 0 (-inf), its
logsumexp -inf, as in memory.
Every partial and combination runs in the compute dtype (float32 for half).
"""

import functools

import dask.array as da
import numpy as np

from .. import _validate
from .. import rowwise as _rw
from .._dtypes import COMPUTE, inverse_temperature
from ._blocks import as_dask, as_mask, compute_meta, given, kept, masked_task, one_per_block, run, task


def _axis_kwargs(a):
    return {"axis": a["axis"], "temperature": a["temperature"], "backend": a["backend"]}


def softmax(name, a):
    """softmax, log_softmax and softmin (softmax of -x/T)."""
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    kw = _axis_kwargs(a)
    meta = run(name, x._meta, **kw)  # checks dtype, axis and temperature now
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    mask = as_mask(fname, a.get("mask"), x)
    if x.ndim == 0 or len(x.chunks[ax]) == 1:
        return da.map_blocks(masked_task(name, mask, **kw), x, *given(mask), dtype=meta.dtype, meta=meta)
    t = _validate.temperature(fname, kw["temperature"], x.dtype)
    _, _, share = row_statistics(x, ax, t, kw["backend"], -1.0 if name == "softmin" else 1.0, mask)
    block = functools.partial(_normalised, name, ax, t, kw["backend"])
    return da.map_blocks(block, x, share, *given(mask), dtype=meta.dtype, meta=meta)


def row_statistics(x, ax, t, backend, sign=1.0, mask=None):
    """(M, log S, f) as lazy arrays in the compute dtype: the row max and log of the
    row's sum (axis ``ax`` of length 1) and each block's log share f_b (one per block),
    of sign * x (-1: softmin's), over the unmasked entries of ``mask`` (None: all)."""
    ctype = COMPUTE[np.dtype(x.dtype)]
    cmeta = compute_meta(x)
    chunks = one_per_block(x.chunks, ax)
    m = da.map_blocks(functools.partial(_block_max, ax, sign), x, *given(mask), chunks=chunks, dtype=ctype,
                      meta=cmeta)
    lsum = da.map_blocks(functools.partial(_block_log_sum, ax, t, backend, sign), x, *given(mask), chunks=chunks,
                         dtype=ctype, meta=cmeta)
    # not m.max: Dask's max fails on blocks with no rows; every block of m has one entry per row
    big_m = da.reduction(m, np.max, np.max, axis=ax, keepdims=True, dtype=ctype, meta=cmeta)
    w = da.map_blocks(_log_weight, m, lsum, big_m, inverse_temperature(t, ctype), dtype=ctype, meta=cmeta)
    log_s = da.map_blocks(_log, da.exp(w).sum(axis=ax, keepdims=True), dtype=ctype, meta=cmeta)
    return big_m, log_s, da.map_blocks(_share, w, log_s, dtype=ctype, meta=cmeta)


def _block_max(ax, sign, xb, mb=None):
    # -inf for a block with no (unmasked) entry: it holds no mass
    ctype = COMPUTE[xb.dtype]
    if xb.shape[ax] == 0:
        return np.full_like(xb, -np.inf, shape=kept(xb.shape, ax), dtype=ctype)
    if mb is not None:
        return np.max(xb, axis=ax, keepdims=True, initial=-np.inf, where=mb).astype(ctype)
    if sign < 0:  # the max of -x
        return -xb.min(axis=ax, keepdims=True).astype(ctype)
    return xb.max(axis=ax, keepdims=True).astype(ctype)


def _block_log_sum(ax, t, backend, sign, xb, mb=None):
    ctype = COMPUTE[xb.dtype]
    if xb.shape[ax] == 0:
        return np.full_like(xb, -np.inf, shape=kept(xb.shape, ax), dtype=ctype)
    xc = xb.astype(ctype, copy=False)
    if sign < 0:  # softmin's largest entry, at the row's min, is 1/s_b
        y = run("softmin", xc, axis=ax, temperature=t, backend=backend)
        with np.errstate(divide="ignore"):
            return -np.log(y.max(axis=ax, keepdims=True))
    kw = {} if mb is None else {"mask": mb}  # masked entries -inf: the max is an unmasked one's
    y = run("log_softmax", xc, axis=ax, temperature=t, backend=backend, **kw)
    return -y.max(axis=ax, keepdims=True)


def _log_weight(m, lsum, big_m, inv_t):
    with np.errstate(invalid="ignore", over="ignore"):
        d = m - big_m
        w = d * inv_t + lsum  # d = m - M: -inf only in a block of only -inf, set below
    return np.where(m == -np.inf, -np.inf, w)  # no mass in a block of only -inf


def _share(w, log_s):
    with np.errstate(invalid="ignore"):  # -inf - -inf: a row of only -inf
        return w - log_s


def _log(s):
    with np.errstate(divide="ignore"):
        return np.log(s)


def normalised_block(name, ax, t, backend, xb, share, mb=None):
    """The block's softmax / log_softmax within the whole row, in the compute dtype;
    masked entries keep the block's own 0 (-inf)."""
    kw = {} if mb is None else {"mask": mb}
    y = run(name, xb.astype(COMPUTE[xb.dtype], copy=False), axis=ax, temperature=t, backend=backend, **kw)
    with np.errstate(invalid="ignore"):
        if name == "log_softmax":
            r = np.where(share == -np.inf, -np.inf, y + share)
        else:
            r = np.where(share == -np.inf, 0, y * np.exp(share))
    return r if mb is None else np.where(mb, r, y)


def _normalised(name, ax, t, backend, xb, share, mb=None):
    return normalised_block(name, ax, t, backend, xb, share, mb).astype(xb.dtype, copy=False)


def logsumexp(name, a):
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    kw = _axis_kwargs(a)
    keep = a["keepdims"]
    meta = run(name, x._meta, keepdims=keep, **kw)  # checks dtype, axis, keepdims and temperature now
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    mask = as_mask(fname, a["mask"], x)
    if x.ndim == 0:
        return da.map_blocks(masked_task(name, mask, keepdims=keep, **kw), x, *given(mask), dtype=meta.dtype,
                             meta=meta)
    kept_meta = np.empty_like(meta, shape=(0,) * x.ndim)
    if len(x.chunks[ax]) == 1:
        y = da.map_blocks(masked_task(name, mask, keepdims=True, **kw), x, *given(mask),
                          chunks=one_per_block(x.chunks, ax), dtype=meta.dtype, meta=kept_meta)
    else:
        t = _validate.temperature(fname, kw["temperature"], x.dtype, factor=True)
        big_m, log_s, _ = row_statistics(x, ax, t, kw["backend"], mask=mask)
        y = da.map_blocks(_lse, big_m, log_s, t, x.dtype, dtype=meta.dtype, meta=kept_meta)
    return y if keep else y.squeeze(axis=ax)


def _lse(big_m, log_s, t, dtype):
    # M + T log S; M itself where it is not finite (NaN, +-inf: the row's limit)
    with np.errstate(invalid="ignore", over="ignore"):
        lse = np.where(np.isfinite(big_m), big_m + big_m.dtype.type(t) * log_s, big_m)
        return lse.astype(dtype, copy=False)


def logsumexp_backward(name, a):
    """g e^{(x - r)/T} with g and r broadcast along the axis: elementwise given r."""
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    keep = a["keepdims"]
    kw = _axis_kwargs(a)
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    g, r = (as_dask(fname, what, a[what]) for what in ("grad_output", "result"))
    stub = [np.empty_like(b._meta, shape=_rw.reduced_shape(x._meta.shape, ax, keep)) for b in (g, r)]
    meta = run(name, stub[0], x._meta, stub[1], keepdims=keep, **kw)  # checks dtypes and parameters now
    if x.ndim == 0:
        mask = as_mask(fname, a["mask"], x)
        return da.map_blocks(masked_task(name, mask, keepdims=keep, **kw), g, x, r, *given(mask), dtype=meta.dtype,
                             meta=meta)
    shape = _rw.reduced_shape(x.shape, ax, keep)
    chunks = x.chunks[:ax] + (((1,),) if keep else ()) + x.chunks[ax + 1 :]
    g, r = (as_dask(fname, what, b, shape, chunks) for what, b in (("grad_output", g), ("result", r)))
    if not keep:
        g, r = (b[(slice(None),) * ax + (None,)] for b in (g, r))
    mask = as_mask(fname, a["mask"], x)
    return da.map_blocks(masked_task(name, mask, keepdims=True, **kw), g, x, r, *given(mask), dtype=meta.dtype,
                         meta=meta)


# ---------------------------------------------------------------- backward
def softmax_backward(name, a):
    """softmax: dx = y (g - sum(g y)) / T;  log_softmax: dx = (g - e^y sum(g)) / T
    (the kernels' formulas, gpu_act.backends.cpu.softmax), the row sums added up over blocks;
    softmin's is softmax's at temperature -T."""
    fname = f"gpu_act.{name}"
    y = as_dask(fname, "output", a["output"])
    g = as_dask(fname, "grad_output", a["grad_output"], y.shape, y.chunks)
    kw = _axis_kwargs(a)
    meta = run(name, g._meta, y._meta, **kw)
    ax = _validate.axis(fname, kw["axis"], y.ndim)
    mask = as_mask(fname, a.get("mask"), y)
    if y.ndim == 0 or len(y.chunks[ax]) == 1:
        return da.map_blocks(masked_task(name, mask, **kw), g, y, *given(mask), dtype=meta.dtype, meta=meta)
    t = _validate.temperature(fname, kw["temperature"], y.dtype)
    log = name == "log_softmax_backward"
    ctype = COMPUTE[np.dtype(y.dtype)]
    cmeta = compute_meta(y)
    part = da.map_blocks(
        functools.partial(_block_sum, ax, log),
        g,
        y,
        *given(mask),
        chunks=one_per_block(y.chunks, ax),
        dtype=np.float64,
        meta=cmeta.astype(np.float64),
    )
    total = part.sum(axis=ax, keepdims=True)
    sign = -1.0 if name == "softmin_backward" else 1.0
    block = functools.partial(_backward_block, log, inverse_temperature(sign * t, ctype))
    return da.map_blocks(block, g, y, total, *given(mask), dtype=meta.dtype, meta=meta)


def _block_sum(ax, log, g, y, mb=None):
    # in float64, as the kernels' row sums: g - sum(g y) cancels; over the unmasked entries
    g = g.astype(np.float64)
    terms = g if log else g * y
    return terms.sum(axis=ax, keepdims=True) if mb is None else np.sum(terms, axis=ax, keepdims=True, where=mb)


def _backward_block(log, inv_t, g, y, total, mb=None):
    ctype = COMPUTE[y.dtype]
    gc, yc = g.astype(ctype, copy=False), y.astype(ctype, copy=False)
    total = total.astype(ctype)  # the row sum rounded once, as the kernels do
    with np.errstate(invalid="ignore", over="ignore"):
        dx = (gc - np.exp(yc) * total) * inv_t if log else yc * (gc - total) * inv_t
    if mb is not None:
        dx = np.where(mb, dx, 0)  # masked entries 0
    return dx.astype(y.dtype, copy=False)


# ---------------------------------------------------------------- maxout
def pool_aligned(chunks, p):
    """Chunk lengths along the pooled axis, each a multiple of ``p``: unchanged when
    they already are, else every boundary moved down to a multiple of ``p``. A
    boundary moves by < p entries, so the rechunk copies fewer than p entries per
    row and boundary between neighbouring blocks and never gathers a row."""
    if all(c % p == 0 for c in chunks):
        return tuple(chunks)
    total = sum(chunks)
    bounds = sorted({b - b % p for b in np.cumsum(chunks[:-1]).tolist()} - {0})
    edges = [0, *bounds, total]
    return tuple(hi - lo for lo, hi in zip(edges, edges[1:]))


def _pooled(x, ax, p):
    """(x rechunked so blocks hold whole groups, chunks of the pooled output)."""
    x = x.rechunk({ax: pool_aligned(x.chunks[ax], p)})
    chunks = x.chunks[:ax] + (tuple(c // p for c in x.chunks[ax]),) + x.chunks[ax + 1 :]
    return x, chunks


def maxout(name, a):
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    kw = {"axis": a["axis"], "backend": a["backend"]}
    meta = run(name, x._meta, a["pool_size"], **kw)  # checks dtype, axis, pool_size's type
    if x.ndim == 0:
        return x.map_blocks(task(name, pool_size=a["pool_size"], **kw), dtype=meta.dtype, meta=meta)
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    p = _rw.check_pool(fname, a["pool_size"], x.shape[ax])
    x, chunks = _pooled(x, ax, p)
    return x.map_blocks(task(name, pool_size=p, **kw), chunks=chunks, dtype=meta.dtype, meta=meta)


def maxout_backward(name, a):
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    g = as_dask(fname, "grad_output", a["grad_output"])
    kw = {"axis": a["axis"], "backend": a["backend"]}
    meta = run(name, g._meta, x._meta, a["pool_size"], **kw)
    if x.ndim == 0:
        return da.map_blocks(task(name, pool_size=a["pool_size"], **kw), g, x, dtype=meta.dtype, meta=meta)
    ax = _validate.axis(fname, kw["axis"], x.ndim)
    p = _rw.check_pool(fname, a["pool_size"], x.shape[ax])
    x, g_chunks = _pooled(x, ax, p)
    g = as_dask(fname, "grad_output", g, _rw.pooled_shape(x.shape, ax, p), g_chunks)
    return da.map_blocks(task(name, pool_size=p, **kw), g, x, dtype=meta.dtype, meta=meta)
