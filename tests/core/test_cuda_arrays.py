"""Host-side pieces of the CUDA backend that need no device: the DLPack
capsule parser (checked on NumPy's own CPU exports) and the layout helpers."""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

_dlpack = importlib.import_module("gpu_act.backends.cuda._dlpack")
_operands = importlib.import_module("gpu_act.backends.cuda._operands")


@pytest.mark.parametrize(
    "make",
    [lambda a: a, lambda a: a.T, lambda a: a[::2, 1:], lambda a: a[:, ::-1]],
    ids=["contiguous", "transposed", "sliced", "reversed"],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_dlpack_parse_matches_array_interface(make, dtype):
    a = make(np.arange(24, dtype=dtype).reshape(4, 6))
    holder, ptr, shape, strides, dt, device = _dlpack.parse(a.__dlpack__())
    assert ptr == a.__array_interface__["data"][0]
    assert shape == a.shape and strides == a.strides and dt == a.dtype
    assert device[0] == 1  # kDLCPU
    del holder  # calls the producer's deleter exactly once


def test_bfloat16_of_torch_and_dlpack_is_ml_dtypes_bfloat16():
    # PyTorch's bfloat16 tensors, described directly or through DLPack (kDLBfloat,
    # checked on a CPU export), become ml_dtypes' bfloat16 arrays of the backend
    torch = pytest.importorskip("torch")
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    _arrays = importlib.import_module("gpu_act.backends.cuda._arrays")
    t = torch.arange(24, dtype=torch.bfloat16).reshape(4, 6).t()
    assert _arrays._torch_dtype(t) == bf16
    holder, ptr, shape, strides, dt, device = _dlpack.parse(t.__dlpack__())
    assert dt == bf16 and ptr == t.data_ptr() and shape == (6, 4) and strides == (2, 12)
    del holder


def test_merge_dims_keeps_c_order_and_merges_only_shared_runs():
    shape, (sa, sb) = _operands.merged((2, 3, 4), [(48, 16, 4), (4, 32, 8)])
    assert shape == (2, 12) and sa == (48, 4) and sb == (4, 8)
    shape, (sa,) = _operands.merged((1, 5, 1), [(0, 8, 0)])
    assert shape == (5,) and sa == (8,)
    shape, (sa,) = _operands.merged((1,), [(0,)])
    assert shape == (1,) and sa == (0,)
