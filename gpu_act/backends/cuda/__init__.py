"""The CUDA backend: Numba ``@cuda.jit`` kernels on any CUDA array.

Implements the backend interface documented in ``gpu_act.backends.cpu``.
Arrays are taken without copying (``_arrays``: Numba device arrays, CuPy
arrays, PyTorch CUDA tensors, ``__cuda_array_interface__`` and CUDA DLPack
exporters); results come from the input's own allocator and are returned as
the input's kind. Work goes on the input's exported stream, or on the stream
given as ``stream=``; nothing synchronises the host except
``check_targets`` (cross-entropy with class indices must raise for an
out-of-range index, which needs the device's answer).
"""

from ... import _cuda
from . import _arrays, cross_entropy as _ce, elementwise as _ew, maxout as _maxout, reduce as _reduce
from . import softmax as _softmax

NAME = "cuda"


def available():
    return _cuda.available()


asarray = _arrays.asarray
as_out = _arrays.as_out
empty = _arrays.empty
wrap = _arrays.wrap
use_stream = _arrays.use_stream

unary = _ew.unary
scaled = _ew.scaled
unary_slope = _ew.unary_slope
scaled_slope = _ew.scaled_slope
rrelu_slopes = _ew.rrelu_slopes
channel_sum = _reduce.channel_sum

check_targets = _ce.check_targets
cross_entropy = _ce.cross_entropy


softmax = _softmax.forward  # (x, axis, temperature, log, out)
softmax_backward = _softmax.backward  # (g, y, axis, temperature, log, out)
maxout = _maxout.forward  # (x, pool, axis, out)
maxout_backward = _maxout.backward  # (g, x, pool, axis, out)
