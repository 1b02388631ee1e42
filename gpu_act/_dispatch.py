"""The dispatcher: which backend runs a call.

By array type: ``numpy.ndarray`` (and other host array-likes) -> "cpu";
``cupy.ndarray`` -> "cupy"; Numba device arrays and anything else exposing
``__cuda_array_interface__`` or a CUDA ``__dlpack__`` -> "cuda". ``backend=``
overrides within the same memory (a CuPy array may go to "cuda"); nothing is
ever copied between host and device. Backend modules are imported on first
use, so ``import gpu_act`` imports neither CuPy nor CUDA.
"""

import functools
import importlib
import inspect
import threading

import numpy as np

KNOWN = ("cpu", "cuda", "cupy")
_DEVICE = ("cuda", "cupy")


class BackendUnavailableError(RuntimeError):
    """A known backend that cannot run on this machine."""


def kind_of(obj):
    """'cpu', 'cupy' or 'cuda': where the object's memory lives and what holds it."""
    module = type(obj).__module__.split(".")[0]
    if module == "cupy" and hasattr(obj, "__cuda_array_interface__"):
        return "cupy"
    if module == "numpy":
        return "cpu"
    if module == "numba" and getattr(type(obj), "__cuda_ndarray__", False):
        return "cuda"  # Numba device arrays, including the CUDA simulator's
    if module == "torch":
        return "cuda" if obj.is_cuda else "cpu"
    if hasattr(obj, "__cuda_array_interface__"):
        return "cuda"
    if hasattr(obj, "__dlpack_device__") and obj.__dlpack_device__()[0] in (2, 3, 13):  # CUDA, CUDA host, managed
        return "cuda"
    return "cpu"


_lock = threading.Lock()
_modules = {}
_available = None


def _load(name):
    if name in _modules:  # every call after the first: no lock on the per-call path
        return _modules[name]
    with _lock:
        if name not in _modules:
            try:
                mod = importlib.import_module(f"gpu_act.backends.{name}")
                _modules[name] = mod if mod.available() else None
            except ImportError:
                _modules[name] = None
        return _modules[name]


def available_backends():
    """The backends that can run here, e.g. ("cpu",) or ("cpu", "cuda", "cupy")."""
    global _available
    if _available is None:
        _available = tuple(n for n in KNOWN if _load(n) is not None)
    return _available


_request = threading.local()  # the stream= of the call running in this thread


def lazy(fn):
    """``fn`` as a public function: a call passing a ``dask.array.Array`` goes to
    ``gpu_act._dask`` (imported only then), which maps ``fn`` over the blocks;
    ``stream=`` (GPU backends) is held for ``resolve`` during the call."""

    @functools.wraps(fn)
    def call(*args, stream=None, **kwargs):
        for a in (*args, *kwargs.values()):
            if type(a).__module__.startswith("dask"):
                from . import _dask

                return _dask.call(fn, args, kwargs)
        _request.stream = stream
        try:
            return fn(*args, **kwargs)
        finally:
            _request.stream = None

    sig = inspect.signature(fn)
    call.__signature__ = sig.replace(
        parameters=[*sig.parameters.values(), inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, default=None)]
    )
    return call


def resolve(fname, arrays, backend):
    """The backend module for these arrays (None entries ignored) and ``backend=``."""
    if backend is None and _modules.get("cpu") and all(a is None or type(a) is np.ndarray for a in arrays):
        if getattr(_request, "stream", None) is None:  # the common NumPy call, without the checks below
            return _modules["cpu"]
    kinds = {kind_of(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise TypeError(
            f"{fname}: arrays of different kinds ({', '.join(sorted(kinds))}) were mixed; "
            "gpu_act never copies between host and device: pass all arrays (and out) of one kind"
        )
    kind = kinds.pop() if kinds else "cpu"
    if backend is None:
        name = kind
    else:
        if backend not in KNOWN:
            raise ValueError(f"{fname}: unknown backend {backend!r}; known backends: {', '.join(KNOWN)}")
        name = backend
    mod = _load(name)
    if mod is None:
        raise BackendUnavailableError(
            f"{fname}: backend {name!r} is not available here; available: {', '.join(available_backends())}"
        )
    if (kind == "cpu") != (name == "cpu"):
        where = "host (NumPy)" if kind == "cpu" else "device (CUDA)"
        raise TypeError(
            f"{fname}: backend {name!r} cannot run on {where} arrays; gpu_act never copies between host and device"
        )
    stream = getattr(_request, "stream", None)
    if hasattr(mod, "use_stream"):
        mod.use_stream(stream)  # None: the inputs' own stream
    elif stream is not None:
        raise ValueError(f"{fname}: stream= is for the GPU backends (cuda, cupy); backend {name!r} runs on the host")
    return mod
