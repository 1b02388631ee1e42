"""Device arrays of any provenance, seen without copying.

``DevArray`` is the backend's native array: the memory's address, shape,
byte strides and dtype, the object that owns the memory (a Numba device
array, a CuPy array, a PyTorch tensor, a DLPack export, ...) and that object's
kind, device and stream. Kernels get 1-D views of the memory plus element
offsets and strides (``_launch.operands``), so every layout (transposed,
negative or zero strides) is read in place.

The call context (which allocator results come from, which stream work is
launched on) is kept per thread: it is the context of the last input seen by
``asarray``, or the stream passed as ``stream=``.
"""

import threading

import numpy as np

from ... import _cuda
from . import _dlpack

_TORCH_DTYPES = {}


class DevArray:
    __slots__ = ("owner", "kind", "ptr", "shape", "strides", "dtype", "device", "stream", "whole")

    def __init__(self, owner, kind, ptr, shape, strides, dtype, device, stream, whole=True):
        self.owner = owner
        self.kind = kind  # "numba" | "cupy" | "torch" | "foreign" (CAI / DLPack)
        self.ptr = ptr
        self.shape = tuple(int(n) for n in shape)
        self.strides = tuple(int(s) for s in strides)
        self.dtype = np.dtype(dtype)
        self.device = device  # ordinal, or None for the current device
        self.stream = stream  # exported stream handle, or None
        self.whole = whole  # the owner itself, not a view made by reshape

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for k in self.shape:
            n *= k
        return n

    def _view(self, shape, strides):
        return DevArray(self.owner, self.kind, self.ptr, shape, strides, self.dtype, self.device, self.stream, False)

    def reshape(self, shape):
        """A view of another shape; the dims of size > 1 must be kept in order
        (inserting/removing unit dims), or the array must be C-contiguous."""
        shape = tuple(int(n) for n in shape)
        if int(np.prod(shape)) != self.size:
            raise ValueError(f"cannot reshape a device array of size {self.size} into shape {shape}")
        kept = [(n, s) for n, s in zip(self.shape, self.strides) if n != 1]
        if [n for n, _ in kept] == [n for n in shape if n != 1]:
            it = iter(s for _, s in kept)
            return self._view(shape, tuple(next(it) if n != 1 else 0 for n in shape))
        if self.is_c_contiguous():
            strides, acc = [], self.dtype.itemsize
            for n in reversed(shape):
                strides.append(acc)
                acc *= n
            return self._view(shape, tuple(reversed(strides)))
        raise ValueError(f"cannot reshape a non-contiguous device array of shape {self.shape} into {shape} without a copy")

    def is_c_contiguous(self):
        acc = self.dtype.itemsize
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != acc:
                return False
            acc *= n
        return True

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        from .elementwise import convert

        out = empty(self.shape, dtype)
        if self.size:
            convert(self, out)
        return out

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "strides": self.strides,
            "data": (self.ptr, False),
            "typestr": self.dtype.str,
            "version": 3,
            "stream": self.stream,
        }


# ---------------------------------------------------------------- the call context
class _Context(threading.local):
    kind = "numba"
    device = None
    handle = None  # the input's exported stream handle
    forced = None  # a Numba stream given as stream=


_ctx = _Context()


def use_stream(stream):
    """Launch the next calls' work on ``stream`` (None: the inputs' streams)."""
    _ctx.forced = None if stream is None else _cuda.numba_stream(stream)


def launch_stream():
    """The Numba stream this call's work goes on."""
    if _ctx.forced is not None:
        return _ctx.forced
    return _cuda.stream_for(_ctx.handle)


def launch_device():
    return _ctx.device


# ---------------------------------------------------------------- import
def _torch_dtype(t):
    dt = _TORCH_DTYPES.get(t.dtype)
    if dt is None:
        name = str(t.dtype).replace("torch.", "")
        try:
            dt = np.dtype(name)
        except TypeError:
            raise TypeError(
                f"unsupported dtype {t.dtype} of a PyTorch tensor; accepted: float16, float32, float64 "
                "(and integer class indices for cross_entropy targets)"
            ) from None
        _TORCH_DTYPES[t.dtype] = dt
    return dt


def describe(obj):
    """``obj`` as a DevArray, without copying and without changing the context."""
    if isinstance(obj, DevArray):
        return obj
    mod = type(obj).__module__.split(".")[0]
    if mod == "torch":
        if not obj.is_cuda:
            _not_cuda(obj)
        import torch

        dt = _torch_dtype(obj)
        handle = torch.cuda.current_stream(obj.device).cuda_stream or 1  # 0 is the legacy default stream
        strides = [s * dt.itemsize for s in obj.stride()]
        return DevArray(obj, "torch", obj.data_ptr(), obj.shape, strides, dt, obj.device.index, handle)
    if _cuda.is_numba_array(obj):
        ptr, shape, strides, dt, handle = _cuda.describe_numba(obj)
        return DevArray(obj, "numba", ptr, shape, strides, dt, None, handle)
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        return _from_cai(obj, cai, "cupy" if mod == "cupy" else "foreign")
    if hasattr(obj, "__dlpack__"):
        return _dlpack.import_(obj, launch_stream_handle(), DevArray)
    return _not_cuda(obj)


def launch_stream_handle():
    """The handle DLPack producers are asked to make their data ready on."""
    return 2 if _ctx.forced is None else int(_ctx.forced.handle.value or 0) or 1


def _not_cuda(obj):
    raise TypeError(
        f"the CUDA backend takes CUDA device arrays (Numba device arrays, CuPy arrays, PyTorch CUDA tensors, "
        f"objects with __cuda_array_interface__ or a CUDA __dlpack__), got {type(obj).__name__}"
    )


def _from_cai(obj, cai, kind):
    if cai.get("mask") is not None:
        raise TypeError("masked CUDA arrays are not supported")
    dt = np.dtype(cai["typestr"])
    shape = tuple(cai["shape"])
    strides = cai.get("strides")
    if strides is None:
        acc, st = dt.itemsize, []
        for n in reversed(shape):
            st.append(acc)
            acc *= n
        strides = tuple(reversed(st))
    ptr = cai["data"][0]
    if kind == "cupy":
        device = obj.device.id
    else:
        device = _cuda.pointer_device(ptr) if ptr else None
    arr = DevArray(obj, kind, ptr, shape, strides, dt, device, cai.get("stream"))
    if cai["data"][1]:
        arr.kind += "-readonly"
    return arr


def asarray(obj):
    """``obj`` as a DevArray; its kind, device and stream become the call's."""
    a = describe(obj)
    _ctx.kind = a.kind.replace("-readonly", "")
    _ctx.device = a.device
    _ctx.handle = a.stream
    return a


def as_out(fname, obj):
    a = describe(obj)
    if a.kind.endswith("-readonly"):
        raise ValueError(f"{fname}: out is read-only")
    return a


# ---------------------------------------------------------------- allocation and results
def empty(shape, dtype):
    """A new C-contiguous array from the call's allocator (CuPy's pool for CuPy
    input, PyTorch's caching allocator for tensors, Numba otherwise), on the
    call's device, ordered on the call's stream."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    kind = _ctx.kind
    with _cuda.device_scope(_ctx.device):
        if kind == "torch":
            import torch

            owner = torch.empty(shape, dtype=getattr(torch, dtype.name), device=torch.device("cuda", _ctx.device))
        elif kind == "cupy":
            import cupy

            owner = cupy.empty(shape, dtype)
        else:
            owner = _cuda.device_array(shape, dtype, launch_stream())
            kind = "numba"
    a = describe(owner)
    a.kind = kind
    return a


def wrap(result, like):
    """``result`` as an object of ``like``'s kind (zero-copy)."""
    mod = type(like).__module__.split(".")[0]
    want = "torch" if mod == "torch" else "cupy" if mod == "cupy" else "numba"
    owner = result.owner
    if result.kind == want and result.whole:
        return owner
    if want == "torch":
        import torch

        if result.kind == "torch":
            return owner.as_strided(result.shape, [s // result.dtype.itemsize for s in result.strides])
        return torch.as_tensor(result, device=torch.device("cuda", result.device or 0))
    if want == "cupy":
        import cupy

        if result.kind == "cupy":
            return cupy.lib.stride_tricks.as_strided(owner, result.shape, result.strides)
        return cupy.asarray(result)
    if _cuda.SIMULATOR:
        return _cuda.cuda.cudadrv.devicearray.FakeCUDAArray(
            np.lib.stride_tricks.as_strided(owner._ary, result.shape, result.strides)
        )
    return _cuda.wrap_pointer(result.ptr, result.shape, result.strides, result.dtype, owner)

