"""Kernel cache, launch configurations and kernel operands, in one place.

- ``cached(key, build)``: kernel factories run once per key (op, dtype, variant).
- ``formulas(ctype)``: the registry's scalar formulas as CUDA device functions.
- ``elementwise_config`` / ``rowwise_config``: THE functions that choose the
  variant and launch configuration (cached per shape class and device).
- ``flat_operands`` / ``strided_operands`` / ``row_operands``: zero-copy
  kernel arguments. Every array is passed as a 1-D view of the memory it spans
  plus the element offset of its first element and element strides, after
  merging dimensions that all operands lay out contiguously.
- ``launch(kernel, config, args)`` on the call's stream and device.
"""

import functools
import pathlib
import threading
from collections import namedtuple

import numpy as np

from ... import _compile, _cuda
from . import _arrays

_lock = threading.RLock()
_built = {}


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


SOURCE_HASH = _compile.sources_hash(pathlib.Path(__file__).parent)


def kernel(template, bindings, tag, ctype, variant):
    """``template`` instantiated with ``bindings`` (float literals in ``ctype``),
    compiled for blocks of at most ``max_threads(variant, ...)`` threads."""
    ctype = np.dtype(ctype)
    tag = f"{tag}.{ctype.name}.{SOURCE_HASH}"
    threads = max_threads(variant, ctype.itemsize)
    return _compile.instantiate(template, bindings, tag, lambda fn: _cuda.kernel(fn, threads), ctype)


# ---------------------------------------------------------------- launch configurations
Config = namedtuple("Config", "variant grid block shared")

WARP = 32
WARP_ROWS_MAX = 1024  # rows up to this length: one warp per row
ROWS_PER_BLOCK = 4  # warps (rows) per block in the warp variant
THREAD_BLOCK = 128
ELEMENTWISE_BLOCK = 256
REDUCE_BLOCK = 256
BLOCK_MAX = 1024  # threads of a block that reduces one row
BLOCKS_PER_SM = 8  # grid-stride loops: enough blocks to fill every SM

# The most threads per block each kernel variant is launched with (row blocks:
# ``block_max``): its compiled launch bound where it matters
# (``_cuda.kernel``), so registers x threads stays within the SM's 65,536.
MAX_THREADS = {
    "elementwise": ELEMENTWISE_BLOCK,
    "reduce": REDUCE_BLOCK,
    "thread": THREAD_BLOCK,
    "warp": ROWS_PER_BLOCK * WARP,
}
# static shared memory of any row kernel (its block reductions: at most three
# arrays of one float64 per warp); block-shared rows get what is left of the
# device's per-block shared memory
STATIC_SHARED = 1024


def _pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


@functools.lru_cache(maxsize=4096)
def elementwise_config(n, lim):
    blocks = min(-(-n // ELEMENTWISE_BLOCK), lim.sm_count * BLOCKS_PER_SM)
    return Config("elementwise", blocks, ELEMENTWISE_BLOCK, 0)


def row_layout(a, axis):
    """How the rows of ``a`` along ``axis`` lie in memory: "unit" (the axis is
    contiguous), "spatial" (it is not, but rows follow each other element by
    element: the last other dimension is contiguous, as the channel axis of an
    NCHW array), else "strided"."""
    size = a.dtype.itemsize
    if a.shape[axis] == 1 or a.strides[axis] == size:
        return "unit"
    last = [s for k, (n, s) in enumerate(zip(a.shape, a.strides)) if k != axis % a.ndim and n > 1][-1:]
    return "spatial" if last and abs(last[0]) == size else "strided"


def block_max(compute_size):
    """Threads of a block that reduces one row: 512 for float64 rows, whose
    kernels need more than the 64 registers 1024 threads leave."""
    return BLOCK_MAX if compute_size <= 4 else BLOCK_MAX // 2


def max_threads(variant, compute_size):
    """The most threads per block ``variant``'s kernels are launched with."""
    if variant in ("block", "block-shared"):
        return block_max(compute_size)
    return MAX_THREADS[variant]


@functools.lru_cache(maxsize=4096)
def rowwise_config(op, rows, n, layout, compute_size, lim):
    """The variant for ``op`` ("softmax", "softmax_backward", "cross_entropy")
    on ``rows`` rows of length ``n`` laid out as ``layout`` (``row_layout``):

    - "thread": one thread per row, for "spatial" rows when there are enough to
      fill a warp (neighbouring threads then read neighbouring rows);
    - "warp": one warp per row for n <= 1024 (shuffle reductions);
    - "block-shared" (softmax forward): one block per row, the row kept in
      shared memory so it is read from global memory once;
    - "block": one block per row, any length (online normaliser for softmax:
      running max and rescaled sum in one pass, merged across threads).
    Warps and blocks read a row through its stride when it is not contiguous.
    """
    if layout == "spatial" and rows >= WARP:
        return Config("thread", -(-rows // THREAD_BLOCK), THREAD_BLOCK, 0)
    if n <= WARP_ROWS_MAX:
        return Config("warp", -(-rows // ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0)
    threads = min(lim.max_threads, block_max(compute_size), max(128, _pow2_at_least(-(-n // 16))))
    row_bytes = n * compute_size
    if op == "softmax" and row_bytes + STATIC_SHARED <= lim.shared_per_block:
        return Config("block-shared", rows, threads, row_bytes)
    return Config("block", rows, threads, 0)


def limits(ctx):
    return _cuda.limits(ctx.device)


def launch(ctx, k, config, args):
    """Kernel ``k`` with ``config`` on the call's stream (the caller holds the call's device current)."""
    k[config.grid, config.block, ctx.stream, config.shared](*args)


# ---------------------------------------------------------------- operands
_views = {}
_VIEWS_MAX = 512


def _flat_view(ctx, a, lo, nbytes):
    """A 1-D array over [lo, lo + nbytes) of a's memory (cached by address:
    views hold no reference, the caller's arrays keep the memory alive)."""
    if _cuda.SIMULATOR:
        return _cuda.flat(a.owner, a.ptr, lo, nbytes, a.dtype)
    key = (lo, nbytes, a.dtype.char, ctx.device)
    v = _views.get(key)
    if v is None:
        if len(_views) >= _VIEWS_MAX:
            _views.clear()
        v = _views[key] = _cuda.flat(None, a.ptr, lo, nbytes, a.dtype)
    return v


def _span(ctx, a, shape, strides):
    """(view, element offset of a's first element) for a with these byte strides."""
    size = a.dtype.itemsize
    lo = hi = a.ptr
    for n, s in zip(shape, strides):
        if s < 0:
            lo += s * (n - 1)
        else:
            hi += s * (n - 1)
    return _flat_view(ctx, a, lo, hi - lo + size), (a.ptr - lo) // size


def _elements(a, strides):
    size = a.dtype.itemsize
    if any(s % size for s in strides):
        raise ValueError(f"array strides {a.strides} are not multiples of the item size {size}")
    return tuple(s // size for s in strides)


def merge_dims(shape, strides_list):
    """(merged shape, [merged byte strides per operand]); unit dims dropped,
    neighbours merged where every operand lays them out contiguously."""
    dims = []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        st = [s[i] for s in strides_list]
        if dims and all(ps == s * n for ps, s in zip(dims[-1][1], st)):
            dims[-1] = (dims[-1][0] * n, st)
        else:
            dims.append((n, st))
    if not dims:
        dims = [(1, [0] * len(strides_list))]
    return tuple(d[0] for d in dims), [tuple(d[1][k] for d in dims) for k in range(len(strides_list))]


def elementwise_operands(ctx, arrays):
    """(contiguous, n or shape, [per-operand args]): a flat fast path when every
    operand is one dense run in the same order, else strided operands."""
    shape, strides = merge_dims(arrays[0].shape, [a.strides for a in arrays])
    if len(shape) == 1 and all(s[0] == a.dtype.itemsize for s, a in zip(strides, arrays)):
        n = shape[0]
        return True, n, [_flat_view(ctx, a, a.ptr, n * a.dtype.itemsize) for a in arrays]
    ops = []
    for a, st in zip(arrays, strides):
        view, off = _span(ctx, a, shape, st)
        ops.append((view, np.int64(off), _elements(a, st)))
    return False, shape, ops


RowOperand = namedtuple("RowOperand", "view offset outer axis")


def row_operands(ctx, arrays, axis):
    """(outer shape, [RowOperand]): rows are indexed in C order over every dim
    but ``axis``; ``axis`` (None for arrays without it, e.g. index targets or
    per-row losses) is walked with stride ``RowOperand.axis``."""
    outer_strides = []
    for a in arrays:
        st = list(a.strides)
        if axis is not None and len(st) == len(arrays[0].shape):
            del st[axis]
        outer_strides.append(st)
    outer_shape = [n for i, n in enumerate(arrays[0].shape) if i != axis]
    shape, merged = merge_dims(outer_shape, outer_strides)
    ops = []
    for a, st in zip(arrays, merged):
        has_axis = axis is not None and a.ndim == arrays[0].ndim
        if has_axis:
            full_shape = shape + (a.shape[axis],)
            full_st = st + (a.strides[axis],)
        else:
            full_shape, full_st = shape, st
        view, off = _span(ctx, a, full_shape, full_st)
        el = _elements(a, full_st)
        ops.append(RowOperand(view, np.int64(off), el[: len(shape)], np.int64(el[-1] if has_axis else 0)))
    return shape, ops


def overlaps(out, inputs):
    """True when ``out`` shares memory with an input other than as the very same view."""
    lo, hi = _bounds(out)
    for a in inputs:
        alo, ahi = _bounds(a)
        if alo < hi and lo < ahi and not (a.ptr == out.ptr and a.strides == out.strides and a.shape == out.shape):
            return True
    return False


def _bounds(a):
    lo = hi = a.ptr
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += s * (n - 1)
        else:
            hi += s * (n - 1)
    return lo, hi + a.dtype.itemsize


def staged(ctx, out, inputs, run):
    """``run(target)`` with target = out, or a temporary copied into out when
    out partially overlaps an input."""
    if not overlaps(out, inputs):
        run(out)
        return
    from .elementwise import convert

    tmp = _arrays.empty(ctx, out.shape, out.dtype)
    run(tmp)
    convert(ctx, tmp, out)


def contiguous_view(ctx, a):
    """A 1-D view of C-contiguous ``a``."""
    return _flat_view(ctx, a, a.ptr, a.size * a.dtype.itemsize)


@functools.lru_cache(maxsize=4096)
def reduction_config(groups):
    """One block per group of a sum (``reduce.channel_sum``)."""
    return Config("reduce", groups, REDUCE_BLOCK, 0)
