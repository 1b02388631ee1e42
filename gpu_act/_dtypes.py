"""Accepted dtypes and the type each one is computed in."""

import numpy as np

ACCEPTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
ACCEPTED_NAMES = ", ".join(d.name for d in ACCEPTED)

# float16 is computed in float32; the others in themselves
COMPUTE = {
    np.dtype(np.float16): np.dtype(np.float32),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}


def check_float(fname, what, dtype):
    """The dtype as np.dtype if accepted, else TypeError naming it and what is accepted."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in ACCEPTED:
        raise TypeError(f"{fname}: unsupported dtype {dtype} for {what}; accepted: {ACCEPTED_NAMES}")
    return dt


def inverse_temperature(temperature, ctype):
    """1/T in the compute type ``ctype``: finite for every temperature the API
    accepts (``_validate.temperature``), 0 where T is so large that it rounds
    to 0 (the kernels keep +-inf/T = +-inf then)."""
    return ctype.type(1.0 / temperature)
