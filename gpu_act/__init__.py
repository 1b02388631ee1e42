"""gpu_act: activation functions, their derivatives and the softmax family as
fast, numerically safe kernels on NumPy (Numba CPU), CuPy and CUDA arrays.

The public functions are those of ``elementwise``, ``gated``, ``rowwise``,
``simplex`` and ``losses`` (``_public``); a call passing a ``dask.array.Array``
goes to ``gpu_act._dask`` (imported only then), which maps the function over
the blocks.
"""

import functools

from numpy import ndarray as _ndarray

from ._dispatch import BackendUnavailableError, available_backends
from ._public import FUNCTIONS as _PUBLIC


def _dask_aware(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        for a in (*args, *kwargs.values()):
            t = type(a)
            if t is not _ndarray and t.__module__.startswith("dask"):
                from . import _dask

                return _dask.call(fn, args, kwargs)
        return fn(*args, **kwargs)

    return call


globals().update({name: _dask_aware(fn) for name, fn in _PUBLIC.items()})

__version__ = "0.1.0"
__all__ = ["available_backends", "BackendUnavailableError", *sorted(_PUBLIC)]
