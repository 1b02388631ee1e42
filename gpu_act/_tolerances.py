"""The one table of per-dtype tolerances (rtol, atol) for comparing a result
with a float64 reference: the test suite (tests/tolerances.py) and the
self-check of ``gpu-act selfcheck`` / ``gpu-act bench`` both use it.

float16 is computed in float32 and rounded to half (unit roundoff 2**-11 ~
4.9e-4), hence 2e-3; bfloat16 likewise with its 8-bit significand (unit
roundoff 2**-8 ~ 3.9e-3), hence 1.6e-2 (about four units, as float16's); float32 allows a few ulps (2**-24 ~ 6e-8) of accumulated
error in exp/log/erf chains and row reductions; float64 allows ~100 ulps.
"""

import numpy as np

TOLERANCES = {
    np.dtype(np.float16): {"rtol": 2e-3, "atol": 2e-3},
    np.dtype(np.float32): {"rtol": 2e-5, "atol": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-11, "atol": 1e-13},
}


def tolerance(dtype):
    """{"rtol", "atol"} of ``dtype``; bfloat16 (ml_dtypes) by name."""
    dt = np.dtype(dtype)
    if dt.name == "bfloat16":
        return BFLOAT16
    return TOLERANCES[dt]


BFLOAT16 = {"rtol": 1.6e-2, "atol": 1.6e-2}
