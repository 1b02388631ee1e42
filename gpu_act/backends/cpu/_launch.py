"""Run a CPU kernel on views of the right rank, in the compute dtype.

Inputs of another dtype (float16) are converted to the compute dtype; the
result goes straight into ``out`` when it has the compute dtype and does not
overlap an input other than as that very view (in place), else through a
temporary that is copied into ``out`` (through its strides) at the end.
"""

import threading

import numpy as np

from ... import _compile
from ._numba import jit
from ._views import needs_staging

_lock = threading.RLock()
_built = {}


def cached(key, build):
    """``build()`` once per key (kernel factories are called from many threads)."""
    with _lock:
        if key not in _built:
            _built[key] = build()
        return _built[key]


def formulas(ctype):
    """The scalar formulas compiled for the CPU in compute type ``ctype``."""
    ctype = np.dtype(ctype)
    return cached(("formulas", ctype), lambda: _compile.namespace(jit, ctype, "cpu"))


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
