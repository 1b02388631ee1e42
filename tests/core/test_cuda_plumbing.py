"""The CUDA backend's stream and array plumbing on real numba-cuda objects,
without a driver.

numba-cuda's ``Stream``, ``DeviceNDArray`` and ``__cuda_array_interface__``
v3 exports can be built without a GPU (over an address nothing reads). The
few driver queries the plumbing makes (the current device, creating an
external stream object, recording an event) are replaced by stand-ins that
build the same real objects, and the waits and launches are recorded, so the
tests see which stream each call's work goes on and what it waits for.
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda, _dispatch, _streams  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="real numba-cuda objects, not the simulator's")

drv = _cuda.cuda.cudadrv.driver
devicearray = _cuda.cuda.cudadrv.devicearray
_arrays = importlib.import_module("gpu_act.backends.cuda._arrays")
cuda_backend = importlib.import_module("gpu_act.backends.cuda")

BASE = 0x7F00_0000_0000  # a device address nothing dereferences here


def stream(handle):
    return drv.Stream(drv.binding.CUstream(handle))


def device_array(shape, stream_=0, dtype=np.float32, offset=0):
    dtype = np.dtype(dtype)
    strides = tuple(int(s) for s in np.empty(shape, dtype).strides)
    mem = drv.MemoryPointer(None, drv.binding.CUdeviceptr(BASE + offset), size=int(np.prod(shape)) * dtype.itemsize)
    return devicearray.DeviceNDArray(shape, strides, dtype, gpu_data=mem, stream=stream_)


class CAI:
    """A foreign array: only ``__cuda_array_interface__`` v3."""

    def __init__(self, cai):
        self.__cuda_array_interface__ = cai


@pytest.fixture
def driverless(monkeypatch):
    """Driver queries answered with real objects; waits recorded in ``log``."""
    log = []
    monkeypatch.setattr(_cuda, "current_device_id", lambda: 0)
    monkeypatch.setattr(_cuda, "pointer_device", lambda ptr: 0)
    monkeypatch.setattr(_cuda, "stream_for", lambda h: stream({None: 2}.get(h, h)))
    monkeypatch.setattr(_cuda, "wait_for", lambda handle, s: log.append((handle, _cuda.handle_of(s))))
    monkeypatch.setattr(_dispatch, "_load", lambda name: cuda_backend)
    return log


@pytest.mark.parametrize(
    "make,handle",
    [(lambda: 0, None), (lambda: stream(0), 1), (lambda: stream(1), 1), (lambda: stream(2), 2), (lambda: stream(0x1234), 0x1234)],
    ids=["no stream", "default", "legacy", "per-thread", "created"],
)
def test_numba_array_reports_its_stream_in_the_exported_numbering(make, handle):
    a = device_array((4, 5), make())
    ptr, shape, strides, dtype, device, h = _cuda.describe_numba(a)
    assert (ptr, shape, strides, dtype, h) == (BASE, (4, 5), (20, 4), np.float32, handle)
    d = _arrays.describe(a, 2)
    assert d.stream == handle and d.kind == "numba" and d.ptr == BASE


def test_handles_of_real_streams():
    assert _cuda.handle_of(stream(0)) == 1  # the legacy default stream's CUstream is 0
    assert _cuda.handle_of(stream(1)) == 1
    assert _cuda.handle_of(stream(2)) == 2
    assert _cuda.handle_of(stream(0xBEEF)) == 0xBEEF


def test_handles_of_every_stream_object():
    class Protocol:
        def __cuda_stream__(self):
            return (0, 0xCAFE)

    class CupyLike:
        ptr = 0

    class TorchLike:
        cuda_stream = 0xF00D

    assert _cuda.handle_of(Protocol()) == 0xCAFE
    assert _cuda.handle_of(CupyLike()) == 1  # CuPy's null stream is the legacy default
    assert _cuda.handle_of(TorchLike()) == 0xF00D
    assert _streams.Handle(1).__cuda_stream__() == (0, 0) and _streams.Handle(7).__cuda_stream__() == (0, 7)
    with pytest.raises(TypeError, match="stream must be"):
        _cuda.handle_of(object())


def test_cai_v3_stream_is_read(driverless):
    a = device_array((3, 2), stream(0x77))
    d = _arrays.describe(CAI(a.__cuda_array_interface__), 2)
    assert d.stream == 0x77 and d.ptr == BASE and d.strides == (8, 4) and d.kind == "foreign"


def test_call_follows_the_primary_input_and_waits_for_the_others(driverless):
    x = device_array((4, 3), stream(0xA))
    w = device_array((3,), stream(0xB), offset=4096)
    be, ctx = _dispatch.resolve("gpu_act.prelu", (x, w), "cuda")
    assert ctx.handle == 0xA and ctx.kind == "numba" and ctx.device == 0
    assert be.asarray(ctx, x) is ctx.first and driverless == []  # the primary: described once, same stream
    be.asarray(ctx, w)
    assert driverless == [(0xB, 0xA)]  # w's producer stream is waited on in x's


def test_stream_keyword_is_the_launch_stream_and_every_input_is_waited_for(driverless):
    x = device_array((4, 3), stream(0xA))
    g = device_array((4, 3), 0, offset=4096)  # no stream: nothing to wait for
    be, ctx = _dispatch.resolve("gpu_act.softmax_backward", (x, g), "cuda", stream(0xC))
    assert ctx.handle == 0xC
    be.asarray(ctx, x)
    be.asarray(ctx, g)
    assert driverless == [(0xA, 0xC)]


def test_input_without_stream_runs_on_the_per_thread_default_stream(driverless):
    x = device_array((4, 3), 0)
    _, ctx = _dispatch.resolve("gpu_act.relu", (x,), "cuda")
    assert ctx.handle == 2
