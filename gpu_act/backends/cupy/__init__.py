"""The CuPy backend: CUDA C kernels (top-level ``kernels/``, shipped as
``gpu_act.kernels``) compiled by CuPy on first use, for CuPy arrays.

Implements the backend interface of ``gpu_act.backends.cpu``. Every kernel
runs on CuPy's current stream without synchronising with the host (index
targets of ``cross_entropy`` are the exception: checking their range reads
two counts back) and returns CuPy arrays on the input's device. Arrays from
other CUDA libraries (``__cuda_array_interface__``) are wrapped without copies.
"""

import contextlib
import threading

import cupy
import numpy as np

from . import elementwise as _ew
from . import rowwise as _rows

NAME = "cupy"

_call = threading.local()  # the device of this thread's current call


def available():
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def asarray(obj):
    a = cupy.asarray(obj)  # no copy for CuPy arrays and __cuda_array_interface__ objects
    _call.device = a.device.id
    return a


def as_out(fname, obj):
    if isinstance(obj, cupy.ndarray):
        return obj
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(
            f"{fname}: out must be a cupy.ndarray (or a CUDA array exposing __cuda_array_interface__) "
            f"for CuPy input, got {type(obj).__name__}"
        )
    if cai["data"][1]:
        raise ValueError(f"{fname}: out is read-only")
    return cupy.asarray(obj)


def empty(shape, dtype):
    """A new array on the device of the arrays this call converted (``asarray``
    runs on every input before the public API allocates)."""
    with cupy.cuda.Device(getattr(_call, "device", None)):
        return cupy.empty(shape, dtype)


def wrap(result, like):
    return result


def use_stream(stream):
    """Run this thread's next calls on ``stream`` (a CuPy stream, a Numba stream,
    a torch.cuda.Stream or an object with ``__cuda_stream__``); None: CuPy's current stream."""
    _call.stream = None if stream is None else _as_cupy_stream(stream)


def _as_cupy_stream(s):
    if isinstance(s, cupy.cuda.Stream):
        return s
    if hasattr(s, "__cuda_stream__"):
        handle = s.__cuda_stream__()[1]
    elif hasattr(s, "cuda_stream"):  # torch.cuda.Stream
        handle = s.cuda_stream
    elif hasattr(s, "handle"):  # numba stream
        handle = s.handle.value
    else:
        raise TypeError(
            f"stream must be a CuPy stream, a Numba stream, a torch.cuda.Stream or an object with __cuda_stream__, "
            f"got {type(s).__name__}"
        )
    return cupy.cuda.ExternalStream(int(handle or 0))


@contextlib.contextmanager
def _on(a):
    # the array's device, and the stream= of the call if one was given
    with cupy.cuda.Device(a.device.id):
        stream = getattr(_call, "stream", None)
        if stream is None:
            yield
        else:
            with stream:
                yield


def unary(f, x, params, out):
    with _on(x):
        _ew.unary(f, x, params, out)


def scaled(f, g, x, params, out):
    with _on(x):
        _ew.scaled(f, g, x, params, out)


def unary_slope(f, x, slope, out):
    with _on(x):
        _ew.unary_slope(f, x, slope, out)


def scaled_slope(f, g, x, slope, out):
    with _on(x):
        _ew.scaled_slope(f, g, x, slope, out)


def rrelu_slopes(shape, key, lower, upper, dtype):
    with cupy.cuda.Device(getattr(_call, "device", None)):
        return _ew.rrelu_slopes(shape, key, lower, upper, dtype)


def channel_sum(a, channel_axis, dtype):
    """Sum over every axis but ``channel_axis`` (all axes when None), accumulated
    in at least float32, as a 1-D array of ``dtype``."""
    acc = np.result_type(a.dtype, np.float32)
    axes = tuple(i for i in range(a.ndim) if i != channel_axis)
    with _on(a):
        return cupy.sum(a, axis=axes, dtype=acc).reshape(-1).astype(dtype)


def softmax(x, axis, temperature, log, out):
    with _on(x):
        _rows.softmax(x, axis, temperature, log, out)


def softmax_backward(g, y, axis, temperature, log, out):
    with _on(y):
        _rows.softmax_backward(g, y, axis, temperature, log, out)


def maxout(x, pool, axis, out):
    with _on(x):
        _rows.maxout(x, pool, axis, out)


def maxout_backward(g, x, pool, axis, out):
    with _on(x):
        _rows.maxout_backward(g, x, pool, axis, out)


def check_targets(fname, target, classes, ignore_index):
    """Count of non-ignored targets; ValueError naming an out-of-range one.
    One read-back of two counts (the only host synchronisation of the backend)."""
    with _on(target):
        valid = target != ignore_index
        bad = valid & ((target < 0) | (target >= classes))
        n_bad, n_valid = (int(v) for v in cupy.stack([cupy.count_nonzero(bad), cupy.count_nonzero(valid)]).get())
        if n_bad:
            raise ValueError(
                f"{fname}: target index {int(target[bad][0])} is out of range; expected 0 <= target < {classes} "
                f"or ignore_index={ignore_index}"
            )
    return n_valid


def cross_entropy(z, target, axis, index, ignore_index, eps, reduction, count, want_grad):
    """(loss, grad): loss reduced as asked (a 0-d array for mean/sum) in z's dtype."""
    scale = (1.0 / count if count else 0.0) if reduction == "mean" else 1.0
    with _on(z):
        loss, grad = _rows.cross_entropy_rows(z, target, axis, index, ignore_index, eps, scale, want_grad)
        if reduction == "none":
            loss = loss.astype(z.dtype)
        elif reduction == "sum":
            loss = loss.sum().astype(z.dtype)
        elif count:
            loss = (loss.sum() / count).astype(z.dtype)
        else:
            loss = cupy.full((), np.nan, z.dtype)
    return loss, grad
