"""Gated linear units on Dask arrays.

An axis held in one chunk: one gpu_act call per block (the block holds both
halves of its rows). An axis split into several chunks is never gathered: its
halves are sliced lazily, the second (the gate a) rechunked to the first's
(b's) chunks so that blocks pair up, and each pair of blocks is one backend
call: ``scaled`` (b times the gate of a) forward, ``gated_backward`` (both
gradient blocks from one pass) backward, whose two halves are concatenated
lazily along the axis, b's first.
"""

import functools
import operator

import dask.array as da
import numpy as np

from .. import _dispatch
from .. import gated as _gated
from ..registry import ACTIVATIONS
from ._blocks import as_dask, run, task


def _parts(name, a):
    """(gate name, its parameters, the keyword arguments of the block tasks) of a call."""
    base = name.removesuffix("_backward")
    kw = {"axis": a["axis"], "backend": a["backend"]}
    if base == "glu":
        params = dict(a.get("params", {}))
        kw["activation"] = gate = a["activation"]
    else:
        gate = _gated.SHORTCUTS[base]
        params = {p.name: a[p.name] for p in ACTIVATIONS[gate].params}
    return gate, params, {**kw, **params}


def _halves(x, ax):
    """(b, a): the first and second halves of x along ``ax``, a rechunked to b's chunks."""
    h = x.shape[ax] // 2
    lead = (slice(None),) * ax
    b, a = x[lead + (slice(0, h),)], x[lead + (slice(h, None),)]
    return b, a.rechunk(b.chunks)


def glu(name, a):
    """glu and its shortcuts (swiglu, geglu, reglu)."""
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    gate, params, kw = _parts(name, a)
    meta = run(name, x._meta, **kw)  # checks dtype, axis, gate and parameters now
    ax, half, f, _, p = _gated.setup(fname, x, kw["axis"], gate, params, x.dtype)
    if len(x.chunks[ax]) == 1:
        chunks = x.chunks[:ax] + ((half[ax],),) + x.chunks[ax + 1 :]
        return x.map_blocks(task(name, **kw), chunks=chunks, dtype=meta.dtype, meta=meta)
    b, ga = _halves(x, ax)
    block = functools.partial(_forward_block, fname, f, p, kw["backend"])
    return da.map_blocks(block, b, ga, dtype=meta.dtype, meta=meta)


def _forward_block(fname, f, p, backend, b, a):
    be, ctx = _dispatch.resolve(fname, (a, b), backend)
    bb, ab = be.asarray(ctx, b), be.asarray(ctx, a)
    out = be.empty(ctx, ab.shape, ab.dtype)
    if ab.size:
        be.scaled(ctx, f, bb, ab, p, out)
    return be.wrap(ctx, out, a)


def glu_backward(name, a):
    fname = f"gpu_act.{name}"
    x = as_dask(fname, "x", a["x"])
    gate, params, kw = _parts(name, a)
    g = as_dask(fname, "grad_output", a["grad_output"])
    meta = run(name, np.empty_like(g._meta, shape=(0,) * x.ndim), x._meta, **kw)  # checks dtypes and parameters now
    ax, half, f, d, p = _gated.setup(fname, x, kw["axis"], gate, params, x.dtype)
    if len(x.chunks[ax]) == 1:
        g = as_dask(fname, "grad_output", g, half, x.chunks[:ax] + ((half[ax],),) + x.chunks[ax + 1 :])
        return da.map_blocks(task(name, **kw), g, x, dtype=meta.dtype, meta=meta)
    b, ga = _halves(x, ax)
    g = as_dask(fname, "grad_output", g, half, b.chunks)
    both = da.map_blocks(functools.partial(_backward_block, fname, f, d, p, kw["backend"]), g, b, ga, dtype=object,
                         meta=np.empty((0,) * x.ndim, object))
    db, dga = (both.map_blocks(operator.itemgetter(k), dtype=meta.dtype, meta=meta) for k in (0, 1))
    return da.concatenate([db, dga], axis=ax)


def _backward_block(fname, f, d, p, backend, g, b, a):
    # (gradient of b's block, gradient of a's block) from one pass
    be, ctx = _dispatch.resolve(fname, (a, g, b), backend)
    gb, bb, ab = (be.asarray(ctx, v) for v in (g, b, a))
    db, dga = be.empty(ctx, ab.shape, ab.dtype), be.empty(ctx, ab.shape, ab.dtype)
    if ab.size:
        be.gated_backward(ctx, f, d, gb, ab, bb, p, dga, db)
    return be.wrap(ctx, db, a), be.wrap(ctx, dga, a)
