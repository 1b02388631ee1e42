"""The one module that imports Numba's CUDA target.

Everything else in gpu_act reaches the CUDA target through the names below, so
the choice of front end (numba-cuda or numba-cuda-mlir) and the difference
between the real target and the simulator (``NUMBA_ENABLE_CUDASIM=1``, a
numba-cuda feature) are handled here; no other module names either package.

- ``TARGET``: the front end in use, "numba-cuda" or "numba-cuda-mlir" (``MLIR``:
  the latter). ``GPU_ACT_CUDA_TARGET`` (read once, at import) picks one;
  unset, numba-cuda, unless numba-cuda-mlir is installed and numba-cuda is
  not, or cannot work here (NumPy >= 2.5, or it fails to import). A target
  that is picked but missing, or numba-cuda-mlir with the simulator asked
  for, is an ImportError (the CUDA backend is then unavailable, and
  ``gpu_act`` says why).
- ``cuda``: the module, for use *inside* kernels (``cuda.grid``, shared arrays,
  shuffles); the simulator finds it by that name in a kernel's globals.
- ``types`` / ``from_dtype``: the target's own Numba types (signatures, the
  element types of ``cuda.shared.array``); numba-cuda-mlir rejects
  ``numba.types`` objects.
- ``device`` / ``kernel``: the decorators for device functions and kernels,
  each passed only jit options its target accepts (numba-cuda-mlir makes an
  unknown keyword an error).
- memory: ``describe_numba``, ``flat``, ``device_array``, ``wrap_pointer``
  describe, view and allocate device memory (raw pointers on the real target,
  NumPy buffers in the simulator).
- streams: ``stream_for`` (a Numba stream for an exported handle),
  ``handle_of`` and ``wait_for`` (order one stream after another's work so far).
- ``compile_ptx``: PTX for a kernel and signature, without a driver.
"""

import functools
import importlib
import importlib.util
import os
import threading
import warnings
from collections import namedtuple

import numpy as np

from . import _streams
from ._compile import disk_cache

ENV = "GPU_ACT_CUDA_TARGET"
NUMBA_CUDA = "numba-cuda"
NUMBA_CUDA_MLIR = "numba-cuda-mlir"
TARGETS = (NUMBA_CUDA, NUMBA_CUDA_MLIR)
# the top-level package each target installs (numba-cuda's numba.cuda lives in
# numba_cuda/, reached through numba's redirect)
_PACKAGES = {NUMBA_CUDA: "numba_cuda", NUMBA_CUDA_MLIR: "numba_cuda_mlir"}


def _installed(target):
    return importlib.util.find_spec(_PACKAGES[target]) is not None


def _simulator_requested():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0").strip() not in ("", "0")


def _import(target):
    """(cuda module, types module, from_dtype, config module) of ``target``."""
    if target == NUMBA_CUDA:
        # ``from numba import cuda`` under numba-cuda's redirect: without numba-cuda
        # installed it is Numba's old built-in target, which has no ``core`` package
        from numba import cuda
        from numba.cuda.core import config

        types = importlib.import_module("numba.cuda.types")
        from_dtype = importlib.import_module("numba.cuda.np.numpy_support").from_dtype
        return cuda, types, from_dtype, config
    if _simulator_requested():
        raise ImportError(
            f"{ENV}={NUMBA_CUDA_MLIR} with NUMBA_ENABLE_CUDASIM=1: numba-cuda-mlir has no CUDA simulator "
            f"(the simulator is numba-cuda's: unset {ENV} or set it to {NUMBA_CUDA})")
    from numba_cuda_mlir import cuda
    from numba_cuda_mlir.numba_cuda import types
    from numba_cuda_mlir.numba_cuda.core import config
    from numba_cuda_mlir.numba_cuda.np.numpy_support import from_dtype

    return cuda, types, from_dtype, config


# numba-cuda 0.30 (maintenance mode, NVIDIA/numba-cuda#902) imports with NumPy
# 2.5 but fails at its first compile (np.row_stack is gone; #907 declined)
NUMBA_CUDA_NUMPY_BELOW = "2.5.0"


def _numpy_ok_for_numba_cuda():
    return np.lib.NumpyVersion(np.__version__) < NUMBA_CUDA_NUMPY_BELOW


def _select():
    """(target name, its modules): ``GPU_ACT_CUDA_TARGET`` when set; else
    numba-cuda, unless numba-cuda-mlir is installed and numba-cuda is not, or
    cannot work here (NumPy >= 2.5, or it fails to import). The simulator is
    numba-cuda's alone."""
    want = os.environ.get(ENV, "").strip()
    sim = _simulator_requested()
    if want:
        if want not in TARGETS:
            raise ImportError(f"{ENV}={want!r}: expected one of {', '.join(TARGETS)}")
        if not _installed(want):
            raise ImportError(f"{ENV}={want}, but {want} is not installed (see the README's install table)")
        return want, _import(want)
    if sim and not _installed(NUMBA_CUDA):
        raise ImportError("NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is numba-cuda's, which is not installed")
    mlir = _installed(NUMBA_CUDA_MLIR) and not sim
    if mlir and not (_installed(NUMBA_CUDA) and _numpy_ok_for_numba_cuda()):
        return NUMBA_CUDA_MLIR, _import(NUMBA_CUDA_MLIR)
    try:
        return NUMBA_CUDA, _import(NUMBA_CUDA)
    except Exception as e:  # numba-cuda installed but broken here: say so, once
        if not mlir:
            raise
        warnings.warn(
            f"gpu_act: numba-cuda is installed but does not import ({type(e).__name__}: {e}); "
            f"using numba-cuda-mlir ({ENV}={NUMBA_CUDA_MLIR} silences this)",
            RuntimeWarning, stacklevel=3)
        return NUMBA_CUDA_MLIR, _import(NUMBA_CUDA_MLIR)


TARGET, (cuda, types, from_dtype, _config) = _select()
MLIR = TARGET == NUMBA_CUDA_MLIR

# numba-cuda warns at every launch of fewer than 128 blocks, and small arrays
# launch few: off, unless the user set it (a process-wide Numba setting;
# numba-cuda-mlir keeps the same switch)
if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
    _config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

SIMULATOR = bool(getattr(_config, "ENABLE_CUDASIM", False))

if TARGET == NUMBA_CUDA and not SIMULATOR and not _numpy_ok_for_numba_cuda():
    warnings.warn(
        f"gpu_act: numba-cuda does not support NumPy {np.__version__} (its kernels fail to compile); "
        "install gpu_act[mlir-cu12] or gpu_act[mlir-cu13] (numba-cuda-mlir), or NumPy < 2.5",
        RuntimeWarning, stacklevel=2)

__all__ = ["cuda", "types", "from_dtype", "TARGET", "SIMULATOR", "available", "device", "kernel", "compile_ptx",
           "stream_for", "Limits", "limits"]


def available():
    """True when kernels can run: a driver and a device, or the simulator."""
    try:
        return SIMULATOR or cuda.is_available()
    except Exception:  # a broken driver install is "not available", never a crash on import
        return False


# ---------------------------------------------------------------- jit options
# The options gpu_act compiles with, in each target's spelling; numba-cuda-mlir
# makes an unknown keyword an error, so nothing else is passed.
# - numba-cuda: ``forceinline`` puts NVVM's alwaysinline on a device function.
# - numba-cuda-mlir 0.6: ``forceinline`` is accepted and ignored; ``inline``
#   decides, call site by call site, whether a device function is inlined at
#   the Numba IR level, before lowering. That must happen for every function
#   with a static shared array (one left as a call fails to verify: "does not
#   reference a valid global memref"), and cannot for a call with ``*args``
#   ("Calling a closure with *args is unsupported": the wrappers' ``_g(a, *p)``),
#   so: every call but those, which MLIR's and NVVM's inliners get instead.
def _inline_unless_star_args(expr, caller_ir, callee_ir):
    return getattr(expr, "vararg", None) is None


_INLINE = {NUMBA_CUDA: {"forceinline": True}, NUMBA_CUDA_MLIR: {"inline": _inline_unless_star_args}}


def _jit(fn, *, device=False, inline=False, launch_bounds=None, cache=False):
    if SIMULATOR:  # the simulator runs Python: no compile options
        return cuda.jit(device=True)(fn) if device else cuda.jit(fn)
    options = {}
    if device:
        options["device"] = True
    if inline:
        options.update(_INLINE[TARGET])
    if launch_bounds is not None:
        options["launch_bounds"] = launch_bounds
    if cache:
        options["cache"] = True
    return cuda.jit(fn, **options)


def device(fn):
    """A device function, inlined into its callers (``_INLINE``)."""
    return _jit(fn, device=True, inline=True)


REGISTERS_PER_SM = 65536
MAX_REGISTERS_PER_THREAD = 255


def kernel(fn, max_threads):
    """A kernel launched with at most ``max_threads`` threads per block. Where
    that many threads could run out of registers (more than 65,536 / 255 = 257),
    it is the kernel's launch bound, so the compiler keeps its registers within
    what they may use; smaller blocks leave the compiler free. Cached on disk where a cache directory is writable,
    so a second process (or test worker) loads it instead of compiling. No
    fastmath: NaN/inf semantics are part of the product."""
    # (max threads, 1 block per SM): a bound of max threads alone makes ptxas
    # aim at more resident blocks and spill to get there
    bound = (max_threads, 1) if max_threads * MAX_REGISTERS_PER_THREAD > REGISTERS_PER_SM else None
    return _jit(fn, launch_bounds=bound, cache=disk_cache())


class _TargetDevice:
    def __init__(self, cc):
        self.compute_capability = cc


_compile_lock = threading.Lock()


def compile_ptx(k, signature, cc):
    """PTX text of kernel ``k`` (a dispatcher made by ``kernel``, with its launch
    bound) compiled for ``signature`` (built from ``types``) and compute
    capability ``cc``.

    Works without a driver. numba-cuda compiles the device functions a kernel
    calls on first use for "the current device", which is then taken to be
    ``cc``. numba-cuda-mlir (0.6) asks the current device's compute capability
    on every compile, even one given ``cc``, and keeps the answer in
    ``numba_cuda_mlir.tools._cached_cc``: without a GPU that cache is set to
    ``cc`` for the compile (a RuntimeError says so if a release drops it).
    The kernel's Python function is compiled anew, so ``cc`` sets the target
    (numba-cuda-mlir's dispatchers keep the target they were made for).
    """
    bound = k.targetoptions.get("launch_bounds")
    with _compile_lock:
        with _assumed_device(cc):
            return cuda.compile_ptx(k.py_func, signature, cc=cc, launch_bounds=bound)[0]


class _assumed_device:
    """Within: the target's "current device" is one of compute capability ``cc``
    when no driver answers (a no-op when one does)."""

    def __init__(self, cc):
        self.cc = cc
        self.undo = None

    def __enter__(self):
        if available():
            return
        if MLIR:
            tools = importlib.import_module("numba_cuda_mlir.tools")
            if not hasattr(tools, "_cached_cc"):
                raise RuntimeError(
                    "numba-cuda-mlir: compile_ptx without a GPU sets numba_cuda_mlir.tools._cached_cc, "
                    "which this release does not have; gpu_act._cuda.compile_ptx needs a new way")
            saved = tools._cached_cc
            tools._cached_cc = tuple(self.cc)
            self.undo = lambda: setattr(tools, "_cached_cc", saved)
        else:
            dispatcher = importlib.import_module("numba.cuda.dispatcher")
            saved = dispatcher.get_current_device
            dispatcher.get_current_device = lambda: _TargetDevice(self.cc)
            self.undo = lambda: setattr(dispatcher, "get_current_device", saved)

    def __exit__(self, *exc):
        if self.undo is not None:
            self.undo()
        return False


# ---------------------------------------------------------------- device properties
Limits = namedtuple("Limits", "sm_count max_threads shared_per_block")

# the simulator has no device attributes; these match an sm_80-class device
_SIM_LIMITS = Limits(sm_count=108, max_threads=1024, shared_per_block=48 * 1024)


@functools.lru_cache(maxsize=None)
def limits(device_id):
    """Launch limits of device ``device_id`` (static shared memory bound: 48 KiB)."""
    if SIMULATOR:
        return _SIM_LIMITS
    dev = cuda.gpus[device_id]._device
    return Limits(dev.MULTIPROCESSOR_COUNT, dev.MAX_THREADS_PER_BLOCK, dev.MAX_SHARED_MEMORY_PER_BLOCK)


def current_device_id():
    return 0 if SIMULATOR else cuda.get_current_device().id


def device_scope(device_id):
    """Context manager making ``device_id`` current (a no-op when it already is)."""
    if SIMULATOR or device_id is None or device_id == current_device_id():
        return _NULL
    return cuda.gpus[device_id]


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_NULL = _Null()


# ---------------------------------------------------------------- streams
_stream_objects = {}


def stream_for(handle):
    """A Numba stream for an exported handle: None (no stream exported) -> the
    per-thread default stream, never the legacy one; 1 -> legacy default;
    2 -> per-thread default; any other int -> that external stream."""
    if SIMULATOR:
        return 0
    key = (handle, current_device_id())
    s = _stream_objects.get(key)
    if s is None:
        if handle is None or handle == 2:
            s = cuda.per_thread_default_stream()
        elif handle == 1:
            s = cuda.legacy_default_stream()
        else:
            s = cuda.external_stream(handle)
        _stream_objects[key] = s
    return s


def handle_of(stream):
    """The exported handle of a stream object, a Numba stream or another library's
    (``_streams``' numbering; the simulator's streams are all the default one)."""
    if SIMULATOR:
        return 1
    return _streams.handle_of(stream)


_events = threading.local()  # per thread: one event per device, recorded and waited on at once


def wait_for(handle, stream):
    """Make work queued on Numba ``stream`` from now on wait for the work queued so
    far on the stream with exported ``handle``: an event recorded there and
    waited on here (the wait takes the event's state when it is queued, so one
    event per thread and device serves every call)."""
    if SIMULATOR:
        return
    device = current_device_id()
    ev = getattr(_events, "by_device", {}).get(device)
    if ev is None:
        ev = cuda.event(timing=False)
        _events.by_device = {**getattr(_events, "by_device", {}), device: ev}
    ev.record(stream=stream_for(handle))
    ev.wait(stream=stream)


def synchronize(stream):
    if not SIMULATOR:
        stream.synchronize()


# ---------------------------------------------------------------- memory
def is_numba_array(obj):
    return getattr(type(obj), "__cuda_ndarray__", False)


def device_pointer(obj):
    """The device address of a Numba device array's first element."""
    if SIMULATOR:
        return obj._ary.__array_interface__["data"][0]
    return obj.device_ctypes_pointer.value or 0


def describe_numba(obj):
    """(pointer, shape, byte strides, dtype, device ordinal or None, stream handle
    or None) of a Numba device array; its stream is the one it was made on
    (0, Numba's default argument, means none)."""
    if SIMULATOR:
        return device_pointer(obj), obj.shape, obj.strides, obj.dtype, None, None
    st = obj.stream
    mem = obj.gpu_data
    device = mem.context.device.id if mem is not None and getattr(mem, "context", None) is not None else None
    return device_pointer(obj), obj.shape, obj.strides, obj.dtype, device, handle_of(st) if st else None


def flat(owner, pointer, lo, nbytes, dtype):
    """A 1-D device array of ``dtype`` over bytes [lo, lo + nbytes) of the memory
    ``owner`` holds (``pointer`` is the address of owner's first element)."""
    n = nbytes // dtype.itemsize
    if SIMULATOR:
        # owner is a FakeCUDAArray: view its NumPy buffer's bytes [lo, lo + nbytes)
        # (pointers are host addresses there), counted from its lowest element
        a = owner._ary
        start = tuple(slice(k - 1, k) if s < 0 else slice(0, 1) for k, s in zip(a.shape, a.strides))
        base = (a[start] if a.ndim else a.reshape(1)).view(np.uint8)
        skip = lo - base.__array_interface__["data"][0]
        raw = np.lib.stride_tricks.as_strided(base, shape=(skip + n * dtype.itemsize,), strides=(1,))
        return cuda.cudadrv.devicearray.FakeCUDAArray(raw[skip:].view(dtype))
    drv = cuda.cudadrv.driver
    mem = drv.MemoryPointer(cuda.current_context(), drv.binding.CUdeviceptr(lo), size=nbytes, owner=owner)
    return cuda.cudadrv.devicearray.DeviceNDArray((n,), (dtype.itemsize,), dtype, gpu_data=mem)


def device_array(shape, dtype, stream):
    return cuda.device_array(shape, dtype, stream=stream)


def wrap_pointer(pointer, shape, strides, dtype, owner):
    """A Numba device array over foreign memory (a CAI or DLPack export) on the
    current device (the caller makes the memory's device current)."""
    drv = cuda.cudadrv.driver
    size = drv.memory_size_from_info(shape, strides, dtype.itemsize) if shape and all(shape) else 0
    mem = drv.MemoryPointer(cuda.current_context(), drv.binding.CUdeviceptr(pointer), size=size, owner=owner)
    return cuda.cudadrv.devicearray.DeviceNDArray(shape, strides, dtype, gpu_data=mem)


def pointer_device(pointer):
    """The ordinal of the device that holds ``pointer``."""
    drv = cuda.cudadrv.driver
    attr = drv.binding.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
    return int(drv.driver.cuPointerGetAttribute(attr, drv.binding.CUdeviceptr(pointer)))
