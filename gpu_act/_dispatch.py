"""The dispatcher: which backend runs a call.

By array type: ``numpy.ndarray`` (and other host array-likes) -> "cpu";
``cupy.ndarray`` -> "cupy"; Numba device arrays and anything else exposing
``__cuda_array_interface__`` or a CUDA ``__dlpack__`` -> "cuda". ``backend=``
overrides within the same memory (a CuPy array may go to "cuda"); nothing is
ever copied between host and device. Backend modules are imported on first
use, so ``import gpu_act`` imports neither CuPy nor CUDA.
"""

import importlib
import threading

import numpy as np

from .backends import KNOWN


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
_why_not = {}  # backend name -> why it cannot run here
_available = None


def _load(name):
    if name in _modules:  # every call after the first: no lock on the per-call path
        return _modules[name]
    with _lock:
        if name not in _modules:
            try:
                mod = importlib.import_module(f"gpu_act.backends.{name}")
                ok = mod.available()
                if not ok:
                    _why_not[name] = "no CUDA device or driver found"
            except Exception as e:  # a missing or broken install: the backend is unavailable, never a crash
                ok = False
                _why_not[name] = f"it failed to load: {type(e).__name__}: {e}"
            _modules[name] = mod if ok else None
        return _modules[name]


def available_backends():
    """The backends that can run here, e.g. ("cpu",) or ("cpu", "cuda", "cupy")."""
    global _available
    if _available is None:
        _available = tuple(n for n in KNOWN if _load(n) is not None)
    return _available


def resolve(fname, arrays, backend, stream=None):
    """(backend module, call context) for ``arrays`` (None entries ignored; the
    first array is the call's primary input), ``backend=`` and ``stream=``.

    The call context is the backend's record of where this call runs: for the
    GPU backends the device, the stream work is launched on and the kind of
    array results are made of, all taken from the primary input (or ``stream``).
    Every backend function of the call takes it as its first argument; the CPU
    backend's is None."""
    if backend is None and stream is None and _modules.get("cpu"):
        if all(a is None or type(a) is np.ndarray for a in arrays):  # the common NumPy call
            return _modules["cpu"], None
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
            f"{fname}: backend {name!r} is not available here ({_why_not.get(name)}); "
            f"available: {', '.join(available_backends())}"
        )
    if (kind == "cpu") != (name == "cpu"):
        where = "host (NumPy)" if kind == "cpu" else "device (CUDA)"
        raise TypeError(
            f"{fname}: backend {name!r} cannot run on {where} arrays; gpu_act never copies between host and device"
        )
    if name == "cpu":
        if stream is not None:
            raise ValueError(f"{fname}: stream= is for the GPU backends (cuda, cupy); backend {name!r} runs on the host")
        return mod, None
    primary = next(a for a in arrays if a is not None)
    return mod, mod.context(primary, stream)
