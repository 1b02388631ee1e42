"""Maxout on (P, Q, n) row views: the max of each run of `pool` consecutive
entries, and its backward, which routes each gradient to the first maximum of
its group (a NaN counts as the maximum, as in argmax)."""

import numpy as np
from numba import prange

from ..._dtypes import COMPUTE
from ._launch import launch
from ._numba import jit, pjit
from ._views import rows3


@jit
def _argmax(xr, base, pool):
    best = 0
    m = xr[base]
    for q in range(1, pool):
        v = xr[base + q]
        if m == m and (v > m or v != v):
            m = v
            best = q
    return best


@pjit
def _forward(x, out, pool):
    P, Q, _ = x.shape
    groups = out.shape[2]
    for r in prange(P * Q):
        i = r // Q
        xr = x[i, r - i * Q]
        o = out[i, r - i * Q]
        for k in range(groups):
            o[k] = xr[k * pool + _argmax(xr, k * pool, pool)]


@pjit
def _backward(g, x, out, pool):
    P, Q, _ = x.shape
    groups = g.shape[2]
    for r in prange(P * Q):
        i = r // Q
        gr = g[i, r - i * Q]
        xr = x[i, r - i * Q]
        o = out[i, r - i * Q]
        for k in range(groups):
            best = _argmax(xr, k * pool, pool)
            for q in range(pool):
                o[k * pool + q] = gr[k] if q == best else 0.0



def forward(x, pool, axis, out):
    ctype = COMPUTE[x.dtype]
    launch(lambda xv, ov: _forward(xv, ov, pool), lambda a: rows3(a, axis), [x], out, ctype)


def backward(g, x, pool, axis, out):
    ctype = COMPUTE[np.result_type(g, x)]
    launch(lambda gv, xv, ov: _backward(gv, xv, ov, pool), lambda a: rows3(a, axis), [g, x], out, ctype)
