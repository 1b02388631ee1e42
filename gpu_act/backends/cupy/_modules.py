"""Compiled kernels, built on first use and cached.

Row-wise kernels: one ``cupy.RawModule`` per (file, dtype) with that dtype's
template instances (``kernels.INSTANCES``), compiled by NVRTC the first time
a kernel of it runs; CuPy also keeps the binary in its on-disk kernel cache,
keyed by the source text (headers inlined), so later processes load it.
"""

import threading

import cupy

from ... import kernels

OPTIONS = ("--std=c++17",)

_lock = threading.Lock()
_modules = {}
_functions = {}


def _module(name, dtype):
    key = (name, dtype)
    with _lock:
        if key not in _modules:
            _modules[key] = cupy.RawModule(
                code=kernels.source(name), options=OPTIONS, name_expressions=kernels.INSTANCES[key]
            )
        return _modules[key]


def function(name, dtype, expr):
    """The kernel ``expr`` of file ``name`` compiled for ``dtype``, on the current device."""
    key = (expr, cupy.cuda.Device().id)
    fn = _functions.get(key)
    if fn is None:
        fn = _module(name, dtype).get_function(expr)
        with _lock:
            _functions[key] = fn
    return fn
