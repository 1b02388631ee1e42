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
