"""Launch configurations of the CuPy backend: ``plan`` is the one function
that chooses them.

``team_for`` picks who reduces a row:
- "thread": the reduced axis is strided and neighbouring rows sit side by side
  in memory (a reduction over a non-last axis of a C-ordered array): thread
  t takes row t, so a warp reads 32 adjacent elements at each step;
- "warp": rows of up to ``WARP_MAX`` elements, one warp each (shuffles);
- "block": longer rows, one block each (shuffles + shared memory); no upper limit.
``plan`` adds the grid and block sizes, for the row kernels and for the
kernels with one thread per item (maxout). Kernels loop over rows or items
(grid-stride), so the grid is capped at what the device keeps resident.
``shared_row`` is the dynamic shared memory of a block team that keeps its
row on chip (the softmax and sparsemax forwards), so x is read once.
"""

import functools

import cupy

WARP_MAX = 1024
THREADS = 256  # per block, thread and warp teams
# per block, block team, by the compute type's size: the kernels' launch bounds
# (TeamThreads in kernels/rows.cuh; tests/toolchain/test_ptxas_resources.py checks they fit)
BLOCK_MIN, BLOCK_MAX = 128, {4: 1024, 8: 512}
RESIDENT_THREADS_PER_SM = 2048


@functools.lru_cache(maxsize=None)
def _sms(device_id):
    return cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]


def team_for(rows, n, elem_stride, row_stride):
    """"thread", "warp" or "block" for ``rows`` rows of ``n`` elements."""
    if elem_stride != 1 and abs(row_stride) == 1 and rows >= 32:
        return "thread"
    return "warp" if n <= WARP_MAX else "block"


def plan(op, rows, n, elem_stride=1, row_stride=0, compute_size=4):
    """(team, grid, block) on the current device for ``op``: "rows", a row-wise
    kernel over ``rows`` rows of ``n`` elements computing in a type of
    ``compute_size`` bytes; "items", one thread per item over ``rows`` items
    (team "thread")."""
    resident = _sms(cupy.cuda.Device().id) * RESIDENT_THREADS_PER_SM
    team = "thread" if op == "items" else team_for(rows, n, elem_stride, row_stride)
    if team == "thread":
        block = THREADS
        grid = min(-(-rows // block), resident // block)
    elif team == "warp":
        block = THREADS
        grid = min(-(-rows // (block // 32)), resident // block)
    else:
        # enough threads that each handles at most ~64 elements, 128..BLOCK_MAX
        block = min(BLOCK_MAX[compute_size], max(BLOCK_MIN, 1 << (max(n // 64, 1) - 1).bit_length()))
        grid = min(rows, resident // block)
    return team, max(grid, 1), block


# dynamic shared memory a launch may take without the opt-in attribute: 48 KiB
# for static and dynamic together, less 1 KiB for the team's own reductions
SHARED_ROW_MAX = 47 * 1024


def shared_row(team, n, compute_size):
    """Bytes of dynamic shared memory for a row of ``n`` elements of the compute
    type kept on chip by a block team: the row's, where it fits
    ``SHARED_ROW_MAX``, else 0 (the kernel then reads the row again)."""
    row_bytes = n * compute_size
    return row_bytes if team == "block" and row_bytes <= SHARED_ROW_MAX else 0
