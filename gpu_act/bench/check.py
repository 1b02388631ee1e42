"""Every op on every available backend against a NumPy float64 reference.

The references are computed in float64 on the host: row-wise ops and losses
by the straightforward NumPy compositions of ``peers`` (the NumPy peer
itself), and elementwise ops by evaluating gpu_act's own scalar formulas with CPython's
``math`` (``numpy.vectorize``), so the check exercises every compiled path
(Numba CPU with its vectorized math, CUDA, CuPy's CUDA C) against one
plain-Python evaluation of the definitions. The full independent reference
suite is the test suite (tests/); this check is what a user can run anywhere.
"""

import math

import numpy as np

from gpu_act import _compile
from gpu_act._tolerances import tolerance
from gpu_act.registry import ACTIVATIONS

from .ops import ALL, dtype_of
from .peers import _COMPOSE

SHAPE = (64, 257)  # rows x cols; odd row length exercises the loops' remainders
SPECIAL = (0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 30.0, -30.0, 88.0, -88.0)

_python = _compile.namespace(lambda f: f, np.float64, "python")


def _elementwise_reference(name, x, g=None):
    act = ACTIVATIONS[name]
    fwd, der, params = act.kernels(act.bind(name, (), {}, np.float64))
    f = np.vectorize(_python[(der if g is not None else fwd).__name__], otypes=[np.float64])
    with np.errstate(all="ignore"):
        return f(x, *params) if g is None else g * f(x, *params)


def reference(op, args):
    """op's float64 result on float64 copies of ``args``."""
    a = [v.astype(np.float64) if v.dtype.kind == "f" else v for v in args]
    if ALL[op].group != "elementwise":
        with np.errstate(all="ignore"):
            return _COMPOSE[op](np, *a)
    if op.endswith("_backward"):
        return _elementwise_reference(op[: -len("_backward")], a[1], a[0])
    return _elementwise_reference(op, a[0])


def inputs(op, dtype, rng):
    """Small inputs; elementwise ones include the special values. An op on
    (rows, 2, width) arrays (a gated unit's halves) gets SHAPE's rows and width."""
    shapes = ALL[op].shapes
    shape = SHAPE if shapes is None or len(shapes[0]) == 2 else (SHAPE[0], 2, SHAPE[1])
    args = list(ALL[op].inputs(shape, dtype, rng))
    if ALL[op].group == "elementwise":
        x = args[-1].reshape(-1)
        x[: len(SPECIAL)] = np.asarray(SPECIAL, dtype=np.float64).astype(dtype)
    return args


def max_error(actual, expected, dtype):
    """(worst |a - e| / (atol + rtol |e|), NaN/inf positions agree)."""
    tol = tolerance(dtype)
    rtol, atol = tol["rtol"], tol["atol"]
    a = np.asarray(actual, np.float64)
    with np.errstate(all="ignore"):
        e = np.asarray(expected, np.float64).astype(dtype).astype(np.float64)
        same_special = bool(np.array_equal(np.isnan(a), np.isnan(e)) and np.array_equal(a[np.isinf(e)], e[np.isinf(e)]))
        fin = np.isfinite(e) & np.isfinite(a)
        ratio = np.abs(a[fin] - np.asarray(expected, np.float64)[fin]) / (atol + rtol * np.abs(e[fin]))
    return (float(ratio.max()) if ratio.size else 0.0), same_special


def check(peer, op, dtype, rng):
    """{"ok", "error" (worst error in units of the tolerance), "message"} for one op on one peer."""
    args = inputs(op, dtype, rng)
    try:
        out = peer.impl(op)(*peer.to(*args))
        outs = out if isinstance(out, tuple) else (out,)
        exp = reference(op, args)
        exps = exp if isinstance(exp, tuple) else (exp,)
        worst, special = 0.0, True
        for o, e in zip(outs, exps):
            err, sp = max_error(_host(o), e, dtype)
            worst, special = max(worst, err), special and sp
    except Exception as exc:  # reported in the table, never hidden
        return {"ok": False, "error": math.inf, "message": f"{type(exc).__name__}: {exc}"}
    ok = worst <= 1.0 and special
    msg = "" if ok else ("NaN/inf positions differ" if not special else f"error {worst:.3g} x tolerance")
    return {"ok": ok, "error": worst, "message": msg}


def _host(a):
    if hasattr(a, "get"):
        return a.get()
    if hasattr(a, "cpu"):
        return a.detach().cpu().numpy()
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return np.asarray(a)


def run(peers, ops, dtypes, progress=lambda: None):
    """Check every gpu_act peer on every op and dtype: list of result rows."""
    rng = np.random.default_rng(0)
    rows = []
    for peer in (p for p in peers if p.gpu_act):
        for op in ops:
            for dt in dtypes:
                r = check(peer, op, dt, rng)
                rows.append({"backend": peer.name, "op": op, "dtype": dtype_of(dt).name, **r})
                progress()
    return rows

