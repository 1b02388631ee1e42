"""Storage codecs: how the CUDA kernels read and write array elements.

bfloat16 (ml_dtypes'): Numba's own bfloat16 type supports only devices of
compute capability 8.0 and up (``numba.cuda.is_bfloat16_supported``), so
gpu_act does not type bfloat16 arrays as such. They reach the kernels as their
uint16 views (``storage``), and each element is converted on the way in and
out with a few integer operations, as the CPU backend's codecs do, on every
device, both targets (numba-cuda, numba-cuda-mlir) and the simulator:

- load: the 16 bits shifted into float32's upper half and read as float32
  (exact), then converted to the compute type;
- store: a float32 (a float64 is first rounded to float32, as ml_dtypes'
  astype does) rounded to nearest even on its upper half, by adding 0x7FFF
  plus the lowest kept bit before the shift (a carry into the exponent is the
  right result, up to inf); a NaN stays NaN (its top payload bits, quieted).

The bit casts go through a one-element local array viewed as the other type,
which both targets compile to a register move (``tests/toolchain/test_nvvm_ptx.py``
checks that no local memory is left). Every other dtype is stored as itself:
loading converts to the compute type (``_C``), storing is the assignment's
own conversion (float16 included).

A kernel binds one load per input operand and one store per output operand
(``load(codec, ctype)``, ``store(codec)``) and is built once per combination
of its operands' codecs (``of``: ``BF16`` or ``NATIVE``); for native operands
those are the plain conversion to the compute type and the identity.
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import is_bfloat16
from ._kernels import cached

BF16 = "bf16"
NATIVE = "native"

cuda = _cuda.cuda
_U32 = _cuda.types.uint32
_F32 = _cuda.types.float32
_UINT16 = np.dtype(np.uint16)


def bfloat16():
    """ml_dtypes' bfloat16 dtype, for device memory that holds bfloat16 where no
    ml_dtypes array was seen (a PyTorch tensor, a DLPack export): ml_dtypes is
    imported then, as NumPy's name for the elements."""
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(
            "bfloat16 device arrays are described by ml_dtypes' bfloat16 dtype: pip install ml_dtypes"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def of(dtype):
    """The codec of arrays of ``dtype``."""
    return BF16 if is_bfloat16(dtype) else NATIVE


def storage(dtype):
    """The dtype kernels see arrays of ``dtype`` as."""
    return _UINT16 if is_bfloat16(dtype) else np.dtype(dtype)


def value_type(dtype):
    """The type one element of an array of ``dtype`` is held in exactly: float32
    for bfloat16, else ``dtype``."""
    return np.dtype(np.float32) if is_bfloat16(dtype) else np.dtype(dtype)


def tag(codecs):
    """The codecs of a kernel's operands, for its name."""
    return "-".join(codecs)


# (np.uint32 around each step keeps the integer arithmetic in 32 bits: Numba
# widens unsigned 32-bit operations to 64)
def _bf16_to_f32(b):
    v = cuda.local.array(1, _U32)
    v[0] = np.uint32(np.uint32(b) << np.uint32(16))
    return v.view(np.float32)[0]


def _f32_to_bf16(x):
    v = cuda.local.array(1, _F32)
    v[0] = x  # a float64 rounds to float32 here
    u = v.view(np.uint32)[0]
    hi = np.uint32(u >> np.uint32(16))
    if np.uint32(u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN: quiet bit set, sign and top payload kept
        return np.uint16(hi | np.uint32(0x40))
    # round to nearest even: below half of the kept unit (0x8000) rounds down,
    # above up, a tie up only when the kept part is odd
    return np.uint16(np.uint32(u + np.uint32(np.uint32(0x7FFF) + (hi & np.uint32(1)))) >> np.uint32(16))


def _load_bf16(b):
    return _C(_bits(b))  # noqa: F821 (bound per compute type)


def _same(v):
    return v


def load(codec, ctype):
    """The device function reading one stored element as a ``ctype`` value."""
    ctype = np.dtype(ctype)
    if codec == NATIVE:
        return ctype.type

    def build():
        bits = cached(("bf16-bits",), lambda: _cuda.device(_bf16_to_f32))
        return _compile.instantiate(_load_bf16, {"_C": ctype.type, "_bits": bits}, f"bf16.{ctype.name}", _cuda.device)

    return cached(("load", codec, ctype), build)


def store(codec):
    """The device function turning a computed value into a stored element."""
    return cached(("store", codec), lambda: _cuda.device(_f32_to_bf16 if codec == BF16 else _same))


def scalar(dtype, value):
    """``value`` as one stored element of an array of ``dtype`` (a kernel argument)."""
    dtype = np.dtype(dtype)
    if is_bfloat16(dtype):
        return np.array(value, dtype).view(_UINT16)[()]
    return dtype.type(value)


def host(values, dtype):
    """Stored elements copied to the host, seen as ``dtype``."""
    return values.view(dtype)
