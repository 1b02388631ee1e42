"""Softmax cross-entropy on (P, Q, C) row views: loss and gradient in one pass.

With m the row max, s = sum_c e^{z_c - m} and smoothed targets t' = (1-eps) t + eps/C:
  loss  = sum_c t'_c ((m - z_c) + log s)     (terms with t'_c = 0 contribute 0)
  dloss/dz_c = softmax(z)_c sum_k t'_k - t'_c
Each term is formed as (m - z_c) + log s, never as lse - z_c: m - z_c >= 0
has no cancellation, so logits of +-1e30 lose nothing (lse - z_c is 0 there).
Index targets are one-hot t; a row whose target is ``ignore`` has loss 0 and
gradient 0. The gradient is written already multiplied by ``scale`` (the
reduction's 1/count). Sums and per-row losses are float64.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ._launch import cached, decorator
from . import _vmath
from ._numba import SOURCE_HASH, ijit
from ._views import rows3


def _lse(zr):
    # (m, s, log s): row max, sum of e^{z - m} and its log (lse = m + log s)
    m = _row_max(zr)
    s = np.float64(0.0)
    for j in range(zr.shape[0]):
        s += _exp(zr[j] - m)
    return m, s, np.log(s)


def _index_rows(z, t, ignore, eps, scale, loss, grad, want_grad):
    P, Q, C = z.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        zr = z[i, k]
        ti = t[i, k]
        if ti == ignore:
            loss[i, k] = 0.0
            if want_grad:
                grad[i, k, :] = 0.0
            continue
        m, s, ls = _lse(zr)
        nll = (m - zr[ti]) + ls
        if eps != 0.0:
            # eps * mean_c((m - z_c) + log s)
            sd = np.float64(0.0)
            for j in range(C):
                sd += m - zr[j]
            nll = (1.0 - eps) * nll + eps * (sd / C + ls)
        loss[i, k] = nll
        if want_grad:
            gr = grad[i, k]
            inv_s = 1.0 / s
            base = eps / C
            for j in range(C):
                gr[j] = (_exp(zr[j] - m) * inv_s - base) * scale
            gr[ti] -= (1.0 - eps) * scale


def _prob_rows(z, t, eps, scale, loss, grad, want_grad):
    P, Q, C = z.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        zr = z[i, k]
        tr = t[i, k]
        m, s, ls = _lse(zr)
        acc = np.float64(0.0)
        st = np.float64(0.0)
        base = eps / C
        for j in range(C):
            tj = (1.0 - eps) * tr[j] + base
            if tj != 0.0:
                acc += tj * ((m - zr[j]) + ls)
            st += tj
        # a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        loss[i, k] = acc if ls == ls else ls
        if want_grad:
            gr = grad[i, k]
            inv_s = 1.0 / s
            for j in range(C):
                gr[j] = (_exp(zr[j] - m) * inv_s * st - ((1.0 - eps) * tr[j] + base)) * scale


def _kernel(template, ctype, size):
    how = decorator(size)

    def build():
        tag = f"{ctype.name}.{how.__name__}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        exp = vm["exp"]  # vectorizes, unlike np.exp
        lse = _compile.instantiate(_lse, {"_" + k: vm[k] for k in ("exp", "row_max")}, tag, ijit, ctype)
        return _compile.instantiate(template, {"_lse": lse, "_exp": exp}, tag, how, ctype)

    return cached((template.__name__, ctype, how), build)


def per_row(z, target, axis, index, ignore, eps, scale, want_grad):
    """(loss per row as float64 in z's shape without `axis`, gradient or None);
    the gradient is C-contiguous in z's shape, in the compute dtype."""
    ctype = COMPUTE[z.dtype]
    zm = np.moveaxis(z, axis, -1).astype(ctype, copy=False)
    lead, C = zm.shape[:-1], zm.shape[-1]
    loss = np.empty(lead, np.float64)
    grad = np.empty(z.shape, ctype) if want_grad else None
    if loss.size == 0 or C == 0:
        loss[...] = 0.0
        return loss, grad
    inputs = [zm] if index else [zm, np.moveaxis(target, axis, -1).astype(ctype, copy=False)]
    gm = [np.moveaxis(grad, axis, -1)] if want_grad else []
    views = rows3(inputs + gm, -1)
    staged = views is None  # a layout that does not merge into (P, Q): contiguous copies
    if staged:
        views = rows3([np.ascontiguousarray(a) for a in inputs] + [np.empty(zm.shape, ctype) for _ in gm], -1)
    P, Q = views[0].shape[:2]
    loss2 = loss.reshape(P, Q)
    g3 = views[-1] if want_grad else np.empty((1, 1, 1), ctype)
    k = _kernel(_index_rows if index else _prob_rows, ctype, z.size)
    if index:
        t2 = np.ascontiguousarray(target, dtype=np.int64).reshape(P, Q)
        k(views[0], t2, np.int64(ignore), ctype.type(eps), ctype.type(scale), loss2, g3, want_grad)
    else:
        k(views[0], views[1], ctype.type(eps), ctype.type(scale), loss2, g3, want_grad)
    if staged and want_grad:
        gm[0][...] = g3.reshape(gm[0].shape)
    return loss, grad
