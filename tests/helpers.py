"""Shared helpers for the gpu_act tests (re-exported by conftest.py)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the checkout

KINKS = np.array([0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 0.5, -0.5, 2.0, -2.0, 0.25])

SIZES_FULL = (0, 1, 31, 32, 33, 1023, 1024, 1025, 4097)
SIZES_SMALL = (0, 1, 33, 1025)


def sizes_for(dtype):
    return SIZES_FULL if np.dtype(dtype) == np.float32 else SIZES_SMALL


def to_backend(a, backend):
    """Move a NumPy array to ``backend`` (cpu: identity)."""
    if backend == "cpu":
        return a
    if backend == "cupy":
        import cupy

        return cupy.asarray(a)
    if backend == "cuda":
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(a))
    raise ValueError(f"unknown test backend {backend!r}")


def to_numpy(r):
    """Bring a result (NumPy, CuPy or Numba device array) back to a NumPy array."""
    if isinstance(r, np.ndarray):
        return r
    if hasattr(r, "copy_to_host"):
        return r.copy_to_host()
    if hasattr(r, "get"):
        return r.get()
    return np.asarray(r)


def sample(shape, dtype, seed=0, scale=3.0, kinks=True):
    """Random normal * scale, with kink values sprinkled at the start (exact in float16)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    flat = x.reshape(-1)
    if kinks and flat.size:
        k = min(flat.size, KINKS.size)
        # put kinks at spread-out positions so they land in different rows / blocks
        pos = np.linspace(0, flat.size - 1, k).astype(np.int64)
        flat[pos] = KINKS[:k]
    return x.astype(dtype)


def cancelling_backward(rows, n, dtype, seed=0, log=False):
    """(g, y) for a softmax backward pass in which g - sum(g y) cancels: y the
    forward's output on rows with one dominant logit (near one-hot), g close to
    a constant; for log-softmax (``log``) g - e^y sum(g) cancels: g close to a
    multiple of the probabilities. A row sum accumulated in float32 is off by
    many ulps there; the result is tiny. (N(0, 1) gradients hide this.)"""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, n))
    z[:, 0] += 12.0  # the dominant logit
    y = np.exp(z - z.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    g = 3.7 * (y if log else 1.0) + 1e-3 * rng.standard_normal((rows, n))
    return g.astype(dtype), (np.log(y) if log else y).astype(dtype)


def sample_away_from(shape, seed, kinks, margin=1e-2, scale=3.0):
    """float64 random normal * scale with no entry within ``margin`` of a kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    for _ in range(100):
        close = np.zeros(x.shape, bool)
        for k in kinks:
            close |= np.abs(x - k) < margin
        if not close.any():
            break
        x[close] = rng.standard_normal(int(close.sum())) * scale
    return x


@contextlib.contextmanager
def no_warnings():
    """Fail if the block emits any warning (e.g. NumPy floating-point RuntimeWarnings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        yield rec
    msgs = [f"{w.category.__name__}: {w.message}" for w in rec]
    assert not msgs, f"unexpected warnings: {msgs}"


def assert_dtype(result, dtype):
    assert np.dtype(result.dtype) == np.dtype(dtype), (
        f"result dtype {result.dtype} != input dtype {np.dtype(dtype)}")


def central_diff(f, x, h=1e-6):
    """Elementwise central difference of an elementwise f at float64 x."""
    step = h * np.maximum(1.0, np.abs(x))
    return (f(x + step) - f(x - step)) / (2.0 * step)


def grad_fd(scalar_f, x, h=1e-6):
    """Gradient of a scalar function of a float64 array by central differences."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        step = h * max(1.0, abs(old))
        flat[i] = old + step
        fp = float(scalar_f(x))
        flat[i] = old - step
        fm = float(scalar_f(x))
        flat[i] = old
        gf[i] = (fp - fm) / (2.0 * step)
    return g


# ---------------------------------------------------------------------------------------
# elementwise op variants: (name, params, kinks of the op with these params)
# ---------------------------------------------------------------------------------------

def _registry_defaults():
    """Every plain activation of the registry with its defaults, and once more
    per other choice of a choice parameter (gelu's approximate="tanh"): a new
    registry row reaches every test that takes OP_DEFAULTS without an edit here."""
    from gpu_act.registry import ACTIVATIONS, PLAIN

    out = []
    for name in PLAIN:
        out.append((name, {}))
        for p in ACTIVATIONS[name].params:
            out += [(name, {p.name: c}) for c in p.choices if c != p.default]
    return out


OP_DEFAULTS = _registry_defaults()

OP_PARAMS = [
    ("leaky_relu", {"negative_slope": 0.2}),
    ("leaky_relu", {"negative_slope": -0.5}),
    ("elu", {"alpha": 0.5}),
    ("elu", {"alpha": 2.5}),
    ("celu", {"alpha": 2.0}),
    ("celu", {"alpha": 0.3}),
    ("celu", {"alpha": -1.5}),
    ("gelu", {"approximate": "none"}),
    ("swish", {"beta": 1.7}),
    ("swish", {"beta": 0.25}),
    ("swish", {"beta": -0.8}),
    ("swish", {"beta": 0.0}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ("softplus", {"beta": 0.5, "threshold": 10.0}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("hardtanh", {"min_val": 0.25, "max_val": 0.25}),
]

OP_VARIANTS = OP_DEFAULTS + OP_PARAMS


def op_id(name, params):
    if not params:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "]"


def op_kinks(name, params):
    """Points where the op or its derivative is not smooth (to keep FD checks away)."""
    if name in ("relu", "leaky_relu", "elu", "selu", "celu"):
        return [0.0]
    if name == "relu6":
        return [0.0, 6.0]
    if name in ("hardsigmoid", "hardswish"):
        return [-3.0, 3.0]
    if name == "hardtanh":
        return [params.get("min_val", -1.0), params.get("max_val", 1.0)]
    if name == "softplus":
        return [params.get("threshold", 20.0) / params.get("beta", 1.0)]
    return []
