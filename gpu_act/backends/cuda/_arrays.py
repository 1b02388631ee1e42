"""Device arrays of any provenance, seen without copying.

``DevArray`` is the backend's native array: the memory's address, shape,
byte strides and dtype, the object that owns the memory (a Numba device
array, a CuPy array, a PyTorch tensor, a DLPack export, ...) and that object's
kind, device and stream. Kernels get 1-D views of the memory plus element
offsets and strides (``_operands``), so every layout (transposed,
negative or zero strides) is read in place.

A call's context (``Call``: which allocator results come from, which device
and stream work is launched on) comes from its primary input, or the stream
passed as ``stream=``; every other input's exported stream is waited on in
the launch stream before the call's work starts.
"""

import numpy as np

from ... import _cuda, _layout, _streams
from . import _codecs, _dlpack

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

    def halves(self, axis):
        """(first half, second half) along ``axis`` (of even length), views."""
        h = self.shape[axis] // 2
        shape = self.shape[:axis] + (h,) + self.shape[axis + 1 :]
        second = DevArray(self.owner, self.kind, self.ptr + h * self.strides[axis], shape, self.strides, self.dtype,
                          self.device, self.stream, False)
        return self._view(shape, self.strides), second

    def is_c_contiguous(self):
        acc = self.dtype.itemsize
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != acc:
                return False
            acc *= n
        return True

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
class Call:
    """Where one call runs, from its primary input (or ``stream=``): the kind of
    array results are made of ("numba", "cupy" or "torch"), the device ordinal,
    the Numba stream work is launched on and that stream's exported handle
    (1: legacy default stream, 2: per-thread default, else the CUstream)."""

    __slots__ = ("kind", "device", "stream", "handle", "source", "first")

    def __init__(self, kind, device, stream, handle, source, first):
        self.kind = kind
        self.device = device
        self.stream = stream
        self.handle = handle
        self.source = source  # the primary input and its DevArray, described once
        self.first = first


def context(primary, stream):
    """The Call for a call whose primary input is ``primary``; ``stream`` (any
    stream object, or None: the primary input's own stream) is where work goes."""
    forced = None if stream is None else _cuda.handle_of(stream)
    a = describe(primary, 2 if forced is None else forced)
    kind = a.kind.replace("-readonly", "")
    if kind == "foreign":
        kind = "numba"
    device = a.device if a.device is not None else _cuda.current_device_id()
    with _cuda.device_scope(device):
        launch = _cuda.stream_for(a.stream if forced is None else forced)
    return Call(kind, device, launch, _cuda.handle_of(launch), primary, a)


# ---------------------------------------------------------------- import
def _torch_dtype(t):
    dt = _TORCH_DTYPES.get(t.dtype)
    if dt is None:
        name = str(t.dtype).replace("torch.", "")
        try:
            dt = _codecs.bfloat16() if name == "bfloat16" else np.dtype(name)
        except TypeError:
            raise TypeError(
                f"unsupported dtype {t.dtype} of a PyTorch tensor; accepted: float16, float32, float64, bfloat16 "
                "(and integer class indices for cross_entropy targets)"
            ) from None
        _TORCH_DTYPES[t.dtype] = dt
    return dt


def describe(obj, stream_handle):
    """``obj`` as a DevArray, without copying; a DLPack producer is asked to make
    its data ready on ``stream_handle``."""
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
        ptr, shape, strides, dt, device, handle = _cuda.describe_numba(obj)
        return DevArray(obj, "numba", ptr, shape, strides, dt, device, handle)
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        return _from_cai(obj, cai, "cupy" if mod == "cupy" else "foreign")
    if hasattr(obj, "__dlpack__"):
        return _dlpack.import_(obj, stream_handle, DevArray)
    return _not_cuda(obj)


def _not_cuda(obj):
    raise TypeError(
        f"the CUDA backend takes CUDA device arrays (Numba device arrays, CuPy arrays, PyTorch CUDA tensors, "
        f"objects with __cuda_array_interface__ or a CUDA __dlpack__), got {type(obj).__name__}"
    )


def _from_cai(obj, cai, kind):
    if cai.get("mask") is not None:
        raise TypeError("masked CUDA arrays are not supported")
    # a CuPy array's own dtype: its typestr of a bfloat16 array ("<V2") names no float
    dt = np.dtype(obj.dtype if kind == "cupy" else cai["typestr"])
    shape = tuple(cai["shape"])
    strides = cai.get("strides") or _layout.c_strides(shape, dt.itemsize)
    ptr = cai["data"][0]
    if kind == "cupy":
        device = obj.device.id
    else:
        device = _cuda.pointer_device(ptr) if ptr else None
    arr = DevArray(obj, kind, ptr, shape, strides, dt, device, cai.get("stream"))
    if cai["data"][1]:
        arr.kind += "-readonly"
    return arr


def asarray(ctx, obj):
    """``obj`` as a DevArray; work on it in the call's stream waits for the
    stream it was exported on (``__cuda_array_interface__`` v3's rule). A
    PyTorch tensor read on another stream than its own is recorded as in use
    there, so that PyTorch's allocator does not hand its memory to other work
    before the call's kernels are done with it."""
    a = ctx.first if obj is ctx.source else describe(obj, ctx.handle)
    if a.stream is not None and a.stream != ctx.handle:
        with _cuda.device_scope(ctx.device):
            _cuda.wait_for(a.stream, ctx.stream)
        if a.kind == "torch":
            obj.record_stream(_streams.torch_stream(ctx.handle, ctx.device))
    return a


def as_out(ctx, fname, obj):
    a = asarray(ctx, obj)
    if a.kind.endswith("-readonly"):
        raise ValueError(f"{fname}: out is read-only")
    return a


# ---------------------------------------------------------------- allocation and results
def empty(ctx, shape, dtype):
    """A new C-contiguous array from the call's allocator (CuPy's pool for CuPy
    input, PyTorch's caching allocator for tensors, Numba otherwise), on the
    call's device, allocated on the call's stream: a stream-ordered allocator
    then never hands the memory to other work while the call's kernels may
    still use it."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    with _cuda.device_scope(ctx.device):
        if ctx.kind == "torch":
            owner = _torch_empty(ctx, shape, dtype)
            a = DevArray(owner, "torch", owner.data_ptr(), shape, _layout.c_strides(shape, dtype.itemsize), dtype, ctx.device, None)
        elif ctx.kind == "cupy":
            owner = _cupy_empty(ctx, shape, dtype)
            a = DevArray(owner, "cupy", owner.data.ptr, shape, owner.strides, dtype, ctx.device, None)
        else:
            owner = _cuda.device_array(shape, dtype, ctx.stream)
            a = DevArray(owner, "numba", _cuda.device_pointer(owner), shape, owner.strides, dtype, ctx.device, None)
    return a


def _torch_empty(ctx, shape, dtype):
    import torch

    dt = getattr(torch, dtype.name)
    dev = torch.device("cuda", ctx.device)
    if (torch.cuda.current_stream(dev).cuda_stream or 1) == ctx.handle:
        return torch.empty(shape, dtype=dt, device=dev)
    with torch.cuda.stream(_streams.torch_stream(ctx.handle, ctx.device)):
        return torch.empty(shape, dtype=dt, device=dev)


def _cupy_empty(ctx, shape, dtype):
    import cupy

    with _streams.cupy_stream(ctx.handle, ctx.device):
        return cupy.empty(shape, dtype)


def wrap(ctx, result, like):
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
        return torch.as_tensor(result, device=torch.device("cuda", ctx.device))
    if want == "cupy":
        import cupy

        if result.kind == "cupy":
            return cupy.lib.stride_tricks.as_strided(owner, result.shape, result.strides)
        return cupy.asarray(result)
    if _cuda.SIMULATOR:
        return _cuda.cuda.cudadrv.devicearray.FakeCUDAArray(
            np.lib.stride_tricks.as_strided(owner._ary, result.shape, result.strides)
        )
    with _cuda.device_scope(ctx.device):  # the array belongs to the context of the memory's device
        return _cuda.wrap_pointer(result.ptr, result.shape, result.strides, result.dtype, owner)

