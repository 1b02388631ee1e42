"""Argument checks shared by the public functions; each error says what was
wrong and what is accepted."""

import math
import operator

import numpy as np
from numpy.exceptions import AxisError

from ._dtypes import COMPUTE, check_float


def axis(fname, value, ndim):
    """The axis as a non-negative int; a 0-d array counts as 1-d here."""
    try:
        a = operator.index(value)
    except TypeError:
        raise TypeError(f"{fname}: axis must be an integer, got {type(value).__name__}") from None
    n = max(ndim, 1)
    if not -n <= a < n:
        raise AxisError(a, n, msg_prefix=fname)
    return a % n


def temperature(fname, value, dtype):
    """The temperature as a float: finite, > 0, and with 1/T finite in the type
    ``dtype`` is computed in (the kernels scale by 1/T). A T so large that 1/T
    rounds to 0 there is fine: every finite entry then gets the same weight."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{fname}: temperature must be a real number, got {type(value).__name__}")
    t = float(value)
    ctype = COMPUTE[np.dtype(dtype)]
    smallest = 1.0 / float(np.finfo(ctype).max)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{fname}: temperature={value!r} is not accepted; expected a finite number > 0")
    if t < smallest:
        raise ValueError(
            f"{fname}: temperature={value!r} is not accepted for {np.dtype(dtype)} input (computed in {ctype}, "
            f"where 1/temperature overflows); expected temperature >= {smallest:.3g}"
        )
    return t


def same_shape(fname, what, a, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fname}: {what} has shape {tuple(a.shape)}; expected {tuple(shape)}")


def same_dtype(fname, what, a, dtype):
    if np.dtype(a.dtype) != np.dtype(dtype):
        raise TypeError(f"{fname}: {what} has dtype {a.dtype}; expected {np.dtype(dtype)}")


def grad_like(fname, g, a):
    """grad_output must have the shape and dtype of the array it is the gradient for."""
    same_shape(fname, "grad_output", g, a.shape)
    same_dtype(fname, "grad_output", g, a.dtype)


def out(fname, be, ctx, obj, shape, dtype):
    """A native array to write the result into: ``obj`` checked, or a new one."""
    if obj is None:
        return be.empty(ctx, tuple(shape), dtype)
    o = be.as_out(ctx, fname, obj)
    same_shape(fname, "out", o, shape)
    same_dtype(fname, "out", o, dtype)
    return o


def inputs(fname, be, ctx, named):
    """Native arrays for [(what, obj)], each of an accepted float dtype."""
    arrays = [be.asarray(ctx, obj) for _, obj in named]
    for (what, _), a in zip(named, arrays):
        check_float(fname, what, a.dtype)
    return arrays
