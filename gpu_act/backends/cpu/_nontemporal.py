"""Non-temporal ("streaming") stores for outputs larger than the last-level cache.

A plain store to a line that is not in cache first reads the line from memory
(read for ownership), so writing an output of n bytes moves 2n; a non-temporal
store writes the line without reading it and without keeping it in cache:
for outputs that would not stay in cache anyway, a third less traffic for a
one-input elementwise op. Smaller outputs keep plain stores: they are likely
read again soon, from cache. So do loops with more than about one exp's work
per element (``transcendental_cost`` above ``MAX_COST``): they wait on
arithmetic, not memory, where streaming gains nothing.

LLVM only vectorizes a loop of non-temporal stores whose alignment it knows.
So a kernel writes the head of a destination plainly, up to its first 64-byte
boundary (``aligned_head``); from there it computes ``STAGE`` elements at a time
into an aligned L1 buffer (``buffer``) and ``write_aligned`` streams the whole
vectors out (plain stores for the rest). Buffer and destination share their
alignment, so each vector load finds the one vector store that wrote it.
Short stages keep the streamed stores spread among the arithmetic. A kernel
calls ``fence`` once it has written (an ``sfence``: streamed stores are weakly
ordered). Only on x86-64; elsewhere the stores are plain and ``fence`` is
nothing. Softmax keeps plain stores (its rows are read twice). The
measurements behind these choices are in bench/NOTES.md.
"""

import functools
import pathlib
import platform

import llvmlite.ir as llvmir
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ... import _compile
from ._numba import ijit

VECTOR_BYTES = 64  # one cache line: one AVX-512 store, two AVX ones
STAGE = 64  # elements per staged block (see above; four AVX-512 vectors of float32, eight of float64)
ENABLED = platform.machine().lower() in ("x86_64", "amd64")
DEFAULT_CACHE_BYTES = 32 << 20
MAX_COST = 1  # the most exp's worth of work per element a streamed loop may do


def _last_level_cache_bytes():
    # Linux sysfs; elsewhere (or unreadable) a typical desktop/server L3
    best = 0
    for d in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (d / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        digits = size.rstrip("KMG")
        if digits.isdigit():
            best = max(best, int(digits) * unit)
    return best or DEFAULT_CACHE_BYTES


# an output at least this large, with its input(s) as large, does not fit in the cache
MIN_BYTES = _last_level_cache_bytes() // 2


# the toolbox's costly functions, in units of about one exp's work (erfc: an exp,
# a division and a polynomial as long again)
TRANSCENDENTAL = {"exp": 1, "expm1": 1, "log": 1, "log1p": 1, "tanh": 1, "erfc": 2}
_BY_NAME = {f.__name__: f for f in _compile.FORMULAS}


@functools.cache
def transcendental_cost(fn):
    """The exp's worth of work formula ``fn`` (from ``gpu_act.formulas``) calls for,
    directly or through other formulas (each distinct callee counted once per
    caller, as written: an exp two callees share counts twice, though LLVM
    computes it once): whether a loop waits on memory or on arithmetic.
    Cached: asked on every call."""
    cost = 0
    for name in set(fn.__code__.co_names):
        if name in TRANSCENDENTAL:
            cost += TRANSCENDENTAL[name]
        elif name in _BY_NAME:
            cost += transcendental_cost(_BY_NAME[name])
    return cost


def wanted(nbytes):
    """Whether a kernel writing an output of ``nbytes`` should stream it."""
    return ENABLED and nbytes >= MIN_BYTES


@intrinsic
def _address(typingctx, a):
    """The address of a's first element."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, llvmir.IntType(64))

    return types.int64(a), codegen


@intrinsic
def _store_line(typingctx, dst, src, i):
    """dst[i : i + VECTOR_BYTES/itemsize] = src[i : ...] as one non-temporal vector
    store; dst + i must be VECTOR_BYTES-aligned and both arrays contiguous."""

    def codegen(context, builder, sig, args):
        dst_data = context.make_array(sig.args[0])(context, builder, args[0]).data
        src_data = context.make_array(sig.args[1])(context, builder, args[1]).data
        elem = context.get_data_type(sig.args[0].dtype)
        size = context.get_abi_sizeof(elem)
        vec = llvmir.VectorType(elem, VECTOR_BYTES // size).as_pointer()
        value = builder.load(builder.bitcast(builder.gep(src_data, [args[2]]), vec), align=size)
        store = builder.store(value, builder.bitcast(builder.gep(dst_data, [args[2]]), vec), align=VECTOR_BYTES)
        if ENABLED:
            store.set_metadata("nontemporal", builder.module.add_metadata([llvmir.Constant(llvmir.IntType(32), 1)]))
        return context.get_dummy_value()

    if isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype:
        return types.void(dst, src, types.intp), codegen


@intrinsic
def fence(typingctx):
    """Order the streamed stores before whatever follows (x86 ``sfence``)."""

    def codegen(context, builder, sig, args):
        if ENABLED:
            fn = cgutils.get_or_insert_function(builder.module, llvmir.FunctionType(llvmir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@ijit
def buffer(n, dtype):
    """An n-element buffer that starts on a VECTOR_BYTES boundary."""
    raw = np.empty(n + VECTOR_BYTES, dtype)
    first = (-_address(raw) % VECTOR_BYTES) // raw.itemsize
    return raw[first : first + n]


@ijit
def aligned_head(dst):
    """How many leading elements of ``dst`` to write plainly before it can be
    streamed from a VECTOR_BYTES boundary: 0 to VECTOR_BYTES/itemsize - 1, or -1
    where it cannot be streamed at all (strided, or not element-aligned)."""
    size = dst.itemsize
    addr = _address(dst)
    if dst.strides[0] != size or addr % size != 0:
        return -1
    return (-addr % VECTOR_BYTES) // size


@ijit
def write_aligned(dst, src):
    """dst[:] = src, both contiguous and starting on a VECTOR_BYTES boundary:
    whole vectors streamed, the rest plain."""
    n = src.shape[0]
    w = VECTOR_BYTES // dst.itemsize
    i = 0
    while i + w <= n:
        _store_line(dst, src, i)
        i += w
    for j in range(i, n):
        dst[j] = src[j]
