"""The one module that imports the Numba CUDA target.

Everything else in gpu_act reaches ``numba.cuda`` through the names below, so
a switch of CUDA front end (numba-cuda-mlir, ...) or a difference between the
real target and the simulator (``NUMBA_ENABLE_CUDASIM=1``) is handled here.

- ``cuda``: the module, for use *inside* kernels (``cuda.grid``, shared arrays,
  shuffles); the simulator finds it by that name in a kernel's globals.
- ``device`` / ``kernel``: the decorators for device functions and kernels.
- memory: ``describe_numba``, ``flat``, ``device_array``, ``wrap_pointer``
  describe, view and allocate device memory (raw pointers on the real target,
  NumPy buffers in the simulator).
- streams: ``stream_for`` (a Numba stream for an exported handle),
  ``handle_of`` and ``wait_for`` (order one stream after another's work so far).
- ``compile_ptx``: PTX for a kernel and signature, without a driver.
"""

import functools
import os
import threading
from collections import namedtuple

import numpy as np
from numba import cuda
from numba.cuda.core import config as _config

from . import _streams
from ._compile import disk_cache

# numba-cuda warns at every launch of fewer than 128 blocks, and small arrays
# launch few: off, unless the user set it (a process-wide Numba setting)
if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
    _config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

SIMULATOR = bool(_config.ENABLE_CUDASIM)

__all__ = ["cuda", "SIMULATOR", "available", "device", "kernel", "compile_ptx", "stream_for", "Limits", "limits"]


def available():
    """True when kernels can run: a driver and a device, or the simulator."""
    try:
        return SIMULATOR or cuda.is_available()
    except Exception:  # a broken driver install is "not available", never a crash on import
        return False


def device(fn):
    """A device function, inlined into its callers (NVVM alwaysinline)."""
    if SIMULATOR:
        return cuda.jit(device=True)(fn)
    return cuda.jit(device=True, forceinline=True)(fn)


REGISTERS_PER_SM = 65536
MAX_REGISTERS_PER_THREAD = 255


def kernel(fn, max_threads):
    """A kernel launched with at most ``max_threads`` threads per block. Where
    that many threads could run out of registers (more than 65,536 / 255 = 257),
    it is the kernel's launch bound, so the compiler keeps its registers within
    what they may use; smaller blocks leave the compiler free. Cached on disk where a cache directory is writable,
    so a second process (or test worker) loads it instead of compiling. No
    fastmath: NaN/inf semantics are part of the product."""
    if SIMULATOR:
        return cuda.jit(fn)
    # (max threads, 1 block per SM): a bound of max threads alone makes ptxas
    # aim at more resident blocks and spill to get there
    bound = (max_threads, 1) if max_threads * MAX_REGISTERS_PER_THREAD > REGISTERS_PER_SM else None
    return cuda.jit(fn, launch_bounds=bound, cache=disk_cache())


class _TargetDevice:
    def __init__(self, cc):
        self.compute_capability = cc


def compile_ptx(k, signature, cc):
    """PTX text of kernel ``k`` (a dispatcher made by ``kernel``, with its launch
    bound) compiled for ``signature`` and compute capability ``cc``.

    Works without a driver: device functions called by the kernel are compiled
    on first use for "the current device", which is then taken to be ``cc``.
    """
    from numba.cuda import dispatcher

    bound = k.targetoptions.get("launch_bounds")
    if available():
        return cuda.compile_ptx(k.py_func, signature, cc=cc, launch_bounds=bound)[0]
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _TargetDevice(cc)
    try:
        return cuda.compile_ptx(k.py_func, signature, cc=cc, launch_bounds=bound)[0]
    finally:
        dispatcher.get_current_device = saved


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
        # owner is a FakeCUDAArray: view its NumPy buffer from the lowest address
        a = owner._ary
        start = tuple(slice(k - 1, k) if s < 0 else slice(0, 1) for k, s in zip(a.shape, a.strides))
        base = a[start] if a.ndim else a.reshape(1)
        view = np.lib.stride_tricks.as_strided(base, shape=(n,), strides=(dtype.itemsize,))
        return cuda.cudadrv.devicearray.FakeCUDAArray(view)
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
