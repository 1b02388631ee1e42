"""Run a CPU kernel on views of the right rank, in the compute dtype.

Inputs of another dtype (float16) are converted to the compute dtype; the
result goes straight into ``out`` when it has the compute dtype and does not
overlap an input other than as that very view (in place), else through a
temporary that is copied into ``out`` (through its strides) at the end.
"""

import threading

import numpy as np

from ... import _compile
from . import _vmath
from ._numba import SOURCE_HASH, ijit, jit, pjit
from ._views import needs_staging

_lock = threading.RLock()
_built = {}


def cached(key, build):
    """``build()`` once per key (kernel factories are called from many threads)."""
    hit = _built.get(key)
    if hit is not None:
        return hit
    with _lock:
        if key not in _built:
            _built[key] = build()
        return _built[key]


def formulas(ctype):
    """The scalar formulas compiled for the CPU in compute type ``ctype``, calling the
    vectorizable exp, expm1, ... of ``_vmath`` instead of ``math``'s."""
    ctype = np.dtype(ctype)
    return cached(
        ("formulas", ctype),
        lambda: _compile.namespace(ijit, ctype, f"cpu.{SOURCE_HASH}", overrides=_vmath.functions(ctype)),
    )


# below this many elements a kernel runs on the calling thread: waking the
# thread pool costs more than it saves (and much more on a busy machine)
PARALLEL_MIN = 1 << 16


def decorator(size):
    """How to compile the kernel for an array of ``size`` elements: ``pjit``
    (all threads) or ``jit`` (serial; ``prange`` is then a plain range)."""
    return pjit if size >= PARALLEL_MIN else jit


def launch(run, view, inputs, out, ctype):
    """``run(*views)`` on views (inputs..., target) made by ``view``."""
    ins = [a.astype(ctype, copy=False) for a in inputs]
    direct = out.dtype == ctype and not needs_staging(out, inputs)
    dst = out if direct else np.empty(out.shape, ctype)
    views = view(ins + [dst])
    if views is None:
        ins = [np.ascontiguousarray(a) for a in ins]
        if not dst.flags.c_contiguous:
            dst = np.empty(out.shape, ctype)
        views = view(ins + [dst])
    run(*views)
    if dst is not out:
        with np.errstate(over="ignore"):  # float16 results beyond 65504 are inf, as computed
            np.copyto(out, dst, casting="unsafe")
