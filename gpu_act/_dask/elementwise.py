"""Elementwise functions on Dask arrays: one gpu_act call per block.

RReLU in training draws slope a(key, i) for C-order flat index i of the whole
array and depends on key + i only (``formulas.rrelu_slope``), so a run of
consecutive flat indices starting at s is ``rrelu_slopes`` with key + s.
PReLU's weight gradient is a sum over blocks of per-block channel sums.
"""

import functools
import itertools
import math
import operator

import dask.array as da
import numpy as np

from .. import _dispatch
from .. import elementwise as _ew
from .. import formulas as F
from ..registry import ACTIVATIONS
from ._blocks import as_dask, empty_like, run, task


def _inputs(fname, a):
    """[grad_output,] x as Dask arrays with x's chunks; the rest of ``a`` are parameters."""
    x = as_dask(fname, "x", a.pop("x"))
    if "grad_output" not in a:
        return [x]
    return [as_dask(fname, "grad_output", a.pop("grad_output"), x.shape, x.chunks), x]


def plain(name, a):
    """NAME and NAME_backward of the registry (and RReLU in eval mode)."""
    arrays = _inputs(f"gpu_act.{name}", a)
    meta = run(name, *(b._meta for b in arrays), **a)  # checks dtypes and parameters now
    return da.map_blocks(task(name, **a), *arrays, dtype=meta.dtype, meta=meta)


# ---------------------------------------------------------------- RReLU
def rrelu(name, a):
    if not a["training"]:
        return plain(name, a)
    fname = f"gpu_act.{name}"
    arrays = _inputs(fname, a)
    meta = run(name, *(b._meta for b in arrays), **a)
    lower, upper = ACTIVATIONS["rrelu"].bind(fname, (a["lower"], a["upper"]), {}, arrays[-1].dtype)
    key = _ew.rrelu_key(fname, a["seed"])
    block = functools.partial(_rrelu_block, fname, key, lower, upper, a["backend"])
    return da.map_blocks(block, *arrays, dtype=meta.dtype, meta=meta)


def _rrelu_block(fname, key, lower, upper, backend, *arrays, block_info=None):
    be, ctx = _dispatch.resolve(fname, arrays[::-1], backend)  # x (the last block) is the primary input
    *g, x = [be.asarray(ctx, b) for b in arrays]
    out = be.empty(ctx, x.shape, x.dtype)
    if x.size:
        info = block_info[None]
        slopes = _slopes(be, ctx, info["shape"], info["array-location"], key, lower, upper, x.dtype)
        if g:
            be.scaled_slope(ctx, F.leaky_relu_der, g[0], x, slopes, out)
        else:
            be.unary_slope(ctx, F.leaky_relu_fwd, x, slopes, out)
    return be.wrap(ctx, out, arrays[-1])


def _slopes(be, ctx, shape, location, key, lower, upper, dtype):
    """The slopes of the block at ``location`` ([(start, stop)] per axis) of an array of ``shape``.

    Axes j.. that the block spans whole, with axis j-1, make runs of consecutive
    flat indices; there is one run per index of the block's axes before j-1.
    """
    j = len(shape)
    while j and tuple(location[j - 1]) == (0, shape[j - 1]):
        j -= 1
    if j == 0:
        return be.rrelu_slopes(ctx, tuple(shape), key, lower, upper, dtype)
    strides = [math.prod(shape[k + 1 :]) for k in range(len(shape))]
    r0, r1 = location[j - 1]
    run_length = (r1 - r0) * strides[j - 1]
    runs = []
    for prefix in itertools.product(*(range(lo, hi) for lo, hi in location[: j - 1])):
        start = sum(i * s for i, s in zip(prefix, strides)) + r0 * strides[j - 1]
        runs.append(be.rrelu_slopes(ctx, (run_length,), (key + start) & F.MASK64, lower, upper, dtype))
    return np.concatenate(runs).reshape(tuple(hi - lo for lo, hi in location))


# ---------------------------------------------------------------- PReLU
def _prelu_inputs(name, a):
    """(arrays, weight, blockwise index pairs, meta): the weight is split like x's
    channel axis (axis 1) when it has one entry per channel, else passed whole."""
    fname = f"gpu_act.{name}"
    arrays = _inputs(fname, a)
    x = arrays[-1]
    w = as_dask(fname, "weight", a.pop("weight"))
    # check dtypes and the weight's size now, on a stand-in of x with every axis but the channels cut to <= 1
    stub = [min(n, 1) for n in x.shape]
    if x.ndim >= 2:
        stub[1] = x.shape[1]
    stubs = [np.zeros_like(b._meta, shape=tuple(stub)) for b in arrays]
    result = run(name, *stubs, np.zeros_like(w._meta, shape=w.shape), **a)
    meta = empty_like(result, x.ndim) if name == "prelu" else (empty_like(result[0], x.ndim), result[1])
    ind = tuple(range(x.ndim))
    if x.ndim >= 2 and w.size > 1:
        w, w_ind = w.rechunk((x.chunks[1],)), (1,)
    else:
        w, w_ind = w.rechunk(-1), tuple(range(x.ndim, x.ndim + w.ndim))
    pairs = [p for b in arrays for p in (b, ind)] + [w, w_ind]
    return arrays, w, pairs, meta


def _prelu_block(name, kwargs, *arrays):
    *xs, w = arrays
    if w.size:
        return run(name, *xs, w, **kwargs)
    # a block with no channels gets its empty slice of the weight: stand in one weight
    # entry (nothing is computed) and give back an empty weight gradient
    result = run(name, *xs, np.zeros_like(w, shape=(1,)), **kwargs)
    return (result[0], result[1][:0]) if name == "prelu_backward" else result


def prelu(name, a):
    arrays, _, pairs, meta = _prelu_inputs(name, a)
    x = arrays[-1]
    block = functools.partial(_prelu_block, name, a)
    return da.blockwise(block, tuple(range(x.ndim)), *pairs, concatenate=True, dtype=meta.dtype, meta=meta)


def prelu_backward(name, a):
    """(grad_x, grad_weight). Blocks get the weight in float64 (the slopes, cast to
    x's dtype, are unchanged) so that per-block weight sums stay exact until the
    sum over blocks, which is cast to the weight's dtype as in memory."""
    arrays, w, pairs, (gx_meta, gw_meta) = _prelu_inputs(name, a)
    x = arrays[-1]
    ndim = x.ndim
    pairs[-2] = w.astype(np.float64)
    both = da.blockwise(
        functools.partial(_prelu_block, name, a), tuple(range(ndim)), *pairs, concatenate=True, dtype=object,
        meta=np.empty((0,) * ndim, object),
    )
    gx = both.map_blocks(operator.itemgetter(0), dtype=gx_meta.dtype, meta=gx_meta)
    per_channel = ndim >= 2 and w.size > 1
    part_chunks = tuple(c if per_channel and i == 1 else (1,) * len(c) for i, c in enumerate(x.chunks))
    parts = both.map_blocks(
        functools.partial(_weight_part, ndim, per_channel), chunks=part_chunks, dtype=np.float64,
        meta=np.empty_like(gw_meta, shape=(0,) * ndim, dtype=np.float64),
    )
    kept = (1,) if per_channel else ()
    gw = parts.sum(axis=tuple(i for i in range(ndim) if i not in kept)).astype(gw_meta.dtype)
    return gx, gw.reshape(w.shape)


def _weight_part(ndim, per_channel, pair):
    # the block's grad_weight (1-D) laid along axis 1 (or every axis of length 1)
    gw = pair[1]
    shape = [1] * ndim
    if per_channel:
        shape[1] = gw.size
    return gw.reshape(tuple(shape))
