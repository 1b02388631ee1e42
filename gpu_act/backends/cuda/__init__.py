"""The CUDA backend: Numba ``@cuda.jit`` kernels on any CUDA array.

Implements the backend interface documented in ``gpu_act.backends.cpu``.
Arrays are taken without copying (``_arrays``: Numba device arrays, CuPy
arrays, PyTorch CUDA tensors, ``__cuda_array_interface__`` and CUDA DLPack
exporters); results come from the input's own allocator and are returned as
the input's kind. Work goes on the input's exported stream, or on the stream
given as ``stream=``; nothing synchronises the host except
``check_targets`` (the losses on class indices must raise for an
out-of-range index, which needs the device's answer) and ``any_negative``
(binary cross-entropy refuses a negative pos_weight).

bfloat16 is ml_dtypes' dtype: Numba device arrays of ``ml_dtypes.bfloat16``
(``cuda.to_device`` of a NumPy bfloat16 array, ``cuda.device_array(shape,
ml_dtypes.bfloat16)``), CuPy bfloat16 arrays, PyTorch bfloat16 tensors and
DLPack kDLBfloat exports (the last two import ml_dtypes to name their dtype).
It is computed in float32 and rounded once, to nearest even, the kernels
reading and writing its bits through uint16 views (``_codecs``).
"""

import functools

from ... import _cuda
from . import _arrays, _staging
from . import binary_cross_entropy as _bce
from . import cross_entropy as _ce
from . import elementwise as _ew
from . import gated as _gated
from . import maxout as _maxout
from . import nll_loss as _nll
from . import reduce as _reduce
from . import softmax as _softmax
from . import sparsemax as _sparsemax

NAME = "cuda"
BFLOAT16 = True  # whether it computes ml_dtypes.bfloat16 arrays


def available():
    return _cuda.available()


context = _arrays.context
asarray = _arrays.asarray
as_out = _arrays.as_out
empty = _arrays.empty
wrap = _arrays.wrap


def _on_device(fn):
    """``fn(ctx, ...)`` with the call's device current (allocations, views and launches)."""

    @functools.wraps(fn)
    def call(ctx, *args):
        with _cuda.device_scope(ctx.device):
            return fn(ctx, *args)

    return call


def halves(ctx, a, axis):
    return a.halves(axis)


@_on_device
def astype(ctx, a, dtype):
    """``a`` in ``dtype`` (``a`` itself when it has it)."""
    if a.dtype == dtype:
        return a
    out = empty(ctx, a.shape, dtype)
    if a.size:
        _staging.convert(ctx, a, out)
    return out


unary = _on_device(_ew.unary)
scaled = _on_device(_ew.scaled)
unary_slope = _on_device(_ew.unary_slope)
scaled_slope = _on_device(_ew.scaled_slope)
gated_backward = _on_device(_gated.backward)  # (ctx, f, d, g, a, b, params, da, db)
rrelu_slopes = _on_device(_ew.rrelu_slopes)
channel_sum = _on_device(_reduce.channel_sum)
softmax = _on_device(_softmax.forward)  # (ctx, x, axis, temperature, log, mask, out)
softmax_backward = _on_device(_softmax.backward)  # (ctx, g, y, axis, temperature, log, mask, out)
logsumexp = _on_device(_softmax.logsumexp)  # (ctx, x, axis, temperature, mask, out)
logsumexp_backward = _on_device(_softmax.logsumexp_backward)  # (ctx, g, x, r, axis, temperature, mask, out)
sparsemax = _on_device(_sparsemax.sparsemax)  # (ctx, x, axis, out)
sparsemax_backward = _on_device(_sparsemax.sparsemax_backward)  # (ctx, g, y, axis, out)
maxout = _on_device(_maxout.forward)  # (ctx, x, pool, axis, out)
maxout_backward = _on_device(_maxout.backward)  # (ctx, g, x, pool, axis, out)
live_rows = _on_device(_ce.live_rows)  # (ctx, mask, shape, axis)
check_targets = _on_device(_ce.check_targets)  # (ctx, fname, target, classes, ignore_index, weight, live=None)
cross_entropy = _on_device(_ce.cross_entropy)
nll_loss = _on_device(_nll.nll_loss)  # (ctx, lp, target, axis, ignore_index, weight, scale, want_grad)
binary_cross_entropy = _on_device(_bce.binary_cross_entropy)  # (ctx, z, t, w, pw, logits, scale, want_grad)
any_negative = _on_device(_bce.any_negative)  # (ctx, a)
total = _on_device(_reduce.total)  # (ctx, a, scale, dtype)
