"""Numba settings for the CPU backend, in one place.

- A thread-safe threading layer (``omp`` or ``tbb``): Numba's default
  ``workqueue`` layer aborts when two Python threads run parallel kernels at
  once. A layer the user chose with NUMBA_THREADING_LAYER is kept.
- ``cache=True`` so a second process loads kernels from disk, where a cache
  directory is writable (``_compile.disk_cache``).
- fastmath only with flags that keep NaN/inf semantics: reassociation and
  contraction let LLVM vectorize sums; no ``nnan``/``ninf``/``afn``.
- NumPy's error model: x/0 gives inf/NaN instead of a ZeroDivisionError
  check, a branch that would stop loops from vectorizing.
- ``SOURCE_HASH`` of the sources CPU kernels are built from (this folder and
  the package's top-level modules: formulas, wrappers, ...) goes into the
  kernels' qualified names: Numba's disk cache checks only the timestamp of
  the file that defines a function. Any edit there recompiles every CPU
  kernel once.
"""

import os
import pathlib

import numba

from ..._compile import disk_cache, sources_hash

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

FASTMATH = {"reassoc", "contract"}
SOURCE_HASH = sources_hash(pathlib.Path(__file__).parent)


def jit(fn=None, **kw):
    """``numba.njit`` with the project's cache/fastmath settings."""
    opts = {"cache": disk_cache(), "nogil": True, "fastmath": set(FASTMATH), "error_model": "numpy"}
    opts.update(kw)
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def ijit(fn):
    """A function always inlined into its callers (LLVM ``alwaysinline``): a
    call left in a kernel's loop would keep the loop from vectorizing."""
    return jit(fn, forceinline=True)


def pjit(fn):
    """A parallel kernel."""
    return jit(fn, parallel=True)
