"""Zero-copy import of a (legacy, unversioned) DLPack capsule.

The capsule points at a ``DLManagedTensor``; the tensor's memory stays valid
until its ``deleter`` is called, which ``_Holder`` does when the last view of
it goes away. The capsule is renamed "used_dltensor" so that its own
destructor leaves the tensor alone (the DLPack protocol for consumers).
"""

import ctypes

import numpy as np

from ..._layout import c_strides
from . import _codecs

_CUDA_DEVICES = {2: "cuda", 3: "cuda host", 13: "cuda managed"}
_CODES = {0: "i", 1: "u", 2: "f"}
_BFLOAT = 4  # kDLBfloat: 16 bits are ml_dtypes' bfloat16


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]


class _Holder:
    """Owns an imported DLManagedTensor; calls its deleter when collected."""

    def __init__(self, managed, producer):
        self._managed = managed
        self.producer = producer  # keeps the exporting object alive as well

    def __del__(self):
        m = self._managed
        if m and m.contents.deleter:
            m.contents.deleter(m)


def parse(capsule):
    """(holder, pointer, shape, byte strides, dtype, (device type, id)) of a DLPack capsule."""
    raw = _api.PyCapsule_GetPointer(capsule, b"dltensor")
    managed = ctypes.cast(raw, ctypes.POINTER(_DLManagedTensor))
    t = managed.contents.dl_tensor
    bfloat16 = (t.dtype.code, t.dtype.bits) == (_BFLOAT, 16)
    if t.dtype.lanes != 1 or not (t.dtype.code in _CODES or bfloat16):
        raise TypeError(f"DLPack tensor of dtype code {t.dtype.code} with {t.dtype.lanes} lanes is not supported")
    dtype = _codecs.bfloat16() if bfloat16 else np.dtype(f"{_CODES[t.dtype.code]}{t.dtype.bits // 8}")
    shape = tuple(t.shape[i] for i in range(t.ndim))
    if t.strides:
        strides = tuple(t.strides[i] * dtype.itemsize for i in range(t.ndim))
    else:
        strides = c_strides(shape, dtype.itemsize)
    _api.PyCapsule_SetName(capsule, b"used_dltensor")
    holder = _Holder(managed, None)
    return holder, (t.data or 0) + t.byte_offset, shape, strides, dtype, (t.device.device_type, t.device.device_id)


def import_(obj, stream_handle, make):
    """``obj.__dlpack__`` imported as ``make(owner, kind, ptr, shape, strides, dtype, device, stream)``;
    the producer is asked to make the data ready on ``stream_handle``."""
    dev_type, _ = obj.__dlpack_device__()
    if dev_type not in _CUDA_DEVICES:
        raise TypeError(f"{type(obj).__name__} exports DLPack memory on device type {dev_type}, not a CUDA device")
    holder, ptr, shape, strides, dtype, (_, dev_id) = parse(obj.__dlpack__(stream=stream_handle))
    holder.producer = obj
    return make(holder, "foreign", ptr, shape, strides, dtype, dev_id, None)
