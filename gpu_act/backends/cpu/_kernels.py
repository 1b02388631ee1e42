"""Run a CPU kernel on views of the right rank, each operand in its storage dtype.

Kernels read and write every array through its storage codec (``_codecs``):
float16 as its uint16 bits, converted element by element inside the kernel,
so no operand is converted as a whole. The result goes straight into ``out``
unless it overlaps an input other than as that very view; then it goes
through a temporary of out's dtype, copied into ``out`` (through its strides)
at the end.

In place (``out`` the very view of an input) the kernel is compiled as a
variant that writes through that input's argument (``alias``, picked by
``pick``). With two arguments LLVM cannot tell that a store and a load of the
same index touch the same memory: it guards its vectorized loops with a
run-time check that the two pointers lie at least a vector block apart and
falls back to the scalar loop when they do not, which identical pointers never
do. One pointer is provably the same address: the loop vectorizes exactly as
out of place, and gives the same bits.
"""

import threading

import numpy as np

from ... import _compile
from . import _codecs, _vmath
from ._numba import SOURCE_HASH, ijit, kernel_jit, kernel_pjit, parallel_usable
from ._views import same_view

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
    """How to compile the kernel for an array of ``size`` elements: ``kernel_pjit``
    (all threads) or ``kernel_jit`` (serial; ``prange`` is then a plain range).
    Serial always in a process forked after its parent ran a GNU OpenMP
    parallel region (``_numba.parallel_usable``)."""
    return kernel_pjit if size >= PARALLEL_MIN and parallel_usable() else kernel_jit


def _pick0(a, *rest):
    return a


def _pick1(a, b, *rest):
    return b


def _pick2(a, b, c, *rest):
    return c


def _pick3(a, b, c, d, *rest):
    return d


_PICKERS = (_pick0, _pick1, _pick2, _pick3)


def pick(k):
    """An always-inlined function returning its argument ``k``: a kernel writes
    to ``pick(k)(inputs..., out)``, its argument k (an input in place, else out)."""
    return cached(("pick", k), lambda: ijit(_PICKERS[k]))


def codecs(arrays):
    return tuple([_codecs.codec(a.dtype) for a in arrays])


def _shares(out, a):
    # whether out and a share an element (exactly where that is cheap to decide; a
    # layout too hard to decide counts as shared)
    if not np.may_share_memory(out, a):
        return False
    try:
        return np.shares_memory(out, a, max_work=1 << 16)
    except np.exceptions.TooHardError:
        return True


def _same(a, b):
    # the very same view: same first element, strides, shape and dtype
    return a.dtype == b.dtype and same_view(a, b)


def apart(out, inputs):
    """Whether ``out`` and the inputs are distinct arrays that own their memory, and
    so cannot overlap (the common call, whose out was just allocated)."""
    return out.flags.owndata and all(a is not out and a.flags.owndata for a in inputs)


def overlap(out, inputs):
    """(alias, staged): ``alias`` the index of the input that ``out`` is, as that
    very view (in place), or None; ``staged`` whether ``out`` shares memory with
    an input otherwise, and so must be written through a temporary."""
    if apart(out, inputs):
        return None, False
    alias = None
    for k, a in enumerate(inputs):
        if _same(a, out):
            alias = k if alias is None else alias
        elif _shares(out, a):
            return None, True
    return alias, False


def launch(run, view, inputs, out):
    """``run(views, codecs, alias)``: views (inputs..., destination) made by ``view``,
    in their storage dtypes; their codecs; the index of the input the destination
    is (in place; its view is then the destination's, writable), or None.

    An ``out`` that overlaps an input other than as the very same view (of the
    same dtype) is written through a temporary of its dtype."""
    alias, staged = overlap(out, inputs)
    dst = np.empty(out.shape, out.dtype) if staged else out
    arrays = list(inputs) + [dst]
    views = view(arrays)
    if views is None:  # a layout that does not merge: contiguous copies, each in its own dtype
        if not dst.flags.c_contiguous:
            dst = np.empty(out.shape, out.dtype)
        arrays = [np.ascontiguousarray(a) for a in inputs] + [dst]
        views = view(arrays)
        alias = None if dst is not out else alias
        if alias is not None and not _same(arrays[alias], dst):
            alias = None
    cs = codecs(arrays)
    if not all(c.native for c in cs):
        views = [_codecs.storage(v, c) for v, c in zip(views, cs)]
    if alias is not None:
        views[alias] = views[-1]
    run(views, cs, alias)
    if dst is not out:
        np.copyto(out, dst)
