"""The one timing helper, and the bandwidth floor (a plain copy).

``median_seconds(calls, reps, clock)`` times several callables in turns, each
rotating through its input sets so that no call finds its inputs in cache from
the previous one, and returns each one's median. On the CPU each
call is timed with ``perf_counter``; on a GPU with CUDA events around the call
after a synchronize, so the figure is device time.
"""

import statistics
import time


def _minor_faults():
    try:
        import resource
    except ImportError:  # not on Windows: no fault counts, no retries
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class CpuClock:
    settle = 0.005  # seconds: longer than thread pools spin after a call
    fault_pages = 256  # a call that faulted on more pages got fresh memory for its output

    def __init__(self):
        self.faulted = False

    def time(self, call):
        f0 = _minor_faults()
        t0 = time.perf_counter()
        call()
        t = time.perf_counter() - t0
        self.faulted = _minor_faults() - f0 > self.fault_pages
        return t

    def sync(self):
        pass


class CudaClock:
    """CUDA events from CuPy, or from PyTorch when CuPy is absent."""

    settle = 0.0
    faulted = False

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


def median_seconds(calls, reps, clock, rounds=3, slow=0.05):
    """{name: (median seconds, fraction of samples that still took page faults,
    each round's median)} for ``calls`` = {name: (fn, input sets)}.

    The calls take turns over ``rounds`` rounds, so that a slow spell of a shared
    machine hits all of them instead of whichever was running: in each round
    every call, after ``clock.settle`` seconds of idleness, is warmed up once per
    input set and then timed ``ceil(reps / rounds)`` times; a call whose first
    warm-up took over ``slow`` seconds per set is timed once per round and warmed
    up in the first round only (slow peers would otherwise dominate the run). The
    pause matters: CPU libraries keep their thread pools spinning for a while
    after a call (OpenMP, TBB), which slows whichever library runs next
    (measured: PyTorch right after gpu_act ran up to 10x slower); the warm-up
    then wakes the threads up again.
    """
    samples = {name: [[] for _ in range(rounds)] for name in calls}
    faulted = {name: 0 for name in calls}
    is_slow = {}
    for r in range(rounds):
        for name, (fn, sets) in calls.items():
            time.sleep(clock.settle)
            if r == 0 or not is_slow[name]:
                warm = clock.time(lambda: [fn(*args) for args in sets])
                is_slow.setdefault(name, warm > slow * len(sets))
            for i in range(1 if is_slow[name] else -(-reps // rounds)):
                t, f = _sample(clock, lambda: fn(*sets[i % len(sets)]))
                samples[name][r].append(t)
                faulted[name] += f
    out = {}
    for name, per_round in samples.items():
        every = [t for v in per_round for t in v]
        out[name] = (statistics.median(every), faulted[name] / len(every),
                     tuple(statistics.median(v) for v in per_round))
    return out


def _sample(clock, call, tries=3):
    """(seconds, faulted) of one call. A call that took page faults got fresh pages
    for its output from the allocator (glibc's heap grows when an aligned large
    block does not fit a freed one): that is the allocator's cost, not the op's,
    so such a call is timed again, up to ``tries`` times in all."""
    for _ in range(tries):
        t = clock.time(call)
        if not clock.faulted:
            return t, False
    return t, True


def rotation(nbytes, budget):
    """How many input sets of ``nbytes`` to rotate through: enough to exceed
    ``budget`` bytes (the caches), at most 4."""
    return max(1, min(4, -(-budget // max(nbytes, 1))))
