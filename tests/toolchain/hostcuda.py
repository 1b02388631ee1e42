"""Run the CuPy backend's CUDA C kernels (kernels/*.cu) on the CPU.

What the Numba CUDA simulator is for the Numba path, this is for ``kernels/``:
the real sources (``gpu_act.kernels.source``, headers inlined, exactly what
CuPy compiles) are built for the host with g++ against ``tests/toolchain/cuda_host.h``
(the CUDA execution model: fibers per thread, barriers, warp shuffles,
``__half``, ``__nv_bfloat16``) and ``tests/toolchain/host_include/`` (``cuda_fp16.h``,
``cuda_bf16.h``), into one shared library per source and instance list,
cached by content hash: g++ -E with cuda_host.h, ``rewrite`` (shared memory
and launch bounds, which the kernels' own macros may spell), g++ -O1. Kernels
are then called as CuPy calls a ``RawKernel``::

    mod = build(kernels.source("softmax.cu"), kernels.INSTANCES[("softmax.cu", "float32")], cache)
    fn = mod.get_function("ga::softmax_fwd<float, 1, false>")
    fn((grid,), (block,), (x, y, np.int64(rows), ..., np.float32(inv_t)))   # NumPy arrays as device pointers

Every call checks what a real launch would silently get wrong:

- arguments against the kernel's parameter types (read from the compiled
  instance): the count, each pointer's element type (the array's dtype), each
  scalar's exact type (np.int64 for long long, np.float32 for float, ...;
  Python int/float/bool count as int64/float64/bool, as CuPy passes them);
- the launch under several schedules of the block's threads between barriers
  (``SCHEDULES``: lowest thread first, highest first, a seeded random choice
  at every switch; blocks in grid order, reversed, shuffled), starting each
  from the same memory: the results must be bit-identical, else ``RaceError``;
- no byte outside the elements of the arrays passed (within the buffers they
  are views of) changes, nor any element of an array passed only for a
  ``const T*`` parameter, else ``OutOfBoundsWrite``;
- the emulation's own checks (``LaunchError``): divergent or partial
  barriers, shuffles in a partial warp, a block over 1024 threads or over the
  kernel's ``__launch_bounds__``.

``backend(function, sms, cache_dir)`` loads the CuPy backend's modules
(gpu_act/backends/cupy/__init__.py and its rowwise, elementwise, _config,
_layout) themselves against a NumPy stand-in for CuPy (``cupy`` is never
imported; its ``empty`` gives ``POISON``-filled arrays in ``GUARD``-ed
buffers), with ``_modules.function`` = ``function`` (returning these host
kernels) and ``sms`` multiprocessors, so the launchers' argument conventions
and grids run unchanged. Its ``ElementwiseKernel`` (``HostElementwiseKernel``)
runs an elementwise operation as CuPy does: the same parameter conventions,
the inputs broadcast to the outputs' shape, each operand's element a
reference named as its parameter, the preamble before the kernel; built
into ``cache_dir`` and launched as the kernels above (same checks).
``place`` builds inputs and outputs in any layout inside guarded buffers.
"""

from __future__ import annotations

import builtins
import ctypes
import fcntl
import functools
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import threading
import types
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy < 2
    byte_bounds = np.byte_bounds

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_host.h"
INCLUDE = HERE / "host_include"
GXX = shutil.which("g++")
FLAGS = ("-std=c++17", "-O1", "-g0", "-shared", "-fPIC", "-fvisibility=hidden", "-fno-strict-aliasing",
         "-Wall", "-Werror", "-Wno-unknown-pragmas")

POLICIES = {"forward": 0, "reverse": 1, "random": 2, "fifo": 3}
SCHEDULES = (("forward", 0), ("reverse", 0), ("random", 1))

_lock = threading.Lock()  # one launch at a time (shared memory is static per library)


class LaunchError(RuntimeError):
    """The launch itself failed (what CUDA would report, or a deadlock)."""


class RaceError(AssertionError):
    """Two schedules of the same launch left different memory."""


class OutOfBoundsWrite(AssertionError):
    """A launch changed memory outside the elements of the arrays it was given."""


# ------------------------------------------------------------------ source rewriting
# The kernels' own macros may spell __shared__ and __launch_bounds__ (GA_BOUNDS in
# kernels/rows.cuh), so the rewrite runs on the preprocessed translation unit, where
# cuda_host.h has turned them into these markers
_MARKERS = re.compile(r"\b__gahost_shared__\b|\b__gahost_launch_bounds__\s*\(|[{}]")
_QUOTED = re.compile(r'"(?:\\.|[^"\\\n])*"|' + r"'(?:\\.|[^'\\\n])*'")
_LINE_MARKER = re.compile(r'^#\s*\d+\s+"((?:\\.|[^"\\])*)"', re.M)


def _main_file_only(text, main):
    """``text`` (preprocessed) with everything but ``main``'s own lines, and the
    contents of string and character literals, blanked (same length)."""
    out = list(text)
    pos, current = 0, None
    for m in _LINE_MARKER.finditer(text):
        if current != main:
            for k in range(pos, m.start()):
                if out[k] != "\n":
                    out[k] = " "
        current = m.group(1)
        line_end = text.find("\n", m.start())
        pos = len(text) if line_end < 0 else line_end
        for k in range(m.start(), pos):
            out[k] = " "
    if current != main:
        for k in range(pos, len(text)):
            if out[k] != "\n":
                out[k] = " "
    masked = "".join(out)
    return _QUOTED.sub(lambda q: q.group(0)[0] + " " * (len(q.group(0)) - 2) + q.group(0)[-1], masked)


def _matching_paren(text, open_pos):
    depth = 0
    for k in range(open_pos, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced parentheses")


def _strip_attributes(text):
    """``text`` without its ``__attribute__((...))`` specifiers."""
    while True:
        m = re.search(r"__attribute__\s*\(", text)
        if m is None:
            return text
        text = text[:m.start()] + " " + text[_matching_paren(text, m.end() - 1) + 1:]


def _first_argument(args):
    depth = 0
    for k, c in enumerate(args):
        depth += 1 if c in "(<[" else (-1 if c in ")>]" else 0)
        if c == "," and depth == 0:
            return args[:k].strip()
    return args.strip()


def rewrite(text, main):
    """The preprocessed translation unit ``text`` (its own file named ``main`` in the
    line markers) with the markers of cuda_host.h resolved:

    - ``extern __shared__ T name[];`` -> a pointer to the launch's dynamic shared memory;
    - a block-scope ``__shared__ ... name[...];`` -> a static, which the first thread of
      each block to reach it fills with 0xFF bytes (uninitialised shared memory reads NaN);
      at namespace scope a plain static;
    - ``__launch_bounds__(N, ...)`` -> a check, first in the kernel's body, that the block
      has at most N threads (evaluated in the instance: N may use template parameters).
    """
    masked = _main_file_only(text, main)
    edits = []  # (start, end, replacement)
    stack = []  # per open brace: True for a namespace / extern "C" body
    for m in _MARKERS.finditer(masked):
        tok = m.group(0)
        if tok == "{":
            head = masked[max(0, m.start() - 300):m.start()]
            stack.append(bool(re.search(r'(\bnamespace\b[^;{}]*|\bextern\s*"C(\+\+)?")\s*$', head)))
        elif tok == "}":
            if stack:
                stack.pop()
        elif tok == "__gahost_shared__":
            start = max(masked.rfind(c, 0, m.start()) for c in ";{}") + 1
            end = masked.index(";", m.end())
            decl = masked[start:end]
            start += len(decl) - len(decl.lstrip())
            decl = decl.strip()
            nm = re.search(r"(\w+)\s*((?:\[[^\]]*\]\s*)*)$", decl)
            if nm is None:
                raise ValueError(f"cannot parse the shared declaration {decl!r}")
            name = nm.group(1)
            if re.match(r"extern\b", decl):
                ctype = decl[:nm.start()]
                ctype = _strip_attributes(re.sub(r"\bextern\b|\b__gahost_shared__\b", " ", ctype))
                ctype = " ".join(ctype.split())
                decl = f"{ctype}* const {name} = reinterpret_cast<{ctype}*>(::gahost::dynamic_shared())"
                edits.append((start, end, decl))
            else:
                edits.append((m.start(), m.end(), "static"))
                if any(not ns for ns in stack):
                    touch = f"::gahost::touch_shared((void*)&({name}), sizeof({name}), gahost_epoch_);"
                    edits.append((end, end, f"; {{ static unsigned long long gahost_epoch_; {touch} }}"))
        else:  # __gahost_launch_bounds__(
            close = _matching_paren(masked, m.end() - 1)
            bound = _first_argument(text[m.end():close])
            edits.append((m.start(), close + 1, ""))
            nm = re.compile(r"([A-Za-z_]\w*)\s*\(").search(masked, close + 1)
            params_end = _matching_paren(masked, nm.end() - 1)
            body = re.compile(r"\s*([{;])").match(masked, params_end + 1)
            if body and body.group(1) == "{":
                edits.append((body.end(), body.end(), f" ::gahost::check_bounds((long long)({bound}));"))
    out = text
    for s, e, r in sorted(edits, key=lambda x: (x[0], x[1]), reverse=True):
        out = out[:s] + r + out[e:]
    return out


# ------------------------------------------------------------------ build
def translation_unit(source, exprs, extra=""):
    lines = ["// generated by tests/toolchain/hostcuda.py", source, "", extra, ""]
    for k, e in enumerate(exprs):
        lines += [
            f"GAHOST_EXPORT int ga_launch_{k}(void** a, const gahost::Config* c) "
            f"{{ return gahost::launch(&{e}, a, c); }}",
            f"GAHOST_EXPORT const char* ga_signature_{k}() {{ static const std::string s = gahost::signature(&{e}); "
            f"return s.c_str(); }}",
        ]
    lines += [
        'GAHOST_EXPORT const char* ga_error() { return gahost::M().error.c_str(); }',
        "GAHOST_EXPORT void ga_stats(long long* o) { const gahost::Stats& s = gahost::stats(); o[0] = s.vec_moves; "
        "o[1] = s.block_barriers; o[2] = s.warp_syncs; o[3] = s.blocks; o[4] = s.threads; }",
        "GAHOST_EXPORT void ga_reset_stats() { gahost::stats() = gahost::Stats(); }",
    ]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def _compiler_id():
    r = subprocess.run([GXX, "--version"], capture_output=True, text=True)
    return r.stdout.splitlines()[0] if r.stdout else GXX


def _run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"g++ failed on {what}:\n{r.stderr[-6000:]}")
    return r.stdout


def build(source, exprs, cache_dir, *, extra="", flags=()):
    """The host library of ``source`` with the kernel instances ``exprs``
    (compiled once per content; concurrent builds of the same content wait for one):
    preprocessed with cuda_host.h, rewritten (``rewrite``), compiled."""
    if GXX is None:
        raise RuntimeError("g++ is not on PATH")
    tu = translation_unit(source, list(exprs), extra)
    cpp_flags = ["-std=c++17", *flags, "-I", str(INCLUDE), "-include", str(HEADER)]
    headers = [f.read_text() for f in sorted(INCLUDE.glob("*.h"))]
    h = hashlib.sha256()
    for part in (tu, HEADER.read_text(), *headers, " ".join(cpp_flags + list(FLAGS)), _compiler_id()):
        h.update(part.encode())
        h.update(b"\0")
    key = h.hexdigest()[:20]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    so = cache_dir / f"host_{key}.so"
    if not so.exists():
        with open(cache_dir / f"host_{key}.lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            if not so.exists():
                src = cache_dir / f"host_{key}.cpp"
                src.write_text(tu)
                pre = _run([GXX, "-E", *cpp_flags, str(src)], src)
                ii = cache_dir / f"host_{key}.ii"
                ii.write_text(rewrite(pre, str(src)))
                tmp = cache_dir / f"host_{key}.{os.getpid()}.so"
                _run([GXX, "-x", "c++", *FLAGS, "-o", str(tmp), str(ii)], ii)
                os.replace(tmp, so)
    return HostModule(ctypes.CDLL(str(so)), list(exprs), so)


# ------------------------------------------------------------------ calling
class _Config(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shared_bytes", ctypes.c_ulonglong),
                ("policy", ctypes.c_int), ("pad", ctypes.c_int), ("seed", ctypes.c_ulonglong)]


_SCALAR = {"f4": np.float32, "f8": np.float64, "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
           "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "b1": np.bool_}
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_POINTEE = dict(_SCALAR, f2=np.float16, bf2=BFLOAT16)


class Param:
    def __init__(self, code):
        self.code = code
        self.pointer = code.startswith("p")
        self.const = self.pointer and code.endswith("c")
        core = code[1:].rstrip("c") if self.pointer else code
        table = _POINTEE if self.pointer else _SCALAR
        if core not in table:
            raise TypeError(f"kernel parameter type {code!r} is not supported by the host harness")
        self.dtype = np.dtype(table[core])

    def __repr__(self):
        return f"{'const ' if self.const else ''}{self.dtype.name}{'*' if self.pointer else ''}"


def _dims(v):
    t = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    if not 1 <= len(t) <= 3:
        raise ValueError(f"grid/block must have 1 to 3 dimensions, got {v!r}")
    return [int(k) for k in t] + [1] * (3 - len(t))


def _root(a):
    """The array owning ``a``'s memory (through views, and as_strided's wrapper)."""
    while True:
        b = a.base
        if isinstance(b, np.ndarray):
            a = b
        elif b is not None and isinstance(getattr(b, "base", None), np.ndarray):
            a = b.base
        else:
            return a


def _span(a):
    """(lowest address, byte count) of an array's memory (contiguous owners only)."""
    lo, hi = byte_bounds(a)
    return lo, hi - lo


def _raw(lo, n):
    return np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(lo)) if n else np.zeros(0, np.uint8)


def _byte_mask(view, lo, n):
    """Boolean mask over [lo, lo + n) of the bytes of ``view``'s elements."""
    mask = np.zeros(n, bool)
    if view.size == 0:
        return mask
    off = np.array(view.__array_interface__["data"][0] - lo, dtype=np.int64)
    for size, stride in zip(view.shape, view.strides):
        off = off[..., None] + np.arange(size, dtype=np.int64) * stride
    b = off.reshape(-1)[:, None] + np.arange(view.itemsize)
    if b.min() < 0 or b.max() >= n:
        raise ValueError("an array argument reaches outside the buffer it is a view of")
    mask[b.reshape(-1)] = True
    return mask


def _scalar(v, p, k):
    if isinstance(v, np.ndarray):
        raise TypeError(f"argument {k}: an array where the kernel takes the scalar {p}")
    if isinstance(v, bool):
        v = np.bool_(v)
    elif isinstance(v, int):
        v = np.int64(v)  # as CuPy passes a Python int
    elif isinstance(v, float):
        v = np.float64(v)
    if not isinstance(v, np.generic) or v.dtype != p.dtype:
        got = type(v).__name__ if not isinstance(v, np.generic) else v.dtype.name
        raise TypeError(f"argument {k}: {got} for a {p} parameter (a real launch would read the wrong bytes)")
    return np.array([v], p.dtype)


class HostKernel:
    def __init__(self, module, k, expr):
        self.module, self.expr = module, expr
        lib = module.lib
        self._launch = getattr(lib, f"ga_launch_{k}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Config)]
        sig = getattr(lib, f"ga_signature_{k}")
        sig.restype = ctypes.c_char_p
        self.signature = sig().decode()
        self.params = [Param(c) for c in self.signature.split(",")] if self.signature else []
        self.last_stats = None

    def __repr__(self):
        return f"<host kernel {self.expr}({', '.join(map(repr, self.params))})>"

    def _pack(self, args):
        if len(args) != len(self.params):
            raise TypeError(f"{self.expr} takes {len(self.params)} arguments, got {len(args)}")
        keep, ptrs, arrays = [], [], []  # arrays: (array, written through a const pointer only)
        for k, (a, p) in enumerate(zip(args, self.params)):
            if p.pointer:
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"argument {k}: {type(a).__name__} where the kernel takes a pointer {p}")
                if a.dtype != p.dtype:
                    raise TypeError(f"argument {k}: a {a.dtype} array for a {p} parameter")
                if not a.dtype.isnative:
                    raise TypeError(f"argument {k}: non-native byte order")
                cell = ctypes.c_void_p(a.__array_interface__["data"][0])
                keep.append(cell)
                ptrs.append(ctypes.addressof(cell))
                arrays.append((a, p.const))
            else:
                buf = _scalar(a, p, k)
                keep.append(buf)
                ptrs.append(buf.ctypes.data)
        argv = (ctypes.c_void_p * max(len(ptrs), 1))(*ptrs)
        return argv, keep, arrays

    def __call__(self, grid, block, args, *, shared_mem=0, schedules=None, stream=None):
        """Launch as ``RawKernel.__call__``; raises on any failed check (module doc)."""
        argv, keep, arrays = self._pack(tuple(args))
        cfg = _Config()
        cfg.grid[:] = _dims(grid)
        cfg.block[:] = _dims(block)
        cfg.shared_bytes = int(shared_mem)
        # the memory the launch may touch: every buffer an array argument is a view of
        roots = {}
        for a, const in arrays:
            r = _root(a)
            if not (r.flags.c_contiguous or r.flags.f_contiguous):
                raise ValueError("array arguments must be views of contiguous buffers")
            lo, n = _span(r)
            roots.setdefault((lo, n), []).append((a, const))
        spans = list(roots)
        before = [_raw(lo, n).copy() for lo, n in spans]
        schedules = SCHEDULES if schedules is None else schedules
        seed0 = zlib.crc32(f"{self.expr}{list(cfg.grid)}{list(cfg.block)}".encode())
        results, stats = [], None
        with _lock:
            for si, (policy, seed) in enumerate(schedules):
                if si:
                    for (lo, n), b in zip(spans, before):
                        _raw(lo, n)[:] = b
                self.module.reset_stats()
                cfg.policy = POLICIES[policy]
                cfg.seed = seed0 + seed
                rc = self._launch(argv, ctypes.byref(cfg))
                if rc:
                    raise LaunchError(f"{self.expr} <<<{list(cfg.grid)}, {list(cfg.block)}>>> under the {policy} "
                                      f"schedule: {self.module.error()}")
                if stats is None:
                    stats = self.module.stats()
                results.append([_raw(lo, n).copy() for lo, n in spans])
        self.last_stats = stats
        # every schedule leaves the same memory
        for si in range(1, len(results)):
            for j, ((lo, n), r0, r1) in enumerate(zip(spans, results[0], results[si])):
                if not np.array_equal(r0, r1):
                    diff = np.flatnonzero(r0 != r1)
                    raise RaceError(
                        f"{self.expr} <<<{list(cfg.grid)}, {list(cfg.block)}>>>: schedules {schedules[0]} and "
                        f"{schedules[si]} leave different memory in buffer {j} ({diff.size} bytes differ, first at "
                        f"byte offsets {diff[:8].tolist()}): a race (a missing barrier) or an order-dependent result")
        # nothing outside the arrays' elements changed
        # nothing outside the arrays' elements changed, nor the elements only passed as const
        for (lo, n), b, r in zip(spans, before, results[0]):
            if np.array_equal(b, r):
                continue
            inside = np.zeros(n, bool)
            writable = np.zeros(n, bool)
            for a, const in roots[(lo, n)]:
                mask = _byte_mask(a, lo, n)
                inside |= mask
                if not const:
                    writable |= mask
            bad = np.flatnonzero((b != r) & ~inside)
            if bad.size:
                raise OutOfBoundsWrite(
                    f"{self.expr} <<<{list(cfg.grid)}, {list(cfg.block)}>>> wrote {bad.size} bytes outside its arrays' "
                    f"elements (byte offsets in the buffer: {bad[:8].tolist()})")
            bad = np.flatnonzero((b != r) & ~writable)
            if bad.size:
                raise OutOfBoundsWrite(
                    f"{self.expr} <<<{list(cfg.grid)}, {list(cfg.block)}>>> changed {bad.size} bytes of an array it "
                    f"takes as const (byte offsets in the buffer: {bad[:8].tolist()})")
        del keep
        return None


class HostModule:
    """A compiled library; ``get_function(expr)`` as ``cupy.RawModule.get_function``."""

    def __init__(self, lib, exprs, path):
        self.lib, self.exprs, self.path = lib, exprs, path
        lib.ga_error.restype = ctypes.c_char_p
        lib.ga_stats.argtypes = [ctypes.POINTER(ctypes.c_longlong)]
        self._kernels = {}

    def get_function(self, expr):
        if expr not in self._kernels:
            if expr not in self.exprs:
                raise KeyError(f"{expr!r} is not among the instances this module was built with")
            self._kernels[expr] = HostKernel(self, self.exprs.index(expr), expr)
        return self._kernels[expr]

    def error(self):
        return self.lib.ga_error().decode()

    def stats(self):
        out = (ctypes.c_longlong * 5)()
        self.lib.ga_stats(out)
        return dict(zip(("vec_moves", "block_barriers", "warp_syncs", "blocks", "threads"), out))

    def reset_stats(self):
        self.lib.ga_reset_stats()


# ------------------------------------------------------------------ the CuPy launchers against NumPy
class DeviceArray(np.ndarray):
    """A NumPy array that answers ``.data.ptr`` and ``.get()`` as a CuPy array does."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def get(self):
        return np.array(self)


def device(a):
    return np.asarray(a).view(DeviceArray)


class _Device:
    """cupy.cuda.Device: its id and attributes, a context manager."""

    def __init__(self, sms):
        self.id = 0
        self.attributes = {"MultiProcessorCount": sms}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _on_device(fn):
    """A NumPy function whose array result comes back as a ``DeviceArray`` (a 0-d one for scalars)."""

    def call(*args, **kwargs):
        return device(np.asarray(fn(*args, **kwargs)))

    return staticmethod(call)


class _FakeCupy(types.ModuleType):
    """The part of CuPy the backend uses, on NumPy arrays."""

    def __init__(self, sms, cache_dir):
        super().__init__("cupy")
        self.float16, self.float32, self.float64, self.int64 = np.float16, np.float32, np.float64, np.int64
        self.bool_ = np.bool_
        self.ndarray = np.ndarray
        dev = _Device(sms)
        self.cuda = types.SimpleNamespace(Device=lambda *a: dev)
        self.ElementwiseKernel = functools.partial(HostElementwiseKernel, cache_dir=cache_dir)

    @staticmethod
    def empty(shape, dtype=np.float64, order="C"):
        # float arrays: POISON in a GUARD-ed buffer, so unwritten elements and stray writes show
        if np.dtype(dtype) in POISON and order == "C":
            return place(np.zeros(shape), dtype, poison=True)
        return device(np.empty(shape, dtype, order))

    @staticmethod
    def zeros(shape, dtype=np.float64):
        return place(np.zeros(shape), dtype)

    @staticmethod
    def moveaxis(a, src, dst):
        return np.moveaxis(a, src, dst)

    @staticmethod
    def ascontiguousarray(a, dtype=None):
        return device(np.ascontiguousarray(a, dtype=dtype))

    @staticmethod
    def may_share_memory(a, b):
        return np.may_share_memory(a, b)

    sum = _on_device(np.sum)
    any = _on_device(np.any)
    stack = _on_device(np.stack)
    where = _on_device(np.where)
    count_nonzero = _on_device(np.count_nonzero)
    broadcast_to = _on_device(np.broadcast_to)

    def __getattr__(self, name):
        raise AttributeError(f"the NumPy stand-in for CuPy in tests/toolchain/hostcuda.py has no {name!r}: extend it")


# ------------------------------------------------------------------ ElementwiseKernel on host kernels
# C++ types of the dtypes an elementwise operand may have (CuPy's float16 and bfloat16
# classes are __half and __nv_bfloat16 here)
_EW_CTYPES = {np.dtype(np.float16): "__half", BFLOAT16: "__nv_bfloat16", np.dtype(np.float32): "float",
              np.dtype(np.float64): "double", np.dtype(np.int32): "int", np.dtype(np.int64): "long long",
              np.dtype(np.uint64): "unsigned long long"}


class _EwParam:
    """One parameter of an ElementwiseKernel: CuPy's rule, a one-letter type is a placeholder."""

    def __init__(self, text):
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"parameter {text!r}: the host ElementwiseKernel takes 'type name' (no raw)")
        self.type, self.name = parts
        self.placeholder = len(self.type) == 1
        self.dtype = None if self.placeholder else np.dtype(self.type)


class HostElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=...)``
    whose calls run on host kernels. Every output is passed (all of one shape);
    inputs broadcast to it (axes aligned right, size-1 axes read with stride 0).
    A type placeholder takes its arrays' dtype (a mismatch raises TypeError, as
    CuPy's "Type is mismatched"); a parameter of a named dtype takes an array of
    that dtype or a scalar, converted. The kernel is CuPy's shape: typedefs of
    the placeholders, a grid-stride loop over the output's elements in C order
    with the index ``i``, each operand's element bound to a reference of its
    name (``const`` for inputs), then ``operation``, after ``preamble``."""

    def __init__(self, in_params, out_params, operation, name, preamble="", *, cache_dir):
        self.in_params = [_EwParam(p) for p in in_params.split(",")]
        self.out_params = [_EwParam(p) for p in out_params.split(",")]
        self.operation, self.name, self.preamble = operation, name, preamble
        self.cache_dir = cache_dir
        self._built = {}

    def _source(self, types, arrays):
        """The translation unit for the placeholder binding ``types``; ``arrays``: the
        parameters passed as arrays, in order."""
        params = self.in_params + self.out_params
        ctype = {p.name: _EW_CTYPES[types[p.type] if p.placeholder else p.dtype] for p in params}
        sig, binds = [], []
        for p in params:
            is_in = p in self.in_params
            t = p.type if p.placeholder else ctype[p.name]
            if p in arrays:
                k = arrays.index(p)
                sig.append(f"{'const ' if is_in else ''}{t}* _raw_{p.name}")
                binds.append(f"{'const ' if is_in else ''}{t}& {p.name} = _raw_{p.name}[_o[{k}]];")
            else:
                sig.append(f"{t} {p.name}")
        typedefs = "".join(f"typedef {_EW_CTYPES[d]} {t};\n" for t, d in sorted(types.items()))
        na = len(arrays)
        return (
            f"{self.preamble}\nnamespace gahost_ew {{\n{typedefs}"
            f"__global__ void {self.name}({', '.join(sig)}, const long long* _geo, long long _nd, long long _n) {{\n"
            f"    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < _n;\n"
            f"         i += (long long)gridDim.x * blockDim.x) {{\n"
            f"        long long _o[{na}] = {{}}, _rem = i;  // _geo: shape, then each array's strides\n"
            f"        for (long long d = _nd - 1; d >= 0; --d) {{\n"
            f"            const long long c = _rem % _geo[d];\n"
            f"            _rem /= _geo[d];\n"
            f"            for (int a = 0; a < {na}; ++a) _o[a] += c * _geo[_nd * (1 + a) + d];\n"
            f"        }}\n"
            f"        {' '.join(binds)}\n"
            f"        {self.operation}\n"
            f"    }}\n}}\n}}\n"
        )

    def __call__(self, *args):
        params = self.in_params + self.out_params
        if len(args) != len(params):
            raise TypeError(f"{self.name} takes {len(params)} arguments (every output given), got {len(args)}")
        outs = args[len(self.in_params):]
        shape = outs[0].shape
        types, arrays, values = {}, [], []
        for p, a in zip(params, args):
            if isinstance(a, np.ndarray):
                if p.placeholder:
                    if types.setdefault(p.type, a.dtype) != a.dtype:
                        raise TypeError(f"{self.name}: Type is mismatched. {p.name} {a.dtype} {p.type} {types[p.type]}")
                elif a.dtype != p.dtype:
                    raise TypeError(f"{self.name}: {p.name} is {a.dtype}, the kernel declares {p.dtype}")
                if np.broadcast_shapes(a.shape, shape) != shape or (p in self.out_params and a.shape != shape):
                    raise ValueError(f"{self.name}: {p.name} of shape {a.shape} does not broadcast to {shape}")
                arrays.append(p)
                values.append(a)
            elif p.placeholder or p in self.out_params:
                raise TypeError(f"{self.name}: a scalar for {p.name} (host ElementwiseKernel: arrays only there)")
            else:
                values.append(p.dtype.type(a))
        n = int(np.prod(shape))
        if n == 0:
            return
        nd = len(shape)
        geo = list(shape)
        for a in (v for v in values if isinstance(v, np.ndarray)):
            lead = nd - a.ndim
            geo += [0 if d < lead or a.shape[d - lead] == 1 else a.strides[d - lead] // a.itemsize for d in range(nd)]
        src = self._source(types, arrays)
        if src not in self._built:
            self._built[src] = build(src, [f"gahost_ew::{self.name}"], self.cache_dir).get_function(
                f"gahost_ew::{self.name}")
        block = 128
        grid = min(-(-n // block), 4)
        self._built[src]((grid,), (block,), (*values, np.array(geo or [0], np.int64), np.int64(nd), np.int64(n)))


_PKG = "gpu_act.backends.cupy"


def _code(path):
    """The compiled code of a source file (recompiled when it changes)."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _CODE:
        _CODE[key] = compile(path.read_text(), str(path), "exec")
    return _CODE[key]


_CODE = {}


def backend(function, sms=1, cache_dir=None):
    """The CuPy backend's modules loaded against the NumPy stand-in for CuPy
    (``sms`` multiprocessors; ElementwiseKernels built into ``cache_dir``) with
    ``_modules.function(file, dtype, expr)`` = ``function``: a namespace of
    ``launch`` (_config), ``layout``, ``rowwise``, ``elementwise`` and ``api``
    (the package, whose functions take a ``Call`` context)."""
    import gpu_act

    fake = _FakeCupy(sms, cache_dir)
    pkg_dir = Path(gpu_act.__file__).resolve().parent / "backends" / "cupy"
    loaded = {"_modules": types.SimpleNamespace(function=function)}

    def load(name):
        if name not in loaded:
            mod = types.ModuleType(_PKG if name == "__init__" else f"{_PKG}.{name}")
            mod.__file__ = str(pkg_dir / f"{name}.py")
            mod.__package__ = _PKG
            b = dict(vars(builtins))
            b["__import__"] = importer
            mod.__dict__["__builtins__"] = b
            loaded[name] = mod
            exec(_code(pkg_dir / f"{name}.py"), mod.__dict__)
        return loaded[name]

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            if name == "cupy" or name.startswith("cupy."):
                return fake
            return builtins.__import__(name, globals, locals, fromlist, level)
        base = _PKG.rsplit(".", level - 1)[0] if level > 1 else _PKG
        target = f"{base}.{name}" if name else base
        if target == _PKG:
            return types.SimpleNamespace(**{f: load(f) for f in fromlist})
        if target.startswith(_PKG + "."):
            return load(target[len(_PKG) + 1:])
        mod = importlib.import_module(target)
        for f in fromlist or ():
            if not hasattr(mod, f):
                importlib.import_module(f"{target}.{f}")
        return mod

    return types.SimpleNamespace(launch=load("_config"), layout=load("_layout"), rowwise=load("rowwise"),
                                 elementwise=load("elementwise"), api=load("__init__"))


# ------------------------------------------------------------------ guarded arrays
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
# outputs start as this NaN pattern: an element still holding it was never written
POISON = {np.dtype(np.float16): 0x7D5A, BFLOAT16: 0x7FA5, np.dtype(np.float32): 0x7FA5A5A5,
          np.dtype(np.float64): 0x7FF4A5A5A5A5A5A5}
# the memory around every array: NaN with another payload, so a read past a row shows
GUARD = {np.dtype(np.float16): 0x7E6B, BFLOAT16: 0x7FEB, np.dtype(np.float32): 0x7FCBEEF0,
         np.dtype(np.float64): 0x7FFBEEFBEEFBEEF0}


def _bits(a):
    return a.view(_UINT[a.dtype.itemsize])


def place(values, dtype=None, *, order="C", step=1, flip=False, misalign=False, poison=False, pad=40):
    """A ``DeviceArray`` view of ``values``' shape, inside a larger buffer whose
    other elements hold ``GUARD``: laid out in ``order`` ("C", "F" or a
    permutation of the axes, outermost first), every ``step``-th element,
    every axis reversed (``flip``), its lowest element 16-byte aligned or one
    element off (``misalign``); holding ``values`` or, with ``poison``, ``POISON``."""
    values = np.asarray(values)
    dt = np.dtype(dtype or values.dtype)
    it, shape, nd = dt.itemsize, values.shape, values.ndim
    perm = list(range(nd)) if order == "C" else (list(range(nd))[::-1] if order == "F" else list(order))
    dense, acc = [0] * nd, 1
    for ax in reversed(perm):
        dense[ax] = acc
        acc *= shape[ax]
    strides = [d * step for d in dense]
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if values.size else 1
    base = np.empty(extent + 2 * pad + 16, dt)
    _bits(base)[...] = GUARD[dt]
    want = (it % 16) if misalign else 0
    start = pad
    while (base.ctypes.data + start * it) % 16 != want:
        start += 1
    view = np.lib.stride_tricks.as_strided(base[start:start + extent], shape, [s * it for s in strides])
    if flip:
        view = view[(slice(None, None, -1),) * nd]
    if poison:
        _bits(view)[...] = POISON[dt]
    else:
        with np.errstate(all="ignore"):
            view[...] = values.astype(dt)
    return view.view(DeviceArray)


def unwritten(out):
    """Index tuples of ``out``'s elements that still hold ``POISON``."""
    return np.argwhere(_bits(np.asarray(out)) == POISON[out.dtype])
