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
- Kernels (``kernel_jit``, ``kernel_pjit``) are compiled once per kind of
  arguments, not per array layout (``Kernel``).
"""

import os
import pathlib
import threading

import numba
from numba import types
from numba.core.typing.typeof import Purpose

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


def device(fn, **kw):
    """A function called only from compiled code: compiled without the CPython
    and C wrappers a call from Python needs (a tenth to a fifth of the compile
    time of a small function)."""
    return jit(fn, no_cpython_wrapper=True, no_cfunc_wrapper=True, **kw)


def shared_jit(fn):
    """A function called from Python and from compiled code: the CPython wrapper
    without the C one."""
    return jit(fn, no_cfunc_wrapper=True)


def ijit(fn):
    """A function always inlined into its callers (LLVM ``alwaysinline``): a
    call left in a kernel's loop would keep the loop from vectorizing."""
    return device(fn, forceinline=True)


def pjit(fn):
    """A parallel kernel."""
    return jit(fn, parallel=True)


_compiling = threading.Lock()


def _any_layout(t):
    # an array argument typed any-layout ('A'): a C, F or strided array converts to it
    return t.copy(layout="A") if isinstance(t, types.Array) else t


class Kernel:
    """A kernel called from Python, compiled once per kind of arguments: each
    array typed any-layout ('A'), so a C-contiguous array, its transpose and a
    strided view of it run one compiled function (Numba alone compiles a
    specialization per combination of operand layouts). The kernels index rows
    through strides and cast rows of unit stride to contiguous themselves
    (``_views.unit``), which is what their loops need to vectorize.

    ``dispatcher`` never compiles: Numba runs the signature the arguments
    convert to (a C array to an any-layout one). A call that no signature
    accepts compiles one in ``_compiler``, a second dispatcher of the same
    function, and adds it to ``dispatcher``; a call that two accept (an input
    read-only in one, writable in the other) runs the signature of its own
    argument types directly."""

    __slots__ = ("dispatcher", "_compiler", "_open")

    def __init__(self, decorate, fn):
        self.dispatcher = decorate(fn)
        self._compiler = decorate(fn)
        self._open = True  # until the first signature is added (a dispatcher without one cannot be disabled)

    def __call__(self, *args):
        if not self._open:
            try:
                return self.dispatcher(*args)
            except TypeError:  # no compiled signature takes these argument types, or two do
                pass
        return self._entry(args)(*args)

    def _entry(self, args):
        sig = tuple(_any_layout(numba.typeof(a, Purpose.argument)) for a in args)
        d = self.dispatcher
        with _compiling:
            if sig not in d.overloads:
                self._compiler.compile(sig)
                d.add_overload(self._compiler.overloads[sig])
                d.disable_compile()
                self._open = False
        return d.overloads[sig].entry_point


def kernel_jit(fn):
    """A serial kernel (``Kernel``)."""
    return Kernel(jit, fn)


def kernel_pjit(fn):
    """A parallel kernel (``Kernel``)."""
    return Kernel(pjit, fn)
