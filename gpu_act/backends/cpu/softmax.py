"""Softmax and log-softmax, forward and backward, on (P, Q, n) row views.

Forward, per row:  m = max x;  d_j = (x_j - m)/T;  s = sum e^{d_j}
  softmax: y_j = e^{d_j} / s      log_softmax: y_j = d_j - log s
Backward (y the forward's output, g the incoming gradient):
  softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
  log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
NaN or +inf in a row, or a row of all -inf, makes d NaN somewhere and so the
whole row NaN (as PyTorch); -inf entries of a finite row give e^{d} = 0.
Elementwise work runs in the compute dtype (kernels are retyped per compute
dtype); row sums accumulate in float64, which keeps log_softmax's
(x - m) - log s accurate to float32 rounding even for long rows, and are
rounded to the compute dtype (_C) once per row, so the per-element loops
stay in it.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ._launch import cached, decorator, launch
from . import _vmath
from ._numba import ijit
from ._views import rows3


def _scaled(d, inv_t):
    # d/T with 0/T = 0 even when 1/T overflowed to inf
    return 0.0 if d == 0.0 else d * inv_t


def _forward(x, out, inv_t, log):
    P, Q, n = x.shape
    for r in prange(P * Q):
        i = r // Q
        xr = x[i, r - i * Q]
        o = out[i, r - i * Q]
        # max through integer keys (vectorizes cheaply); a NaN it skips still makes the row NaN via the sum
        k = _max_key(xr[0])
        for j in range(1, n):
            k = max(k, _max_key(xr[j]))
        m = _from_max_key(k)
        s = np.float64(0.0)
        if log:
            for j in range(n):
                s += _exp(_scaled(xr[j] - m, inv_t))
            ls = _C(np.log(s))
            for j in range(n):
                o[j] = _scaled(xr[j] - m, inv_t) - ls
        else:
            for j in range(n):
                e = _exp(_scaled(xr[j] - m, inv_t))
                o[j] = e
                s += e
            inv_s = _C(1.0 / s)
            for j in range(n):
                o[j] *= inv_s


def _backward(g, y, out, inv_t, log):
    P, Q, n = g.shape
    for r in prange(P * Q):
        i = r // Q
        gr = g[i, r - i * Q]
        yr = y[i, r - i * Q]
        o = out[i, r - i * Q]
        s = np.float64(0.0)
        if log:
            for j in range(n):
                s += gr[j]
            sc = _C(s)
            for j in range(n):
                o[j] = (gr[j] - _exp(yr[j]) * sc) * inv_t
        else:
            for j in range(n):
                # products in float64 too: g - sum(g y) cancels, float32 products cost ~1e-6
                s += np.float64(gr[j]) * yr[j]
            sc = _C(s)
            for j in range(n):
                o[j] = yr[j] * (gr[j] - sc) * inv_t


def _kernel(template, ctype, size):
    how = decorator(size)

    def build():
        tag = f"{ctype.name}.{how.__name__}.{_vmath.SOURCE_HASH}"
        scaled = _compile.instantiate(_scaled, {}, tag, ijit, ctype)
        vm = _vmath.functions(ctype)
        bindings = {"_scaled": scaled, "_C": ctype.type, **{"_" + k: vm[k] for k in ("exp", "max_key", "from_max_key")}}
        return _compile.instantiate(template, bindings, tag, how, ctype)

    return cached((template.__name__, ctype, how), build)


def _inv_t(temperature, ctype):
    with np.errstate(over="ignore"):
        return ctype.type(1.0 / temperature)


def forward(x, axis, temperature, log, out):
    ctype = COMPUTE[x.dtype]
    k = _kernel(_forward, ctype, x.size)
    inv_t = _inv_t(temperature, ctype)
    launch(lambda xv, ov: k(xv, ov, inv_t, log), lambda a: rows3(a, axis), [x], out, ctype)


def backward(g, y, axis, temperature, log, out):
    ctype = COMPUTE[np.result_type(g, y)]
    k = _kernel(_backward, ctype, y.size)
    inv_t = _inv_t(temperature, ctype)
    launch(lambda gv, yv, ov: k(gv, yv, ov, inv_t, log), lambda a: rows3(a, axis), [g, y], out, ctype)
