"""Compile the scalar formulas and kernel templates for a target.

``namespace(decorate, ctype, overrides)`` clones every function of
``gpu_act.formulas`` into one fresh globals dict, with

- the toolbox names (exp, log1p, ...) bound to ``math`` or to ``overrides``
  (a target's own versions),
- every float literal retyped to ``ctype`` (so float32 work stays float32:
  Numba would otherwise promote ``1.0 + x`` to float64),
- each function passed through ``decorate`` (``numba.njit`` for the CPU,
  ``cuda.jit(device=True)`` for CUDA).

``instantiate(template, bindings, tag)`` clones a module-level kernel template
with its free names bound (the formula to apply, ...). Clones get a qualified
name that includes ``tag`` and a hash of the formulas' source, so Numba's
on-disk cache (keyed by qualified name and bytecode) never mixes two ops, and
an edited formula never reuses a stale kernel.

``disk_cache()`` says whether Numba can keep compiled kernels on disk here
(the ``cache=`` both targets compile with).
"""

import functools
import hashlib
import inspect
import math
import pathlib
import threading
import types
import warnings

import numpy as np

from . import formulas

TOOLBOX = ("copysign", "erfc", "exp", "expm1", "isinf", "log", "log1p", "sqrt", "tanh")

FORMULAS = [
    f for f in vars(formulas).values() if inspect.isfunction(f) and f.__module__ == formulas.__name__
]

SOURCE_HASH = hashlib.sha1(inspect.getsource(formulas).encode()).hexdigest()[:10]


def sources_hash(folder):
    """A hash of the Python sources a backend's kernels are built from: those of
    ``folder`` (the backend's) and the package's top-level modules (formulas,
    wrappers, ...). It goes into kernels' qualified names, because Numba's disk
    cache checks only the timestamp of the file that defines a kernel, not of
    the files its device functions come from."""
    here = pathlib.Path(__file__).parent
    files = sorted(pathlib.Path(folder).glob("*.py")) + sorted(here.glob("*.py"))
    return hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()[:8]


@functools.cache
def disk_cache():
    """True when Numba can cache gpu_act's kernels on disk: one of its cache
    locations (``NUMBA_CACHE_DIR``, the ``__pycache__`` beside gpu_act's
    sources, the user's cache directory) is writable. Otherwise kernels are
    compiled in every process, and a warning says so, once: a read-only
    install with an unwritable home (a container run as another user) must
    still work."""
    from numba.core.caching import FunctionCache

    try:
        FunctionCache(disk_cache.__wrapped__)  # finds (and probes) a writable cache directory
    except RuntimeError as e:  # "cannot cache function ...: no locator available"
        warnings.warn(
            f"gpu_act: Numba has no writable cache directory here ({e}); kernels are compiled anew in "
            "every process. Set NUMBA_CACHE_DIR to a writable directory to keep them.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def _clone(fn, globals_, qualname, ctype=None):
    code = fn.__code__
    if ctype is not None:
        code = code.replace(co_consts=tuple(ctype(c) if type(c) is float else c for c in code.co_consts))
    clone = types.FunctionType(code, globals_, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = qualname
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    return clone


def namespace(decorate, ctype, target, overrides=None):
    """Every formula compiled for one (target, compute type); name -> compiled function."""
    ctype = np.dtype(ctype).type
    ns = {"__name__": formulas.__name__, "__builtins__": __builtins__}
    ns.update({name: getattr(math, name) for name in TOOLBOX})
    ns.update(overrides or {})
    # module-level float constants become ctype too
    ns.update({k: ctype(v) for k, v in vars(formulas).items() if k.isupper() and type(v) is float})
    for fn in FORMULAS:
        qual = f"{fn.__name__}.{target}.{ctype.__name__}.{SOURCE_HASH}"
        ns[fn.__name__] = decorate(_clone(fn, ns, qual, ctype))
    return ns


def _names(code):
    # the global (and attribute) names a function's code and its nested code read
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return names


def _identity(value):
    # a binding's key: its type and value (1, 1.0, np.float32(1) and True are four
    # bindings), floats by their bits (0.0 and -0.0 are two), tuples item by item;
    # an object that does not hash, by itself
    if isinstance(value, tuple):
        return (tuple, tuple(_identity(v) for v in value))
    if isinstance(value, (float, np.floating)):
        return (type(value), np.asarray(value).tobytes())
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value), value)


_instances = {}
_instances_lock = threading.Lock()


def instantiate(template, bindings, tag, decorate, ctype=None):
    """A copy of kernel template ``template`` with its free names bound by
    ``bindings`` and, with ``ctype``, its float literals retyped.

    Instantiated again with the same values for the names it reads (and the same
    ``decorate`` and ``ctype``), it is the first copy, whatever the tag: a helper
    that reads none of the flags a kernel variant differs in is compiled once for
    all of them, and the kernels of a variant that does not change a template
    are one kernel. A copy's qualified name is its first tag's: a tag binds those
    names to those values in every process, so a name never means two functions in
    Numba's disk cache (but a process that first asks for the copy under another
    tag looks for that tag's entry)."""
    ctype = None if ctype is None else np.dtype(ctype).type
    used = _names(template.__code__)
    key = (template, decorate, ctype, tuple(sorted((n, _identity(v)) for n, v in bindings.items() if n in used)))
    with _instances_lock:
        hit = _instances.get(key)
    if hit is not None:
        return hit
    g = dict(template.__globals__)
    g.update(bindings)
    qual = f"{template.__name__}.{tag}.{SOURCE_HASH}"
    made = decorate(_clone(template, g, qual, ctype))
    with _instances_lock:
        return _instances.setdefault(key, made)
