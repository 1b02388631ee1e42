"""The CPU backend: Numba kernels on NumPy arrays.

The functions below are the interface every backend offers to the public API
(``gpu_act.elementwise``, ``gpu_act.softmax``, ...), which validates arguments
and allocates results before calling them; arrays here are native (NumPy),
non-empty unless stated, and ``out`` has the right shape and dtype. Each takes
the call context ``ctx`` first (``gpu_act._dispatch.resolve`` makes it with the
backend's ``context``): for the GPU backends, where the call runs (device,
stream, kind of array); on the host there is nothing to record and it is None.
"""

import numpy as np

from ..._layout import channel_sum_plan

from ._numba import FASTMATH  # noqa: F401  (sets the threading layer on import)
from . import binary_cross_entropy as _bce
from . import cross_entropy as _ce
from . import elementwise as _ew
from . import gated as _gated
from . import maxout as _maxout
from . import softmax as _softmax
from . import sparsemax as _sparsemax

NAME = "cpu"
BFLOAT16 = True  # whether it computes ml_dtypes.bfloat16 arrays


def available():
    return True


def context(primary, stream):
    """Nothing to record for a call on the host (``stream=`` is refused before)."""
    return None


def _is_tensor(obj):
    m = type(obj).__module__
    return m == "torch" or m.startswith("torch.")


def _from_tensor(t):
    """A torch CPU tensor's memory as a NumPy array (bfloat16 as ml_dtypes')."""
    import torch

    if t.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError(
                "a bfloat16 torch CPU tensor is computed as an ml_dtypes.bfloat16 NumPy array: "
                'install ml_dtypes (pip install "gpu_act[bfloat16]")'
            ) from None
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def asarray(ctx, obj):
    return _from_tensor(obj) if _is_tensor(obj) else np.asarray(obj)


def as_out(ctx, fname, obj):
    if _is_tensor(obj):
        return _from_tensor(obj)  # torch refuses to expose a tensor that requires grad
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{fname}: out must be a numpy.ndarray (or a torch CPU tensor) for host input, got {type(obj).__name__}")
    if not obj.flags.writeable:
        raise ValueError(f"{fname}: out is read-only")
    return obj


def empty(ctx, shape, dtype):
    return np.empty(shape, dtype)


def astype(ctx, a, dtype):
    """``a`` in ``dtype`` (``a`` itself when it has it); beyond float16's range, inf."""
    with np.errstate(over="ignore"):
        return a.astype(dtype, copy=False)


def wrap(ctx, result, like):
    """The result as the kind of array ``like`` is: a torch CPU tensor for one
    (sharing the NumPy result's memory; ``out``'s when it is one), else NumPy."""
    if not (_is_tensor(like) and isinstance(result, np.ndarray)):
        return result
    import torch

    if result.dtype.name == "bfloat16":
        return torch.from_numpy(result.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(result)


def halves(ctx, a, axis):
    h = a.shape[axis] // 2
    lead = (slice(None),) * axis
    return a[lead + (slice(0, h),)], a[lead + (slice(h, None),)]


def unary(ctx, f, x, params, out):
    _ew.unary(f, x, params, out)


def scaled(ctx, f, g, x, params, out):
    _ew.scaled(f, g, x, params, out)


def unary_slope(ctx, f, x, slope, out):
    _ew.unary_slope(f, x, slope, out)


def scaled_slope(ctx, f, g, x, slope, out):
    _ew.scaled_slope(f, g, x, slope, out)


def gated_backward(ctx, f, d, g, a, b, params, da, db):
    _gated.backward(f, d, g, a, b, params, da, db)


def rrelu_slopes(ctx, shape, key, lower, upper, dtype):
    return _ew.rrelu_slopes(shape, key, lower, upper, dtype)


def channel_sum(ctx, a, channel_axis, dtype):
    """Sum over every axis but ``channel_axis`` (all axes when None), accumulated
    in at least float32, returned as a 1-D array of ``dtype``."""
    axes, acc = channel_sum_plan(a.dtype, a.ndim, channel_axis)
    return np.sum(a, axis=axes, dtype=acc).reshape(-1).astype(dtype)


def softmax(ctx, x, axis, temperature, log, mask, out):
    _softmax.forward(x, axis, temperature, log, mask, out)


def softmax_backward(ctx, g, y, axis, temperature, log, mask, out):
    _softmax.backward(g, y, axis, temperature, log, mask, out)


def logsumexp(ctx, x, axis, temperature, mask, out):
    _softmax.logsumexp(x, axis, temperature, mask, out)


def logsumexp_backward(ctx, g, x, r, axis, temperature, mask, out):
    _softmax.logsumexp_backward(g, x, r, axis, temperature, mask, out)


def sparsemax(ctx, x, axis, out):
    _sparsemax.sparsemax(ctx, x, axis, out)


def sparsemax_backward(ctx, g, y, axis, out):
    _sparsemax.sparsemax_backward(ctx, g, y, axis, out)


def maxout(ctx, x, pool, axis, out):
    _maxout.forward(x, pool, axis, out)


def maxout_backward(ctx, g, x, pool, axis, out):
    _maxout.backward(g, x, pool, axis, out)


def live_rows(ctx, mask, shape, axis):
    """(whether each row of an array of ``shape`` has an unmasked entry along
    ``axis``, a bool array of the rows' shape; how many do)."""
    rows = tuple(n for k, n in enumerate(shape) if k != axis)
    live = np.broadcast_to(np.any(mask, axis=axis), rows)
    return live, int(np.count_nonzero(live))


def check_targets(ctx, fname, target, classes, ignore_index, weight, live=None):
    valid = target != ignore_index
    if live is not None:
        valid &= live
    bad = valid & ((target < 0) | (target >= classes))
    if bad.any():
        raise ValueError(
            f"{fname}: target index {target[bad].flat[0]} is out of range; expected 0 <= target < {classes} "
            f"or ignore_index={ignore_index}"
        )
    count = int(np.count_nonzero(valid))
    if weight is None:
        return count, float(count)
    return count, float(np.sum(weight[target[valid]], dtype=np.float64))


def cross_entropy(ctx, z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse,
                  mask=None):
    return _ce.cross_entropy(z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad,
                             want_lse, mask)


def nll_loss(ctx, lp, target, axis, ignore_index, weight, scale, want_grad):
    return _ce.nll_loss(lp, target, axis, ignore_index, weight, scale, want_grad)


def binary_cross_entropy(ctx, z, t, w, pw, logits, scale, want_grad):
    return _bce.binary_cross_entropy(z, t, w, pw, logits, scale, want_grad)


def any_negative(ctx, a):
    return bool(np.any(a < 0))


def total(ctx, a, scale, dtype):
    with np.errstate(over="ignore"):  # a float16 result beyond 65504 is inf
        return np.asarray(np.sum(a, dtype=np.float64) * scale, dtype)
