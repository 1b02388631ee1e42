"""Accepted dtypes and the type each one is computed in.

bfloat16 is ml_dtypes' (``ml_dtypes.bfloat16``; CuPy's and NumPy's way to hold
it). A bfloat16 array can exist only once ml_dtypes is imported, so gpu_act
never imports it: a dtype named "bfloat16" is looked up in ``sys.modules``.
"""

import sys

import numpy as np

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
ACCEPTED_NAMES = "float16, float32, float64, bfloat16 (ml_dtypes)"


def bfloat16():
    """ml_dtypes' bfloat16 dtype, or None while ml_dtypes is not imported."""
    mod = sys.modules.get("ml_dtypes")
    return None if mod is None else np.dtype(mod.bfloat16)


def is_bfloat16(dtype):
    bf = bfloat16()
    return bf is not None and dtype == bf


class _Compute(dict):
    """dtype -> the dtype it is computed in; bfloat16 joins on first sight."""

    def __missing__(self, dtype):
        if is_bfloat16(dtype):
            self[np.dtype(dtype)] = np.dtype(np.float32)
            return self[np.dtype(dtype)]
        raise KeyError(dtype)


# float16 and bfloat16 are computed in float32; the others in themselves
COMPUTE = _Compute(
    {
        np.dtype(np.float16): np.dtype(np.float32),
        np.dtype(np.float32): np.dtype(np.float32),
        np.dtype(np.float64): np.dtype(np.float64),
    }
)


def accepted(dtype):
    """Whether arrays of ``dtype`` are computed (a float of 16, 32 or 64 bits)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return dt in _FLOATS or is_bfloat16(dt)


def check_float(fname, what, dtype):
    """The dtype as np.dtype if accepted, else TypeError naming it and what is accepted."""
    if isinstance(dtype, np.dtype) and dtype in _FLOATS:  # an array's float16/32/64: the common call
        return dtype
    if not accepted(dtype):
        raise TypeError(f"{fname}: unsupported dtype {dtype} for {what}; accepted: {ACCEPTED_NAMES}")
    return np.dtype(dtype)


def inverse_temperature(temperature, ctype):
    """1/T in the compute type ``ctype``: finite for every temperature the API
    accepts (``_validate.temperature``), 0 where T is so large that it rounds
    to 0 (the kernels keep +-inf/T = +-inf then)."""
    return ctype.type(1.0 / temperature)
