"""Warp shuffles for the Numba CUDA simulator (test-only emulation).

The simulator runs every CUDA thread of a block as a Python thread but has no
``shfl_*_sync``. ``install()`` adds ``shfl_xor_sync`` to its fake ``cuda``
module: each thread publishes its value, waits at a block barrier, reads its
partner's (``lane ^ lane_mask``, which stays inside the warp), and waits
again before the slot can be reused. This matches the hardware instruction
when, as in gpu_act's warp kernels, whole warps take the same path (a warp
that has returned no longer counts at the simulator's barrier).
"""

import threading


def _shfl_xor_sync(self, mask, value, lane_mask):
    assert mask == 0xFFFFFFFF, "gpu_act's kernels shuffle with the full warp only"
    me = threading.current_thread()
    slots = me._manager.__dict__.setdefault("_shfl_slots", {})
    slots[me.thread_id] = value
    me.syncthreads()
    other = slots[me.thread_id ^ lane_mask]
    me.syncthreads()
    return other


def install():
    """Add shfl_xor_sync to the simulator (no-op outside it)."""
    from gpu_act import _cuda

    if not _cuda.SIMULATOR:
        return
    from numba.cuda.simulator.kernelapi import FakeCUDAModule

    FakeCUDAModule.shfl_xor_sync = _shfl_xor_sync
