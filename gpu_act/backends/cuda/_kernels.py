"""Kernels of the CUDA backend: built once per key, and launched.

- ``cached(key, build)``: kernel factories run once per key (op, dtype, variant);
- ``formulas(ctype)``: the registry's scalar formulas as CUDA device functions;
- ``kernel(template, bindings, tag, ctype, variant)``: a template instantiated
  and compiled with its launch bound;
- ``launch(ctx, kernel, config, args)`` on the call's stream.
"""

import functools
import pathlib
import threading

import numpy as np

from ... import _compile, _cuda
from ._config import max_threads

_lock = threading.RLock()
_built = {}

# every source kernels are built from, in their names: Numba's disk cache
# checks only the file defining the kernel
SOURCE_HASH = _compile.sources_hash(pathlib.Path(__file__).parent)


def cached(key, build):
    with _lock:
        k = _built.get(key)
        if k is None:
            k = _built[key] = build()
        return k


def formulas(ctype):
    """Every registry formula compiled as a CUDA device function for ``ctype``."""
    ctype = np.dtype(ctype)
    return cached(("formulas", ctype), lambda: _compile.namespace(_cuda.device, ctype, "cuda"))


def kernel(template, bindings, tag, ctype, variant):
    """``template`` instantiated with ``bindings`` (float literals in ``ctype``),
    compiled for blocks of at most ``max_threads(variant, ...)`` threads."""
    ctype = np.dtype(ctype)
    tag = f"{tag}.{ctype.name}.{SOURCE_HASH}"
    return _compile.instantiate(template, bindings, tag, _bounded(max_threads(variant, ctype.itemsize)), ctype)


@functools.lru_cache(maxsize=None)
def _bounded(threads):
    # the decorator of kernels launched with at most ``threads`` threads: one per
    # count, so that _compile.instantiate knows a kernel instantiated again
    return lambda fn: _cuda.kernel(fn, threads)


def launch(ctx, k, config, args):
    """Kernel ``k`` with ``config`` on the call's stream (the caller holds the call's device current)."""
    k[config.grid, config.block, ctx.stream, config.shared](*args)
