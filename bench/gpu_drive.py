#!/usr/bin/env python3
"""The programs ``bench/gpu_check.sh`` runs on a GPU lease.

    python bench/gpu_drive.py env                 the environment report (any machine)
    python bench/gpu_drive.py backends [--require cuda,cupy]
                                                  where gpu_act comes from, its backends,
                                                  and why one is missing
    python bench/gpu_drive.py run [--paths cupy,numba,torch,cupy-on-cuda] [--reset]
                                                  launch every GPU kernel variant once

``run`` is the program compute-sanitizer (memcheck, racecheck, synccheck)
watches, so it is small and quick: each kernel variant of both GPU paths once,
on small inputs whose sizes are not multiples of 4 or 32 (remainder loops,
partial warps and vector tails):

- every elementwise activation forward and backward in float32 (contiguous),
  one op on a strided view (the strided path), prelu and rrelu (eval and
  training) forward and backward;
- softmax, log_softmax and their backward passes, cross-entropy with class
  indices and with probabilities, on shapes chosen so that the launch
  configuration picks each row variant: the CUDA path's
  ``backends/cuda/_config.py plan`` (thread, warp, block-shared,
  block) and the CuPy path's ``backends/cupy/_config.py team_for`` (thread,
  warp, block); maxout along the last and a strided axis;
- float16 and float64 once each (elementwise, the row-wise ops, maxout);
- on CuPy arrays (cupy backend), on Numba device arrays and on PyTorch CUDA
  tensors (cuda backend), and a few calls on CuPy arrays with backend="cuda".

The variants are not assumed: the launch-configuration functions are wrapped
and every choice they make is recorded, then compared with ``EXPECTED``. Each
result is compared with a float64 NumPy reference (the tolerances of
``gpu_act._tolerances``) and its array kind checked, so a wrong result or an
uncovered variant is reported even where the sanitizer finds nothing.

Exit status of ``run``: 0 every call ran, gave the right result and every
expected variant was chosen; 1 a call raised or a result was wrong; 3 all
right, but a variant in ``EXPECTED`` was never chosen (the launch rules
changed: adapt ``SHAPES`` or ``EXPECTED``). Under compute-sanitizer,
``--error-exitcode`` takes precedence when it finds an error. ``--reset``
frees every pool and cache, resets the device and leaves without running
Python's finalisers, so memcheck's leak check sees only real leaks.
"""

import argparse
import contextlib
import importlib
import os
import platform
import sys
import time
import traceback
from collections import defaultdict

import numpy as np

# row variants each path must choose at least once, per op label
CUDA_ALL = {"thread", "warp", "block-shared", "block"}
CUDA_NO_SHARED = {"thread", "warp", "block"}
CUPY_ALL = {"thread", "warp", "block"}
EXPECTED = {
    "cupy": {op: CUPY_ALL for op in ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
                                     "cross_entropy[index]", "cross_entropy[prob]")},
    "numba": {"softmax": CUDA_ALL, "log_softmax": CUDA_ALL, "softmax_backward": CUDA_NO_SHARED,
              "log_softmax_backward": CUDA_NO_SHARED, "cross_entropy[index]": CUDA_NO_SHARED,
              "cross_entropy[prob]": CUDA_NO_SHARED},
}
EXPECTED["torch"] = EXPECTED["numba"]

# (name, shape, axis): row shapes for the variants. "thread": the reduced axis is
# strided and there are >= 32 rows side by side (CuPy's rule); "warp": rows up to
# 1024; "mid": one block per row with the row in shared memory (CUDA softmax
# forward); "long": a row too long for shared memory even with the opt-in limit
# of an H100 (227 KiB = 58,112 floats), so the CUDA forward falls back to "block".
SHAPES = (("thread", (40, 33), 0), ("warp", (7, 31), -1), ("mid", (3, 1500), -1), ("long", (2, 70001), -1))
DTYPE_SHAPES = ("warp", "mid")  # float16 and float64 run on these
EXIT_WRONG, EXIT_COVERAGE = 1, 3


# ---------------------------------------------------------------- environment report
DISTRIBUTIONS = (
    "numpy", "numba", "numba-cuda", "llvmlite", "cupy-cuda13x", "cupy-cuda12x", "cupy", "torch", "triton",
    "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime",
    "pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "scipy", "matplotlib", "mpmath", "dask",
    "distributed", "setuptools", "pip", "gpu_act",
)


def _try(label, fn):
    try:
        value = fn()
    except Exception as exc:  # a report: every failure is printed, none is fatal
        value = " ".join(f"ERROR {type(exc).__name__}: {exc}".split())
    print(f"{label}: {value}", flush=True)


def _dist_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def env():
    print(f"python: {sys.executable}")
    print(f"python version: {platform.python_version()} ({platform.python_implementation()}, {platform.platform()})")
    print("distributions: " + ", ".join(f"{n} {_dist_version(n)}" for n in DISTRIBUTIONS))
    print(flush=True)
    _try("numpy", lambda: np.__version__)
    _try("numba", lambda: importlib.import_module("numba").__version__)
    _try("numba.cuda module", lambda: importlib.import_module("numba.cuda").__file__)
    _try("numba.cuda.is_available()", lambda: importlib.import_module("numba.cuda").is_available())
    _try("numba CUDA driver version", lambda: importlib.import_module("numba.cuda").cudadrv.driver.driver.get_version())
    _try("numba CUDA runtime version", lambda: importlib.import_module("numba.cuda").runtime.get_version())
    _try("numba NVVM version", lambda: importlib.import_module("numba.cuda").cudadrv.nvvm.NVVM().get_version())
    _try("numba devices", _numba_devices)
    _try("cupy", lambda: importlib.import_module("cupy").__version__)
    _try("cupy CUDA runtime version", lambda: importlib.import_module("cupy").cuda.runtime.runtimeGetVersion())
    _try("cupy CUDA driver version", lambda: importlib.import_module("cupy").cuda.runtime.driverGetVersion())
    _try("cupy NVRTC version", lambda: importlib.import_module("cupy").cuda.nvrtc.getVersion())
    _try("cupy CUDA path", lambda: importlib.import_module("cupy").cuda.get_cuda_path())
    _try("cupy devices", _cupy_devices)
    _try("torch", lambda: importlib.import_module("torch").__version__)
    _try("torch CUDA (built for)", lambda: importlib.import_module("torch").version.cuda)
    _try("torch.cuda.is_available()", lambda: importlib.import_module("torch").cuda.is_available())
    _try("torch device", _torch_device)
    _try("triton", lambda: importlib.import_module("triton").__version__)
    print(flush=True)
    backends()
    return 0


def _numba_devices():
    cuda = importlib.import_module("numba.cuda")
    return [f"{g.id}: {g.name.decode() if isinstance(g.name, bytes) else g.name} cc {g.compute_capability}"
            for g in cuda.gpus]


def _cupy_devices():
    cp = importlib.import_module("cupy")
    out = []
    for i in range(cp.cuda.runtime.getDeviceCount()):
        p = cp.cuda.runtime.getDeviceProperties(i)
        out.append(f"{i}: {p['name'].decode()} cc {p['major']}.{p['minor']}, {p['multiProcessorCount']} SMs, "
                   f"{p['totalGlobalMem'] / 2**30:.1f} GiB, {p['sharedMemPerBlock'] // 1024} KiB shared/block "
                   f"({p.get('sharedMemPerBlockOptin', 0) // 1024} KiB opt-in), L2 {p['l2CacheSize'] / 2**20:.0f} MiB")
    return out


def _torch_device():
    torch = importlib.import_module("torch")
    if not torch.cuda.is_available():
        return "none"
    return f"{torch.cuda.get_device_name(0)} cc {torch.cuda.get_device_capability(0)}"


def backends(require=()):
    """Where gpu_act comes from and which backends load; 1 if one of ``require`` is missing."""
    try:
        import gpu_act as ga
    except Exception as exc:
        print(f"gpu_act: not importable ({type(exc).__name__}: {exc})", flush=True)
        return 1
    print(f"gpu_act {ga.__version__}: {os.path.dirname(ga.__file__)}")
    _try("gpu_act.kernels", lambda: os.path.dirname(importlib.import_module("gpu_act.kernels").__file__))
    try:
        found = tuple(ga.available_backends())
        print(f"gpu_act.available_backends(): {found}", flush=True)
    except Exception:
        found = ()
        print("gpu_act.available_backends() raised:\n" + traceback.format_exc(), flush=True)
    for name in ("cuda", "cupy"):
        if name in found:
            continue
        try:  # say why: the import error, or available() False
            mod = importlib.import_module(f"gpu_act.backends.{name}")
            print(f"backend {name}: imports, available() = {mod.available()}", flush=True)
        except Exception:
            print(f"backend {name}: import failed:\n{traceback.format_exc()}", flush=True)
    missing = [b for b in require if b not in found]
    if missing:
        print(f"MISSING backends: {', '.join(missing)}", flush=True)
        return 1
    return 0


# ---------------------------------------------------------------- the launches
class Recorder:
    """Wraps the launch-configuration functions and records every variant they pick."""

    def __init__(self):
        self.path = None
        self.op = None
        self.seen = defaultdict(set)  # (path, op label) -> variants
        self.notes = []

    def wrap(self, module_name, fn_name, variant_of):
        try:
            mod = importlib.import_module(module_name)
        except Exception as exc:
            self.notes.append(f"cannot import {module_name}: {type(exc).__name__}: {exc}")
            return
        fn = getattr(mod, fn_name, None)
        if fn is None:
            self.notes.append(f"{module_name} has no {fn_name}: variants not recorded (update bench/gpu_drive.py)")
            return

        def recorded(*args, **kwargs):
            result = fn(*args, **kwargs)
            if self.path is not None:
                self.seen[(self.path, self.op)].add(variant_of(result))
            return result

        setattr(mod, fn_name, recorded)

    @contextlib.contextmanager
    def label(self, path, op):
        self.path, self.op = path, op
        try:
            yield
        finally:
            self.op = None


def _variant(config):
    return getattr(config, "variant", None) or (config[0] if isinstance(config, tuple) else str(config))


class Path:
    """One kind of device array: how to make one, read one back and recognise one."""

    def __init__(self, name, backend):
        self.name, self.backend = name, backend
        if name in ("cupy", "cupy-on-cuda"):
            import cupy

            self.dev = cupy.asarray
            self.host = cupy.asnumpy
            self.kind = lambda r: isinstance(r, cupy.ndarray)
            self.sync = cupy.cuda.runtime.deviceSynchronize
            self.strided = (lambda a: a.T, lambda a: a.T)
        elif name == "numba":
            from numba import cuda

            self.dev = lambda a: cuda.to_device(np.ascontiguousarray(a))
            self.host = lambda r: r.copy_to_host()
            self.kind = lambda r: hasattr(r, "copy_to_host") and getattr(type(r), "__cuda_ndarray__", False)
            self.sync = cuda.synchronize
            # a view (Numba's .T copies into a contiguous array)
            self.strided = (lambda a: a[::-1, ::2], lambda a: a[::-1, ::2])
        elif name == "torch":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("PyTorch sees no CUDA device")
            self.dev = lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()
            self.host = lambda r: r.detach().cpu().numpy()
            self.kind = lambda r: isinstance(r, torch.Tensor) and r.is_cuda
            self.sync = torch.cuda.synchronize
            self.strided = (lambda a: a.t(), lambda a: a.T)  # torch has no negative strides
        elif name == "cpu":  # NumPy arrays on the CPU backend: checks this program on any machine
            self.dev = np.array
            self.host = np.asarray
            self.kind = lambda r: isinstance(r, np.ndarray)
            self.sync = lambda: None
            self.strided = (lambda a: a.T, lambda a: a.T)
        else:
            raise ValueError(f"unknown path {name!r}")


class Driver:
    def __init__(self, recorder, verbose=True):
        self.rec, self.verbose = recorder, verbose
        self.launches = 0
        self.failures = []
        from gpu_act._tolerances import TOLERANCES

        self.tol = TOLERANCES

    def call(self, path, label, fn, want=None, variant_label=None):
        """Run ``fn()`` (device results), wait for the device, compare with ``want``
        (float64 arrays, one per result)."""
        self.launches += 1
        if self.verbose:
            print(f"[{path.name}] {label}", flush=True)
        try:
            with self.rec.label(path.name, variant_label):
                out = fn()
                path.sync()
            outs = out if isinstance(out, tuple) else (out,)
            for r in outs:
                if not path.kind(r):
                    raise TypeError(f"result is a {type(r).__module__}.{type(r).__name__}, not the input's kind")
            if want is not None:
                wants = want if isinstance(want, tuple) else (want,)
                for i, (r, w) in enumerate(zip(outs, wants)):
                    if w is not None:
                        self._compare(path.host(r), w, label + (f" result {i}" if len(wants) > 1 else ""))
            return outs if isinstance(out, tuple) else out
        except Exception as exc:
            self.failures.append(f"[{path.name}] {label}: {type(exc).__name__}: {exc}")
            print(f"FAILED [{path.name}] {label}: {type(exc).__name__}: {exc}", flush=True)
            return None

    def _compare(self, got, want, label):
        got = np.asarray(got)
        if got.shape != np.shape(want):
            raise AssertionError(f"shape {got.shape}, expected {np.shape(want)}")
        dt = got.dtype
        tol = self.tol[np.dtype(dt)]
        a = got.astype(np.float64)
        with np.errstate(all="ignore"):
            e = np.asarray(want, np.float64).astype(dt).astype(np.float64)  # the reference rounded to dtype
            bad = ~(np.isclose(a, np.asarray(want, np.float64), rtol=tol["rtol"] * 4, atol=tol["atol"] * 4)
                    | np.isclose(a, e, rtol=tol["rtol"] * 4, atol=tol["atol"] * 4)
                    | (np.isnan(a) & np.isnan(e)))
        if bad.any():
            i = np.flatnonzero(bad.reshape(-1))[0]
            raise AssertionError(f"{int(bad.sum())} of {bad.size} elements off, first at flat index {i}: "
                                 f"{a.reshape(-1)[i]!r} vs {np.asarray(want, np.float64).reshape(-1)[i]!r}")


# ---------------------------------------------------------------- float64 references
def _rows_last(a, axis):
    return np.moveaxis(np.asarray(a, np.float64), axis, -1)


def ref_softmax(x, axis, t=1.0, log=False):
    z = _rows_last(x, axis) / t
    z = z - z.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1, keepdims=True))
    return np.moveaxis(z - lse if log else np.exp(z - lse), -1, axis)


def ref_softmax_backward(g, y, axis, t=1.0, log=False):
    g, y = _rows_last(g, axis), _rows_last(y, axis)
    if log:
        r = (g - np.exp(y) * g.sum(-1, keepdims=True)) / t
    else:
        r = y * (g - (g * y).sum(-1, keepdims=True)) / t
    return np.moveaxis(r, -1, axis)


def ref_cross_entropy(z, target, axis, reduction="mean", eps=0.0, ignore=-100):
    zz = _rows_last(z, axis)
    C = zz.shape[-1]
    lse = np.log(np.exp(zz - zz.max(-1, keepdims=True)).sum(-1, keepdims=True)) + zz.max(-1, keepdims=True)
    if target.dtype.kind in "iu":
        keep = target != ignore
        t = np.zeros(zz.shape)
        idx = np.where(keep, target, 0)
        np.put_along_axis(t, idx[..., None], 1.0, -1)
        t *= keep[..., None]
        t = (1 - eps) * t + eps / C * keep[..., None]
        count = keep.sum()
    else:
        t = _rows_last(target, axis)
        t = (1 - eps) * t + eps / C
        count = None
    per_row = (t * (lse - zz)).sum(-1)
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    return per_row.sum() / (count if count is not None else per_row.size)


def ref_maxout(x, pool, axis):
    xx = _rows_last(x, axis)
    r = xx.reshape(xx.shape[:-1] + (xx.shape[-1] // pool, pool)).max(-1)
    return np.moveaxis(r, -1, axis)


def ref_maxout_backward(g, x, pool, axis):
    xx = _rows_last(x, axis)
    gg = _rows_last(g, axis)
    groups = xx.reshape(xx.shape[:-1] + (xx.shape[-1] // pool, pool))
    first = (np.arange(pool) == groups.argmax(-1)[..., None])
    r = (first * gg[..., None]).reshape(xx.shape)
    return np.moveaxis(r, -1, axis)


def _elementwise_ref():
    """op -> reference(x) or reference(g, x) through the bench's float64 evaluation of
    the registry formulas, or None where it cannot be imported."""
    try:
        from gpu_act.bench import check
    except Exception as exc:
        print(f"note: no elementwise reference ({type(exc).__name__}: {exc}); checking finiteness only", flush=True)
        return None
    return lambda op, *args: check.reference(op, [np.asarray(a) for a in args])


# ---------------------------------------------------------------- the program
def sample(shape, dtype, seed, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def elementwise(d, path, ew_ref):
    import gpu_act as ga
    from gpu_act.registry import PLAIN

    b = path.backend
    x = sample((33, 65), np.float32, 1)
    g = sample((33, 65), np.float32, 2, scale=1.0)
    X, G = path.dev(x), path.dev(g)
    for name in PLAIN:
        fwd, bwd = getattr(ga, name), getattr(ga, name + "_backward")
        d.call(path, f"{name} float32", lambda: fwd(X, backend=b), ew_ref and ew_ref(name, x))
        d.call(path, f"{name}_backward float32", lambda: bwd(G, X, backend=b),
               ew_ref and ew_ref(name + "_backward", g, x))
    d.call(path, "gelu[tanh] float32", lambda: ga.gelu(X, approximate="tanh", backend=b))
    d.call(path, "gelu_backward[tanh] float32", lambda: ga.gelu_backward(G, X, approximate="tanh", backend=b))
    # strided path: views that are not one dense run
    view, host_view = path.strided
    XT, GT = view(X), view(G)
    d.call(path, "silu float32 strided", lambda: ga.silu(XT, backend=b), ew_ref and ew_ref("silu", host_view(x)))
    d.call(path, "silu_backward float32 strided", lambda: ga.silu_backward(GT, XT, backend=b),
           ew_ref and ew_ref("silu_backward", host_view(g), host_view(x)))


def prelu_rrelu(d, path):
    import gpu_act as ga

    b = path.backend
    x = sample((4, 3, 50), np.float32, 3)
    g = sample((4, 3, 50), np.float32, 4, scale=1.0)
    w = np.array([0.1, -0.2, 0.3], np.float32)
    X, G, W = path.dev(x), path.dev(g), path.dev(w)
    x64, g64, w64 = x.astype(np.float64), g.astype(np.float64), w.astype(np.float64)[None, :, None]
    slope = np.where(x64 > 0, 1.0, w64)
    d.call(path, "prelu float32", lambda: ga.prelu(X, W, backend=b), x64 * slope)
    d.call(path, "prelu_backward float32", lambda: ga.prelu_backward(G, X, W, backend=b),
           (g64 * slope, (g64 * x64 * (x64 <= 0)).sum(axis=(0, 2))))
    lo, hi = 0.1, 0.3
    a = np.where(x64 > 0, 1.0, (lo + hi) / 2)
    d.call(path, "rrelu eval float32", lambda: ga.rrelu(X, lo, hi, backend=b), x64 * a)
    d.call(path, "rrelu_backward eval float32", lambda: ga.rrelu_backward(G, X, lo, hi, backend=b), g64 * a)
    d.call(path, "rrelu training float32", lambda: ga.rrelu(X, lo, hi, training=True, seed=5, backend=b))
    d.call(path, "rrelu_backward training float32",
           lambda: ga.rrelu_backward(G, X, lo, hi, training=True, seed=5, backend=b))


def rowwise(d, path, which, dtype):
    import gpu_act as ga

    b = path.backend
    dt = np.dtype(dtype).name
    for seed, (tag, shape, axis) in enumerate(SHAPES):
        if tag not in which:
            continue
        x = sample(shape, dtype, 10 + seed)
        g = sample(shape, dtype, 20 + seed, scale=1.0)
        X, G = path.dev(x), path.dev(g)
        where = f"{dt} {tag} {'x'.join(map(str, shape))} axis={axis}"
        T = 1.3 if tag == "warp" else 1.0
        for log, op in ((False, "softmax"), (True, "log_softmax")):
            fwd, bwd = getattr(ga, op), getattr(ga, op + "_backward")
            d.call(path, f"{op} {where}", lambda: fwd(X, axis=axis, temperature=T, backend=b),
                   ref_softmax(x, axis, T, log), op)
            y = ref_softmax(x, axis, T, log).astype(dtype)
            Y = path.dev(y)
            d.call(path, f"{op}_backward {where}", lambda: bwd(G, Y, axis=axis, temperature=T, backend=b),
                   ref_softmax_backward(g, y, axis, T, log), op + "_backward")
        ax = axis % len(shape)
        rows = shape[:ax] + shape[ax + 1:]
        rng = np.random.default_rng(30 + seed)
        t = rng.integers(0, shape[ax], rows)
        t.reshape(-1)[0] = -100  # one ignored row
        Tg = path.dev(t)
        d.call(path, f"cross_entropy[index] {where}",
               lambda: ga.cross_entropy(X, Tg, axis, return_grad=True, backend=b),
               (ref_cross_entropy(x, t, axis), None), "cross_entropy[index]")
        p = rng.random(shape).astype(dtype)
        P = path.dev(p)
        d.call(path, f"cross_entropy[prob] {where}",
               lambda: ga.cross_entropy(X, P, axis, reduction="none", label_smoothing=0.1, return_grad=True,
                                        backend=b),
               (ref_cross_entropy(x, p, axis, "none", 0.1), None), "cross_entropy[prob]")


def maxout(d, path, dtype):
    import gpu_act as ga

    b = path.backend
    x = sample((40, 12), dtype, 40)
    X = path.dev(x)
    for axis, pool in ((-1, 3), (0, 4)):
        where = f"{np.dtype(dtype).name} 40x12 axis={axis} pool={pool}"
        d.call(path, f"maxout {where}", lambda: ga.maxout(X, pool, axis, backend=b), ref_maxout(x, pool, axis))
        y_shape = ref_maxout(x, pool, axis).shape
        g = sample(y_shape, dtype, 41)
        G = path.dev(g)
        d.call(path, f"maxout_backward {where}", lambda: ga.maxout_backward(G, X, pool, axis, backend=b),
               ref_maxout_backward(g, x, pool, axis))


def small_dtypes(d, path, ew_ref):
    import gpu_act as ga

    b = path.backend
    for dtype in (np.float16, np.float64):
        dt = np.dtype(dtype).name
        x = sample((7, 31), dtype, 50)
        g = sample((7, 31), dtype, 51, scale=1.0)
        X, G = path.dev(x), path.dev(g)
        d.call(path, f"gelu {dt}", lambda: ga.gelu(X, backend=b), ew_ref and ew_ref("gelu", x))
        d.call(path, f"gelu_backward {dt}", lambda: ga.gelu_backward(G, X, backend=b),
               ew_ref and ew_ref("gelu_backward", g, x))
        rowwise(d, path, DTYPE_SHAPES, dtype)
        maxout(d, path, dtype)


def cupy_on_cuda(d, path):
    """CuPy arrays through the cuda backend (the CUDA Array Interface adapter)."""
    import gpu_act as ga

    x = sample((7, 31), np.float32, 60)
    X = path.dev(x)
    d.call(path, "gelu float32 (backend=cuda)", lambda: ga.gelu(X, backend="cuda"))
    d.call(path, "softmax float32 (backend=cuda)", lambda: ga.softmax(X, backend="cuda"), ref_softmax(x, -1))
    t = np.arange(7) % 31
    d.call(path, "cross_entropy[index] float32 (backend=cuda)",
           lambda: ga.cross_entropy(X, path.dev(t), backend="cuda"), ref_cross_entropy(x, t, -1))


def run(args):
    t0 = time.perf_counter()
    if args.exact_alloc:
        # every array its own cudaMalloc, so that memcheck sees the bounds of each
        # (pools hand out pieces of larger blocks)
        os.environ.setdefault("PYTORCH_NO_CUDA_MEMORY_CACHING", "1")
    import gpu_act as ga

    try:
        found = tuple(ga.available_backends())
    except Exception:
        found = ()
        print("gpu_act.available_backends() raised:\n" + traceback.format_exc(), flush=True)
    print(f"gpu_act {ga.__version__} from {os.path.dirname(ga.__file__)}; backends {found}", flush=True)
    rec = Recorder()
    rec.wrap("gpu_act.backends.cuda._config", "plan", _variant)
    rec.wrap("gpu_act.backends.cupy._config", "team_for", _variant)
    for note in rec.notes:
        print("note: " + note, flush=True)
    drv = Driver(rec, verbose=not args.quiet)
    ew_ref = _elementwise_ref()
    paths = [p for p in args.paths.split(",") if p]
    skipped = []
    for name in paths:
        backend = {"cupy": "cupy", "cpu": "cpu"}.get(name, "cuda")
        if backend not in found:
            skipped.append(f"{name} (backend {backend} unavailable)")
            drv.failures.append(f"[{name}] not run: backend {backend} unavailable")
            continue
        try:
            if name in ("cupy", "cupy-on-cuda") and args.exact_alloc:
                import cupy

                cupy.cuda.set_allocator(None)
                cupy.cuda.set_pinned_memory_allocator(None)
            path = Path(name, backend)
        except Exception as exc:
            skipped.append(f"{name} ({type(exc).__name__}: {exc})")
            drv.failures.append(f"[{name}] not run: {type(exc).__name__}: {exc}")
            continue
        t = time.perf_counter()
        if name == "cupy-on-cuda":
            cupy_on_cuda(drv, path)
        else:
            elementwise(drv, path, ew_ref)
            prelu_rrelu(drv, path)
            rowwise(drv, path, {s[0] for s in SHAPES}, np.float32)
            maxout(drv, path, np.float32)
            small_dtypes(drv, path, ew_ref)
        print(f"[{name}] done in {time.perf_counter() - t:.1f} s", flush=True)

    missing = []
    ran = [n for n in paths if not any(s.startswith(n + " ") for s in skipped)]
    print("\nrow variants chosen (path, op: variants):")
    for name in ran:
        for op, want in EXPECTED.get(name, {}).items():
            got = rec.seen.get((name, op), set())
            lack = sorted(want - got)
            shown = ", ".join(sorted(got)) or "-"
            print(f"  {name:6} {op:22} {shown:32}" + (f" MISSING {', '.join(lack)}" if lack else ""))
            if lack:
                missing.append(f"{name} {op}: {', '.join(lack)}")
    coverage = "variants never chosen: " + "; ".join(missing) if missing else "every expected variant chosen"
    print(f"\ngpu_drive: {drv.launches} calls in {time.perf_counter() - t0:.1f} s, {len(drv.failures)} failed, "
          + (coverage if any(n in EXPECTED for n in ran) else "no variant coverage checked")
          + (f"; paths not run: {', '.join(skipped)}" if skipped else "")
          + (f"; notes: {'; '.join(rec.notes)}" if rec.notes else ""), flush=True)
    for f in drv.failures:
        print("  " + f)
    uncovered = missing or (rec.notes and any(p in EXPECTED for p in ran))
    code = EXIT_WRONG if drv.failures else (EXIT_COVERAGE if uncovered else 0)
    if args.reset:
        _reset_and_exit(code, drv)
    return code


def _reset_and_exit(code, drv):
    """Free every cached block, reset the device (memcheck's leak check reports what
    is still allocated when the context goes) and leave without finalisers, which
    would otherwise free memory of a context that no longer exists."""
    import gc

    del drv
    gc.collect()
    mods = sys.modules
    with contextlib.suppress(Exception):
        if "torch" in mods and mods["torch"].cuda.is_initialized():
            mods["torch"].cuda.synchronize()
            mods["torch"].cuda.empty_cache()
    with contextlib.suppress(Exception):
        if "numba.cuda" in mods:
            mods["numba.cuda"].current_context().deallocations.clear()
    reset = False
    with contextlib.suppress(Exception):
        if "cupy" in mods:
            cp = mods["cupy"]
            cp.get_default_memory_pool().free_all_blocks()
            cp.get_default_pinned_memory_pool().free_all_blocks()
            cp.cuda.runtime.deviceSynchronize()
            cp.cuda.runtime.deviceReset()
            reset = True
    with contextlib.suppress(Exception):
        if not reset and "numba.cuda" in mods:  # no CuPy in this run: Numba destroys its context
            mods["numba.cuda"].close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv=None):
    p = argparse.ArgumentParser(prog="gpu_drive.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="the environment report")
    b = sub.add_parser("backends", help="gpu_act's location and backends")
    b.add_argument("--require", default="", help="comma list of backends that must be available")
    r = sub.add_parser("run", help="launch every GPU kernel variant once")
    r.add_argument("--paths", default="cupy,numba,torch,cupy-on-cuda",
                   help="cupy (CuPy arrays, cupy backend), numba / torch (Numba device arrays / PyTorch tensors, "
                        "cuda backend), cupy-on-cuda (CuPy arrays, backend='cuda'), cpu (NumPy arrays: this "
                        "program's own check, on any machine)")
    r.add_argument("--exact-alloc", action="store_true", help="no memory pools: one cudaMalloc per array")
    r.add_argument("--reset", action="store_true", help="free everything, reset the device, exit without finalisers")
    r.add_argument("--quiet", action="store_true", help="no line per call")
    a = p.parse_args(argv)
    if a.command == "env":
        return env()
    if a.command == "backends":
        return backends(tuple(n for n in a.require.split(",") if n))
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
