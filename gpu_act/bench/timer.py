"""The one timing helper, and the bandwidth floor (a plain copy).

``median_seconds(calls, reps, clock)`` times several callables one after the
other, each rotating through its input sets so that no call finds its inputs in
cache from the previous one, and returns each one's median. On the CPU each
call is timed with ``perf_counter``; on a GPU with CUDA events around the call
after a synchronize, so the figure is device time.
"""

import statistics
import time


class CpuClock:
    settle = 0.1  # seconds: longer than thread pools spin after a call

    def time(self, call):
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0

    def sync(self):
        pass


class CudaClock:
    """CUDA events from CuPy, or from PyTorch when CuPy is absent."""

    settle = 0.0

    def __init__(self):
        try:
            import cupy

            self._event = cupy.cuda.Event
            self._sync = cupy.cuda.runtime.deviceSynchronize
            self._elapsed = lambda a, b: cupy.cuda.get_elapsed_time(a, b) / 1e3
        except ImportError:
            import torch

            self._event = lambda: torch.cuda.Event(enable_timing=True)
            self._sync = torch.cuda.synchronize
            self._elapsed = lambda a, b: a.elapsed_time(b) / 1e3

    def time(self, call):
        start, stop = self._event(), self._event()
        self._sync()
        start.record()
        call()
        stop.record()
        stop.synchronize()
        return self._elapsed(start, stop)

    def sync(self):
        self._sync()


def median_seconds(calls, reps, clock):
    """{name: median seconds} for ``calls`` = {name: (fn, input sets)}.

    Each call is warmed up once per input set right before its ``reps`` timed
    calls. Calls are not interleaved, and each starts after ``clock.settle``
    seconds of idleness: CPU libraries keep their thread pools spinning for a
    while after a call (OpenMP, TBB), which would slow whichever library ran
    next (measured: PyTorch right after gpu_act ran up to 10x slower).
    """
    out = {}
    for name, (fn, sets) in calls.items():
        time.sleep(clock.settle)
        for args in sets:
            fn(*args)
        clock.sync()
        out[name] = statistics.median(clock.time(lambda: fn(*sets[i % len(sets)])) for i in range(reps))
    return out


def rotation(nbytes, budget):
    """How many input sets of ``nbytes`` to rotate through: enough to exceed
    ``budget`` bytes (the caches), at most 4."""
    return max(1, min(4, -(-budget // max(nbytes, 1))))
