"""Argument checks shared by the public functions; each error says what was
wrong and what is accepted."""

import math
import operator

import numpy as np
from numpy.exceptions import AxisError

from ._dtypes import COMPUTE, check_float, is_bfloat16
from ._layout import self_overlapping


def _index(fname, what, value):
    """``value`` as a Python int: an integer, never a bool or a float (which
    would be truncated), else TypeError."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fname}: {what} must be an integer, got a bool ({value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{fname}: {what} must be an integer, got {type(value).__name__} ({value!r})") from None


def integer(fname, what, value, lo, hi):
    """``value`` as an int in [lo, hi), else TypeError/ValueError naming the range."""
    v = _index(fname, what, value)
    if not lo <= v < hi:
        raise ValueError(f"{fname}: {what}={value!r} is not accepted; expected an integer in [{lo}, {hi})")
    return v


def real(fname, what, value):
    """``value`` as a float (not a bool, a string or bytes), else TypeError."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{fname}: {what} must be a real number, got {type(value).__name__} ({value!r})")
    return float(value)


def axis(fname, value, ndim):
    """The axis as a non-negative int; a 0-d array counts as 1-d here."""
    a = _index(fname, "axis", value)
    n = max(ndim, 1)
    if not -n <= a < n:
        raise AxisError(a, n, msg_prefix=fname)
    return a % n


def temperature(fname, value, dtype, factor=False):
    """The temperature as a float: finite, > 0, and with 1/T finite in the type
    ``dtype`` is computed in (the kernels scale by 1/T). A T so large that 1/T
    rounds to 0 there is fine: every finite entry then gets the same weight.
    With ``factor`` (logsumexp, whose result is m + T log s) T itself must be
    finite in that type too."""
    t = real(fname, "temperature", value)
    ctype = COMPUTE[np.dtype(dtype)]
    largest = float(np.finfo(ctype).max)
    smallest = 1.0 / largest
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{fname}: temperature={value!r} is not accepted; expected a finite number > 0")
    if t < smallest:
        raise ValueError(
            f"{fname}: temperature={value!r} is not accepted for {np.dtype(dtype)} input (computed in {ctype}, "
            f"where 1/temperature overflows); expected temperature >= {smallest:.3g}"
        )
    if factor and t > largest:
        raise ValueError(
            f"{fname}: temperature={value!r} is not accepted for {np.dtype(dtype)} input (computed in {ctype}, "
            f"which cannot hold it); expected temperature <= {largest:.4g}"
        )
    return t


def flag(fname, what, value):
    """``value`` as a bool: True or False (NumPy's too), never another truthy object, else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fname}: {what} must be True or False, got {type(value).__name__} ({value!r})")
    return bool(value)


def same_shape(fname, what, a, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fname}: {what} has shape {tuple(a.shape)}; expected {tuple(shape)}")


def broadcasts_to(fname, what, a, shape):
    """``a``'s shape padded with leading 1s to len(shape) dims, each shape's or 1,
    else ValueError."""
    ashape, shape = tuple(a.shape), tuple(shape)
    if len(ashape) > len(shape) or any(n not in (1, m) for n, m in zip(ashape[::-1], shape[::-1])):
        raise ValueError(f"{fname}: {what} has shape {ashape}; expected a shape that broadcasts to the input's {shape}")
    return (1,) * (len(shape) - len(ashape)) + ashape


def same_dtype(fname, what, a, dtype):
    have, want = np.dtype(a.dtype), np.dtype(dtype)
    if have != want:
        order = " in native byte order" if have.newbyteorder("=") == want else ""
        raise TypeError(f"{fname}: {what} has dtype {have.str if order else have}; expected {want}{order}")


def grad_like(fname, g, a):
    """grad_output must have the shape and dtype of the array it is the gradient for."""
    same_shape(fname, "grad_output", g, a.shape)
    same_dtype(fname, "grad_output", g, a.dtype)


def out(fname, be, ctx, obj, shape, dtype):
    """A native array to write the result into: ``obj`` checked, or a new one."""
    if obj is None:
        return be.empty(ctx, tuple(shape), dtype)
    if type(obj) is not np.ndarray and isinstance(obj, np.ndarray) and isinstance(obj, np.ma.MaskedArray):
        raise TypeError(f"{fname}: out is a numpy.ma.MaskedArray; expected a plain array (its mask would be ignored)")
    o = be.as_out(ctx, fname, obj)
    same_shape(fname, "out", o, shape)
    same_dtype(fname, "out", o, dtype)
    if self_overlapping(o.shape, o.strides, np.dtype(o.dtype).itemsize):
        raise ValueError(
            f"{fname}: out has elements that share memory (shape {tuple(o.shape)}, strides {tuple(o.strides)}: "
            "a stride of 0 or strides that alias); expected an out whose elements are distinct"
        )
    return o


def array(fname, be, ctx, what, obj):
    """``obj`` as a native array of the backend. A NumPy array in non-native
    byte order is computed by value (converted to native order); a masked array
    is refused: its mask would be ignored; so is a torch tensor that requires
    grad (gpu_act.torch differentiates)."""
    if type(obj) is np.ndarray and be.NAME == "cpu" and obj.dtype.isnative:  # the common call: as it is
        return obj
    if type(obj) is not np.ndarray and isinstance(obj, np.ndarray) and isinstance(obj, np.ma.MaskedArray):
        raise TypeError(
            f"{fname}: {what} is a numpy.ma.MaskedArray, whose mask gpu_act would ignore; "
            f"pass its data instead ({what}.filled(value) to replace the masked entries, or {what}.data)"
        )
    if getattr(obj, "requires_grad", False) and type(obj).__module__.split(".")[0] == "torch":
        raise TypeError(
            f"{fname}: {what} is a torch tensor that requires grad, which gpu_act's array functions would "
            "detach; use gpu_act.torch (differentiable, the same names) or pass tensor.detach()"
        )
    a = be.asarray(ctx, obj)
    if isinstance(a, np.ndarray) and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def mask(fname, be, ctx, obj, shape):
    """``obj``: None, or a bool array that broadcasts to ``shape`` (True where an
    entry takes part), as a native array of len(shape) dims, each shape's or 1
    (a view: broadcast axes stay of length 1); else TypeError (another dtype)
    or ValueError (a shape that does not broadcast)."""
    if obj is None:
        return None
    m = array(fname, be, ctx, "mask", obj)
    mask_dtype(fname, m.dtype)
    full = broadcasts_to(fname, "mask", m, shape)
    return m if full == tuple(m.shape) else m.reshape(full)


def mask_dtype(fname, dtype):
    """TypeError unless ``dtype`` is bool."""
    if np.dtype(dtype) != np.bool_:
        raise TypeError(f"{fname}: mask has dtype {np.dtype(dtype)}; expected bool (True where the entry takes part)")


def inputs(fname, be, ctx, named):
    """Native arrays for [(what, obj)], each of an accepted float dtype that
    backend ``be`` computes (bfloat16 where ``be.BFLOAT16``)."""
    arrays = [array(fname, be, ctx, what, obj) for what, obj in named]
    for (what, _), a in zip(named, arrays):
        check_float(fname, what, a.dtype)
        if not be.BFLOAT16 and is_bfloat16(a.dtype):
            raise TypeError(
                f"{fname}: {what} is bfloat16, which the {be.NAME} backend does not compute yet; "
                "accepted there: float16, float32, float64 (bfloat16 runs on NumPy arrays, the cpu backend)"
            )
    return arrays
