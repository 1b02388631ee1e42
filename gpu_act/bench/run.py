"""The driver: check, then time every (op, shape, dtype) on every peer.

All figures of one report come from one run: each case's copy floor is timed
right before its peers, and ratios are only ever taken between figures of the
same run. Outputs are allocated by each call, as users call these functions;
on glibc the allocator is told to keep freed memory (``mallopt``) so that no
provider pays page faults on its fresh output.
"""

import ctypes
import sys
from dataclasses import asdict, dataclass

import numpy as np

from . import check, machine, peers, timer
from .ops import ALL, ELEMENTWISE_SIZE, SWEEP_COLS, SWEEP_ELEMENTS

DEFAULT_DTYPES = ("float32",)
FULL_DTYPES = ("float32", "float16")
CPU_CACHE_BYTES = 256 << 20  # rotate inputs until together they exceed this (several times a CPU L3)
GPU_CACHE_BYTES = 256 << 20  # and the GPU's L2
PREFAULT_MAX = 1 << 30
OVERHEAD_OPS = ("relu", "softmax")
OVERHEAD_SIZE = 1024
# an op's default shapes above this many elements are timed on GPUs only:
# cross_entropy_capped's 8192x128256 holds 4.2 GB of float32 logits, and the NumPy
# and PyTorch compositions several temporaries of that size (more than a CPU
# machine's memory, seconds a call). Named in --shapes, a shape is timed everywhere.
CPU_MAX_ELEMENTS = 1 << 28


@dataclass
class Options:
    ops: tuple = tuple(ALL)
    shapes: tuple = ()  # (rows, cols) shapes of every row-wise op; empty: each op's own (Op.shapes)
    sweep: tuple = SWEEP_COLS
    sweep_ops: tuple = ("softmax", "log_softmax")
    size: int = ELEMENTWISE_SIZE
    dtypes: tuple = DEFAULT_DTYPES
    peers: tuple = ()  # peers to keep besides gpu_act, which is always timed; empty: all available
    reps: int = 6
    gpu: bool = True
    cpu: bool = True  # False: time and check the GPU peers only
    check: bool = True
    overhead_reps: int = 200


@dataclass
class Case:
    op: str
    shape: tuple
    dtype: str
    section: str  # "shapes", "sweep" or "elementwise"


def cases(o, device):
    """The cases timed on ``device`` ("cpu" or "gpu")."""
    out = []
    for dt in o.dtypes:
        for name in o.ops:
            op = ALL[name]
            if op.shapes is None:
                out.append(Case(name, (o.size,), dt, "elementwise"))
                continue
            # named shapes replace the op's own where they have its rank (rows x cols)
            named = [s for s in o.shapes if len(s) == len(op.shapes[0])]
            shapes = named or [s for s in op.shapes if device != "cpu" or np.prod(s) <= CPU_MAX_ELEMENTS]
            out += [Case(name, s, dt, "shapes") for s in shapes]
            if name in o.sweep_ops:
                out += [Case(name, (max(1, SWEEP_ELEMENTS // c), c), dt, "sweep") for c in o.sweep]
    return out


def keep_freed_memory(prefault_bytes=0):
    """glibc: serve every allocation from the heap, never give it back, and touch
    ``prefault_bytes`` of heap once up front, so that the output each call
    allocates lands on pages already mapped: no provider pays page faults. Without
    the touch the heap still grows for a while, and a call that gets fresh pages
    pays for them (PyTorch's 16,384 faults on a new 64 MB output cost it 15-25 ms,
    several times the op itself)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    libc.malloc.restype = ctypes.c_void_p
    block = libc.malloc(ctypes.c_size_t(prefault_bytes)) if prefault_bytes else None
    if block:
        ctypes.memset(block, 0, prefault_bytes)
        libc.free(ctypes.c_void_p(block))


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total, stream=sys.stderr, width=30):
        self.total, self.done, self.stream, self.width = max(total, 1), 0, stream, width
        self.tty = stream.isatty()

    def step(self, what=""):
        self.done += 1
        filled = self.width * self.done // self.total
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {what}"
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(110))
        elif self.done == self.total or self.done % max(1, self.total // 20) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class HostArrays:
    """Host inputs and copy buffers, made once and shared by the cases that take the
    same kind (every elementwise op of one arity, shape and dtype): making 16M-element
    inputs costs more than timing most ops on them. Holds the last few kinds only."""

    def __init__(self, keep=4):
        self.keep, self.made = keep, {}

    def get(self, key, make):
        if key not in self.made:
            if len(self.made) >= self.keep:
                self.made.pop(next(iter(self.made)))
            self.made[key] = make()
        return self.made[key]

    def inputs(self, op, shape, dtype, nsets):
        kind = op.arity if op.group == "elementwise" else op.name
        return self.get(
            ("inputs", kind, shape, dtype, nsets),
            lambda: [op.inputs(shape, dtype, np.random.default_rng(i)) for i in range(nsets)],
        )

    def copy_buffers(self, nbytes, nsets):
        return self.get(
            ("copy", nbytes, nsets),
            lambda: [(np.zeros(nbytes, np.uint8), np.empty(nbytes, np.uint8)) for _ in range(nsets)],
        )


def _time_case(case, group, clock, o, host_arrays, step):
    """Copy floor and every peer of one device on one case, timed side by side."""
    op = ALL[case.op]
    traffic = op.traffic(case.shape, case.dtype)
    nsets = timer.rotation(traffic, CPU_CACHE_BYTES if group[0].device == "cpu" else GPU_CACHE_BYTES)
    host = host_arrays.inputs(op, case.shape, case.dtype, nsets)
    to = group[0].to
    copy = [to(*bufs) for bufs in host_arrays.copy_buffers(traffic // 2, nsets)]
    calls = {"copy": (peers.bandwidth_copy(group[0].device, to), copy)}
    records = []
    for peer in group:
        fn = peer.impl(case.op) if peers.applicable(peer, case.op, case.shape) else None
        if fn is None:
            continue
        try:  # a peer that fails on a case is reported, not fatal
            sets = [peer.to(*h) for h in host]
            fn(*sets[0])
            calls[peer.name] = (fn, sets)
        except Exception as exc:
            records.append({**_record(case, peer.name, peer.device, None, traffic), "error": f"{type(exc).__name__}: {exc}"})
    timed = timer.median_seconds(calls, o.reps, clock)
    step(f"{case.op} {'x'.join(map(str, case.shape))} {case.dtype}")
    return [_record(case, name, group[0].device, t, traffic, f, rounds) for name, (t, f, rounds) in timed.items()] + records


def _record(case, provider, device, seconds, traffic, faulted=0.0, rounds=()):
    return {
        "op": case.op,
        "section": case.section,
        "shape": list(case.shape),
        "dtype": case.dtype,
        "provider": provider,
        "device": device,
        "seconds": seconds,
        "bytes": traffic,
        "gbps": None if not seconds else traffic / seconds / 1e9,
        "page_faulted": faulted,  # fraction of timed calls that took page faults on every try
        "round_seconds": list(rounds),  # each round's median: the spread of a ratio between providers
    }


def _overhead(group, clock, o):
    """Per-call wall time on a tiny array: what a user pays per call."""
    import time

    rows = []
    for name in OVERHEAD_OPS:
        op = ALL[name]
        shape = (OVERHEAD_SIZE,) if op.shapes is None else (1, OVERHEAD_SIZE)
        host = op.inputs(shape, "float32", np.random.default_rng(1))
        for peer in group:
            fn = peer.impl(name)
            if fn is None:
                continue
            args = peer.to(*host)
            fn(*args)
            clock.sync()
            times = []
            for _ in range(o.overhead_reps):
                t0 = time.perf_counter()
                fn(*args)
                clock.sync()
                times.append(time.perf_counter() - t0)
            rows.append({"op": name, "size": OVERHEAD_SIZE, "provider": peer.name, "device": peer.device,
                         "seconds": float(np.median(times))})
    return rows


def run(o, stream=sys.stderr):
    """Everything the report needs, as one JSON-able dict."""
    keep_freed_memory()
    found = peers.discover(device_peers=o.gpu)
    # gpu_act's own backends stay: the copy floor is timed on their arrays, and a
    # ratio needs them
    chosen = [p for p in found if (p.gpu_act or not o.peers or p.name in o.peers) and (o.cpu or p.device != "cpu")]
    groups = {}
    for p in chosen:
        groups.setdefault(p.device, []).append(p)
    todo = {device: cases(o, device) for device in groups}
    n_checks = len([p for p in chosen if p.gpu_act]) * len(o.ops) * len(o.dtypes) if o.check else 0
    n_timed = sum(len(c) for c in todo.values())
    bar = Progress(n_checks + n_timed, stream)
    checks = check.run(chosen, o.ops, o.dtypes, lambda: bar.step("check")) if o.check else []
    # after the check has compiled every kernel: room for the inputs, copy buffers and
    # outputs alive at once (HostArrays keeps 4 kinds)
    largest = max((ALL[c.op].traffic(c.shape, c.dtype) for cs in todo.values() for c in cs), default=0)
    keep_freed_memory(min(PREFAULT_MAX, 6 * largest))
    results, overhead = [], []
    for device, group in groups.items():
        clock = timer.CpuClock() if device == "cpu" else timer.CudaClock()
        host_arrays = HostArrays()
        for case in todo[device]:
            results += _time_case(case, group, clock, o, host_arrays, bar.step)
        overhead += _overhead(group, clock, o)
    bar.close()
    options = asdict(o)
    return {
        "machine": machine.describe(),
        "options": options,
        "peers": {p.name: {"device": p.device, "version": p.version} for p in chosen},
        "checks": checks,
        "results": results,
        "overhead": overhead,
    }

