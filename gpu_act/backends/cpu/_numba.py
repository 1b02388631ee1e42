"""Numba settings for the CPU backend, in one place.

- A thread-safe threading layer (``omp`` or ``tbb``): Numba's default
  ``workqueue`` layer aborts when two Python threads run parallel kernels at
  once. A layer the user chose with NUMBA_THREADING_LAYER is kept.
- ``cache=True`` so a second process loads kernels from disk.
- fastmath only with flags that keep NaN/inf semantics: reassociation and
  contraction let LLVM vectorize sums; no ``nnan``/``ninf``/``afn``.
- NumPy's error model: x/0 gives inf/NaN instead of a ZeroDivisionError
  check, a branch that would stop loops from vectorizing.
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

FASTMATH = {"reassoc", "contract"}


def jit(fn=None, **kw):
    """``numba.njit`` with the project's cache/fastmath settings."""
    opts = {"cache": True, "nogil": True, "fastmath": set(FASTMATH), "error_model": "numpy"}
    opts.update(kw)
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def ijit(fn):
    """A function always inlined into its callers (LLVM ``alwaysinline``): a
    call left in a kernel's loop would keep the loop from vectorizing."""
    return jit(fn, forceinline=True)


def pjit(fn):
    """A parallel kernel."""
    return jit(fn, parallel=True)
