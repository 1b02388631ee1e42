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
- Fork safety: GNU OpenMP cannot run a parallel region in a process forked
  after its parent ran one (Numba's ``omp`` layer then kills the child, and a
  fork ``multiprocessing.Pool`` hangs). Such a child runs every kernel serial
  (``parallel_usable``); tbb and Intel OpenMP are fork-safe and keep their
  threads.
"""

import os
import pathlib

import numba

from ..._compile import disk_cache, sources_hash

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

FASTMATH = {"reassoc", "contract"}
SOURCE_HASH = sources_hash(pathlib.Path(__file__).parent)


class _Fork:
    """Whether this process was forked from one that had started GNU OpenMP's
    threads, set in the child by the fork hook below."""

    gnu_omp_parent = False


def _gnu_omp_running():
    try:
        layer = numba.threading_layer()  # ValueError until a parallel region has run
    except ValueError:
        return False
    if layer != "omp":
        return False
    from numba.np.ufunc import omppool

    return getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _after_fork_in_child():
    if _gnu_omp_running():
        _Fork.gnu_omp_parent = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_usable():
    """False in a child forked after a GNU OpenMP parallel region in its parent."""
    return not _Fork.gnu_omp_parent


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
