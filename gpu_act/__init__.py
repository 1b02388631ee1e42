"""gpu_act: activation functions, their derivatives and the softmax family as
fast, numerically safe kernels on NumPy (Numba CPU), CuPy and CUDA arrays."""

from ._dispatch import BackendUnavailableError, available_backends
from .elementwise import FUNCTIONS as _FUNCTIONS
from .elementwise import prelu, prelu_backward, rrelu, rrelu_backward
from .losses import cross_entropy
from .rowwise import log_softmax, log_softmax_backward, maxout, maxout_backward, softmax, softmax_backward

globals().update(_FUNCTIONS)

__version__ = "0.1.0"
__all__ = [
    "available_backends",
    "BackendUnavailableError",
    "cross_entropy",
    "log_softmax",
    "log_softmax_backward",
    "maxout",
    "maxout_backward",
    "prelu",
    "prelu_backward",
    "rrelu",
    "rrelu_backward",
    "softmax",
    "softmax_backward",
    *_FUNCTIONS,
]
