"""Softmax and log-softmax, forward and backward, on (P, Q, n) row views.

Forward, per row:  m = max x;  d_j = (x_j - m)/T;  s = sum e^{d_j}
  softmax: y_j = e^{d_j} / s      log_softmax: y_j = d_j - log s
Backward (y the forward's output, g the incoming gradient):
  softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
  log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
NaN or +inf in a row, or a row of all -inf, makes d NaN somewhere and so the
whole row NaN (as PyTorch); -inf entries of a finite row give e^{d} = 0.
Elementwise work runs in the compute dtype (kernels are retyped per compute
dtype). Forward sums run in the compute dtype over blocks of BLOCK elements
(vectorized: 64 partial sums of 16 terms each; STRIDED_BLOCK terms in turn
for strided rows) and in float64 across blocks, which keeps log_softmax's (x - m) - log s accurate to float32
rounding even for long rows; backward sums accumulate in float64. Each is
rounded to the compute dtype (_C) once per row, so the per-element loops stay
in it. A temperature of 1 is passed as None: the kernel compiled for it has
no scaling at all.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE, inverse_temperature
from ._launch import cached, decorator, launch
from . import _vmath
from ._numba import SOURCE_HASH, ijit
from ._views import rows3


BLOCK = 1024
STRIDED_BLOCK = 32


def _scaled(d, inv_t):
    # d/T from 1/T (finite: the API bounds T below): +-inf/T stays +-inf even
    # when 1/T rounded to 0 (T huge), where d * inv_t is NaN but d is not;
    # T = 1 (inv_t None): d
    if inv_t is None:
        return d
    r = d * inv_t
    return d if r != r and d == d else r


def _times(v, inv_t):
    # v/T; T = 1 (inv_t None): v
    if inv_t is None:
        return v
    return v * inv_t


def _row_forward(xr, o, inv_t, log):
    n = xr.shape[0]
    m = _row_max(xr)
    s = np.float64(0.0)
    # strided rows are summed one term after another: shorter blocks keep that accurate
    blk = BLOCK if xr.strides[0] == xr.itemsize else STRIDED_BLOCK
    for b in range(0, n, blk):
        xb = xr[b : b + blk]
        ob = o[b : b + blk]
        sb = _C(0.0)
        if log:
            for j in range(xb.shape[0]):
                sb += _exp(_scaled(xb[j] - m, inv_t))
        else:
            for j in range(xb.shape[0]):
                e = _exp(_scaled(xb[j] - m, inv_t))
                ob[j] = e
                sb += e
        s += sb
    if log:
        ls = _C(np.log(s))
        for j in range(n):
            o[j] = _scaled(xr[j] - m, inv_t) - ls
    else:
        inv_s = _C(1.0 / s)
        for j in range(n):
            o[j] *= inv_s


def _forward(x, out, inv_t, log):
    P, Q, n = x.shape
    if P == 1:  # the common layout: no division per row
        for r in prange(Q):
            _row_forward(x[0, r], out[0, r], inv_t, log)
    else:
        for r in prange(P * Q):
            i = r // Q
            _row_forward(x[i, r - i * Q], out[i, r - i * Q], inv_t, log)


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
                o[j] = _times(gr[j] - _exp(yr[j]) * sc, inv_t)
        else:
            for j in range(n):
                # products in float64 too: g - sum(g y) cancels, float32 products cost ~1e-6
                s += np.float64(gr[j]) * yr[j]
            sc = _C(s)
            for j in range(n):
                o[j] = _times(yr[j] * (gr[j] - sc), inv_t)


def _kernel(template, ctype, size):
    how = decorator(size)

    def build():
        tag = f"{ctype.name}.{how.__name__}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        bindings = {"_C": ctype.type, **{"_" + k: vm[k] for k in ("exp", "row_max")}}
        bindings["_scaled"] = _compile.instantiate(_scaled, {}, tag, ijit, ctype)
        bindings["_times"] = _compile.instantiate(_times, {}, tag, ijit, ctype)
        bindings["_row_forward"] = _compile.instantiate(_row_forward, bindings, tag, ijit, ctype)
        return _compile.instantiate(template, bindings, tag, how, ctype)

    return cached((template.__name__, ctype, how), build)


def _inv_t(temperature, ctype):
    # None for T = 1: the kernel compiled for it has no scaling at all
    return None if temperature == 1 else inverse_temperature(temperature, ctype)


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
