"""Plumbing shared by the Dask builders: block tasks that call the public
gpu_act functions, argument conversion and chunk bookkeeping."""

import functools
import math

import dask.array as da
import numpy as np

from .. import _validate
from .._public import FUNCTIONS
from .._dtypes import COMPUTE


def run(name, *arrays, **kwargs):
    """Block task: the public function ``gpu_act.<name>`` on in-memory blocks
    (referenced by name so that tasks pickle to distributed workers)."""
    return FUNCTIONS[name](*arrays, **kwargs)


def task(name, **kwargs):
    return functools.partial(run, name, **kwargs)


def _run_masked(name, kwargs, *arrays):
    return FUNCTIONS[name](*arrays[:-1], mask=arrays[-1], **kwargs)


def masked_task(name, mask, **kwargs):
    """``task``, or with a mask (not None) one whose last block is passed as ``mask=``."""
    return task(name, **kwargs) if mask is None else functools.partial(_run_masked, name, kwargs)


def as_mask(fname, obj, x):
    """``obj`` (None, or a bool array broadcastable to x) as a Dask array of x's
    shape and chunks, each block a broadcast view of the mask's (stride 0 along
    its unit axes), or None."""
    if obj is None:
        return None
    m = as_dask(fname, "mask", obj)
    _validate.mask_dtype(fname, m.dtype)
    m = m.reshape(_validate.broadcasts_to(fname, "mask", m, x.shape))
    m = m.rechunk(tuple((1,) if n == 1 else c for n, c in zip(m.shape, x.chunks)))
    return da.broadcast_to(m, x.shape, chunks=x.chunks)


def given(*arrays):
    """The arrays that are not None (a block function's optional last operands)."""
    return [a for a in arrays if a is not None]


def as_dask(fname, what, obj, shape=None, chunks=None):
    """``obj`` as a Dask array with known chunk sizes, checked against ``shape`` and
    rechunked to ``chunks`` (to line its blocks up with the other arguments')."""
    a = obj if isinstance(obj, da.Array) else da.asarray(obj)
    if any(math.isnan(c) for cs in a.chunks for c in cs):
        raise ValueError(f"{fname}: {what} has unknown chunk sizes; call .compute_chunk_sizes() on it first")
    if shape is not None:
        _validate.same_shape(fname, what, a, shape)
    if chunks is not None and a.chunks != tuple(chunks):
        a = a.rechunk(chunks)
    return a


def one_per_block(chunks, ax):
    """``chunks`` with every block of axis ``ax`` reduced to length 1 (per-block partials)."""
    return chunks[:ax] + ((1,) * len(chunks[ax]),) + chunks[ax + 1 :]


def compute_meta(x):
    """An empty array of x's chunk type in the dtype x is computed in."""
    return np.empty_like(x._meta, shape=(0,) * x.ndim, dtype=COMPUTE[np.dtype(x.dtype)])


def empty_like(a, ndim):
    return np.empty_like(a, shape=(0,) * ndim)


def kept(shape, ax):
    return tuple(shape[:ax]) + (1,) + tuple(shape[ax + 1 :])
