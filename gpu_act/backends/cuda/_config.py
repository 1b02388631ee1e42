"""Launch configurations of the CUDA backend: ``plan`` is the one function that
chooses them (variant, grid, block, dynamic shared memory), from the op, the
rows and their layout, the compute type and the device's limits."""

import functools
from collections import namedtuple

from ... import _cuda

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
# static shared memory of any row kernel (its block reductions' slots, one value
# per warp each); block-shared rows get what is left of the device's per-block
# shared memory. numba-cuda shares one slot array per reduction helper (at most
# 512 bytes); numba-cuda-mlir inlines device functions before lowering, so each
# call site gets its own (sparsemax's forward: 1,800 bytes in float64)
STATIC_SHARED = 2048
# row ops with a mask ("_masked") run the kernels that read one
ROW_OPS = ("softmax", "softmax_backward", "logsumexp", "logsumexp_backward", "cross_entropy")
ROW_OPS += tuple(op + "_masked" for op in ROW_OPS)


def _pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


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
def plan(op, rows, n, layout, compute_size, lim):
    """The launch of ``op`` over ``rows`` rows of ``n`` elements laid out as
    ``layout`` (``row_layout``), computing in a type of ``compute_size`` bytes,
    on a device with limits ``lim``:

    - "elementwise" (``rows`` = 1, ``n`` items: elementwise ops, maxout groups,
      target checks, fills): grid-stride loops over enough blocks to fill the
      device;
    - "reduce" (``channel_sum``, ``total``): one block per row;
    - the row ops (``ROW_OPS``), one of the variants
      - "thread": one thread per row, for "spatial" rows when there are enough
        to fill a warp (neighbouring threads then read neighbouring rows);
      - "warp": one warp per row for n <= 1024 (shuffle reductions);
      - "block-shared" (softmax forward, with or without a mask): one block
        per row, the row kept in shared memory so it is read from global
        memory once;
      - "block": one block per row, any length (online normaliser for
        softmax: running max and rescaled sum in one pass, merged across
        threads).
      Warps and blocks read a row through its stride when it is not contiguous.
    """
    if op == "elementwise":
        return Config("elementwise", min(-(-n // ELEMENTWISE_BLOCK), lim.sm_count * BLOCKS_PER_SM), ELEMENTWISE_BLOCK, 0)
    if op == "reduce":
        return Config("reduce", rows, REDUCE_BLOCK, 0)
    if op not in ROW_OPS:
        raise ValueError(f"no launch plan for op {op!r}")
    if layout == "spatial" and rows >= WARP:
        return Config("thread", -(-rows // THREAD_BLOCK), THREAD_BLOCK, 0)
    if n <= WARP_ROWS_MAX:
        return Config("warp", -(-rows // ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0)
    threads = min(lim.max_threads, block_max(compute_size), max(128, _pow2_at_least(-(-n // 16))))
    row_bytes = n * compute_size
    if op in ("softmax", "softmax_masked") and row_bytes + STATIC_SHARED <= lim.shared_per_block:
        return Config("block-shared", rows, threads, row_bytes)
    return Config("block", rows, threads, 0)


def limits(ctx):
    """The launch limits of the call's device."""
    return _cuda.limits(ctx.device)
