"""The CuPy backend: CUDA C kernels (top-level ``kernels/``, shipped as
``gpu_act.kernels``) compiled by CuPy on first use, for CuPy arrays.

Implements the backend interface of ``gpu_act.backends.Backend``. Every kernel
runs on CuPy's current stream without synchronising with the host
(``check_targets`` and ``any_negative`` are the exceptions: checking the
range of index targets reads their counts and weight sum back, checking the
sign of a parameter array its answer) and returns CuPy arrays on the
input's device. Arrays from other CUDA libraries (``__cuda_array_interface__``)
are wrapped without copies.
"""

import contextlib

import cupy
import numpy as np

from ... import _streams
from ..._layout import channel_sum_plan

from . import elementwise as _ew
from . import rowwise as _rows
from . import sparsemax as _sparsemax

NAME = "cupy"
BFLOAT16 = True  # whether it computes ml_dtypes.bfloat16 arrays

def available():
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


class Call:
    """Where one call runs: the primary input's device and the CuPy stream work
    goes on (``stream=`` converted, or None: CuPy's current stream)."""

    __slots__ = ("device", "stream")

    def __init__(self, device, stream):
        self.device = device
        self.stream = stream


def context(primary, stream):
    """The Call of a call on ``primary``'s device: work goes on CuPy's current
    stream, or on ``stream``, which then waits for what the current stream has
    queued so far (CuPy arrays are produced on the current stream)."""
    device = cupy.asarray(primary).device.id
    if stream is None:
        return Call(device, None)
    with cupy.cuda.Device(device):
        s = _streams.cupy_stream(_streams.handle_of(stream), device)
        current = cupy.cuda.get_current_stream()
        if current.ptr != s.ptr:
            s.wait_event(current.record())
    return Call(device, s)


def asarray(ctx, obj):
    return cupy.asarray(obj)  # no copy for CuPy arrays and __cuda_array_interface__ objects


def as_out(ctx, fname, obj):
    if isinstance(obj, cupy.ndarray):
        return obj
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(
            f"{fname}: out must be a cupy.ndarray (or a CUDA array exposing __cuda_array_interface__) "
            f"for CuPy input, got {type(obj).__name__}"
        )
    if cai["data"][1]:
        raise ValueError(f"{fname}: out is read-only")
    return cupy.asarray(obj)


@contextlib.contextmanager
def _on(ctx):
    # the call's device, and its stream when stream= was given (else CuPy's current one)
    with cupy.cuda.Device(ctx.device):
        if ctx.stream is None:
            yield
        else:
            with ctx.stream:
                yield


def empty(ctx, shape, dtype):
    """A new array on the call's device, from CuPy's pool on the call's stream."""
    with _on(ctx):
        return cupy.empty(shape, dtype)


def astype(ctx, a, dtype):
    with _on(ctx):
        return a.astype(dtype, copy=False)


def wrap(ctx, result, like):
    return result


def halves(ctx, a, axis):
    h = a.shape[axis] // 2
    lead = (slice(None),) * axis
    return a[lead + (slice(0, h),)], a[lead + (slice(h, None),)]


def unary(ctx, f, x, params, out):
    with _on(ctx):
        _ew.unary(f, x, params, out)


def scaled(ctx, f, g, x, params, out):
    with _on(ctx):
        _ew.scaled(f, g, x, params, out)


def unary_slope(ctx, f, x, slope, out):
    with _on(ctx):
        _ew.unary_slope(f, x, slope, out)


def scaled_slope(ctx, f, g, x, slope, out):
    with _on(ctx):
        _ew.scaled_slope(f, g, x, slope, out)


def gated_backward(ctx, f, d, g, a, b, params, da, db):
    with _on(ctx):
        _ew.gated_backward(f, d, g, a, b, params, da, db)


def rrelu_slopes(ctx, shape, key, lower, upper, dtype):
    with _on(ctx):
        return _ew.rrelu_slopes(shape, key, lower, upper, dtype)


def channel_sum(ctx, a, channel_axis, dtype):
    """Sum over every axis but ``channel_axis`` (all axes when None), accumulated
    in at least float32, as a 1-D array of ``dtype``."""
    axes, acc = channel_sum_plan(a.dtype, a.ndim, channel_axis)
    with _on(ctx):
        return cupy.sum(a, axis=axes, dtype=acc).reshape(-1).astype(dtype)


def softmax(ctx, x, axis, temperature, log, mask, out):
    with _on(ctx):
        _rows.softmax(x, axis, temperature, log, mask, out)


def softmax_backward(ctx, g, y, axis, temperature, log, mask, out):
    with _on(ctx):
        _rows.softmax_backward(g, y, axis, temperature, log, mask, out)


def logsumexp(ctx, x, axis, temperature, mask, out):
    with _on(ctx):
        _rows.logsumexp(x, axis, temperature, mask, out)


def logsumexp_backward(ctx, g, x, r, axis, temperature, mask, out):
    with _on(ctx):
        _rows.logsumexp_backward(g, x, r, axis, temperature, mask, out)


def sparsemax(ctx, x, axis, out):
    with _on(ctx):
        _sparsemax.sparsemax(ctx, x, axis, out)


def sparsemax_backward(ctx, g, y, axis, out):
    with _on(ctx):
        _sparsemax.sparsemax_backward(ctx, g, y, axis, out)


def maxout(ctx, x, pool, axis, out):
    with _on(ctx):
        _rows.maxout(x, pool, axis, out)


def maxout_backward(ctx, g, x, pool, axis, out):
    with _on(ctx):
        _rows.maxout_backward(g, x, pool, axis, out)


def live_rows(ctx, mask, shape, axis):
    """(whether each row of an array of ``shape`` along ``axis`` has an unmasked
    entry, the rows' shape (a broadcast view); how many do: one read-back)."""
    rows = tuple(n for k, n in enumerate(shape) if k != axis)
    with _on(ctx):
        live = cupy.broadcast_to(cupy.any(mask, axis=axis), rows)
        return live, int(cupy.count_nonzero(live))


def check_targets(ctx, fname, target, classes, ignore_index, weight, live=None):
    """(count, denominator) of the non-ignored targets (rows where ``live`` is
    False count as ignored): their number and the float64 sum of ``weight``
    over their classes (their number without weights); ValueError naming an
    out-of-range one. One read-back (one more for the offending target);
    ``any_negative`` and ``live_rows`` are the backend's others."""
    with _on(ctx):
        valid = target != ignore_index
        if live is not None:
            valid &= live
        bad = valid & ((target < 0) | (target >= classes))
        sums = [cupy.count_nonzero(bad), cupy.count_nonzero(valid)]
        if weight is not None and classes:
            ok = valid & ~bad
            picked = weight[cupy.where(ok, target, 0)]
            sums.append(cupy.sum(cupy.where(ok, picked, 0), dtype=cupy.float64))
        n_bad, n_valid, *denominator = cupy.stack([a.astype(cupy.float64) for a in sums]).get().tolist()
        if n_bad:
            raise ValueError(
                f"{fname}: target index {int(target[bad][0])} is out of range; expected 0 <= target < {classes} "
                f"or ignore_index={ignore_index}"
            )
    n_valid = int(n_valid)
    if weight is None:
        return n_valid, float(n_valid)
    # no classes: no target can be counted (an out-of-range one raised)
    return n_valid, denominator[0] if denominator else 0.0


def cross_entropy(ctx, z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse,
                  mask=None):
    """(per-row losses, gradient or None, per-row log-sum-exp or None), from one kernel."""
    with _on(ctx):
        return _rows.cross_entropy(
            z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse, mask
        )


def nll_loss(ctx, lp, target, axis, ignore_index, weight, scale, want_grad):
    with _on(ctx):
        return _rows.nll_loss(lp, target, axis, ignore_index, weight, scale, want_grad)


def binary_cross_entropy(ctx, z, t, w, pw, logits, scale, want_grad):
    with _on(ctx):
        return _ew.binary_cross_entropy(z, t, w, pw, logits, scale, want_grad)


def any_negative(ctx, a):
    """Whether ``a`` has an entry < 0 (-0.0 and NaN have not): one read-back."""
    with _on(ctx):
        return bool((a < 0).any())


def total(ctx, a, scale, dtype):
    """0-d array of ``dtype``: (the float64 sum of ``a``) * scale, on the device (no read-back)."""
    with _on(ctx):
        return (cupy.sum(a, dtype=cupy.float64) * scale).astype(dtype)
