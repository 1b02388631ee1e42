"""Softmax cross-entropy on (P, Q, C) row views: loss and gradient in one pass.

With m the row max, s = sum_c e^{z_c - m} and smoothed targets t' = (1-eps) t + eps/C:
  loss  = sum_c t'_c ((m - z_c) + log s)     (terms with t'_c = 0 contribute 0)
  dloss/dz_c = softmax(z)_c sum_k t'_k - t'_c
Each term is formed as (m - z_c) + log s, never as lse - z_c: m - z_c >= 0
has no cancellation, so logits of +-1e30 lose nothing (lse - z_c is 0 there).
Index targets are one-hot t; a row whose target is ``ignore`` has loss 0 and
gradient 0. The gradient is written already multiplied by ``scale`` (the
reduction's 1/count). Sums and per-row losses are float64.

Logits, probability targets and the gradient are read and written through
their codecs (``_Lz``, ``_Lt``, ``_S``; see ``_codecs``): a float16 gradient is
written in float16 directly, each element rounded once from the compute dtype.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ._launch import cached, codecs, decorator
from . import _codecs, _vmath
from ._numba import SOURCE_HASH, ijit
from ._views import rows3
from .softmax import row_max


def _lse(zr):
    # (m, s, log s): row max, sum of e^{z - m} and its log (lse = m + log s)
    m = _row_max(zr)  # noqa: F821
    s = np.float64(0.0)
    for j in range(zr.shape[0]):
        s += _exp(_Lz(zr[j]) - m)  # noqa: F821
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
                grad[i, k, :] = _S(_C(0.0))  # noqa: F821
            continue
        m, s, ls = _lse(zr)  # noqa: F821
        nll = (m - _Lz(zr[ti])) + ls  # noqa: F821
        if eps != 0.0:
            # eps * mean_c((m - z_c) + log s)
            sd = np.float64(0.0)
            for j in range(C):
                sd += m - _Lz(zr[j])  # noqa: F821
            nll = (1.0 - eps) * nll + eps * (sd / C + ls)
        loss[i, k] = nll
        if want_grad:
            gr = grad[i, k]
            inv_s = 1.0 / s
            base = eps / C
            for j in range(C):
                gr[j] = _S(_C((_exp(_Lz(zr[j]) - m) * inv_s - base) * scale))  # noqa: F821
            # the target's entry, minus (1 - eps) scale, rounded once more in the
            # compute dtype: from its value in that dtype, not from the stored one
            gt = _C((_exp(_Lz(zr[ti]) - m) * inv_s - base) * scale)  # noqa: F821
            gr[ti] = _S(gt - _C((1.0 - eps) * scale))  # noqa: F821


def _prob_rows(z, t, eps, scale, loss, grad, want_grad):
    P, Q, C = z.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        zr = z[i, k]
        tr = t[i, k]
        m, s, ls = _lse(zr)  # noqa: F821
        acc = np.float64(0.0)
        st = np.float64(0.0)
        base = eps / C
        for j in range(C):
            tj = (1.0 - eps) * _Lt(tr[j]) + base  # noqa: F821
            if tj != 0.0:
                acc += tj * ((m - _Lz(zr[j])) + ls)  # noqa: F821
            st += tj
        # a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        loss[i, k] = acc if ls == ls else ls
        if want_grad:
            gr = grad[i, k]
            inv_s = 1.0 / s
            for j in range(C):
                g = (_exp(_Lz(zr[j]) - m) * inv_s * st - ((1.0 - eps) * _Lt(tr[j]) + base)) * scale  # noqa: F821
                gr[j] = _S(_C(g))  # noqa: F821


def _kernel(template, ctype, size, cs):
    """The kernel for codecs ``cs``: (logits, gradient) or (logits, targets, gradient)."""
    how = decorator(size)

    def build():
        names = ".".join(c.name for c in cs)
        tag = f"{ctype.name}.{names}.{how.__name__}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        bound = {
            "_C": ctype.type,
            "_exp": vm["exp"],  # vectorizes, unlike np.exp
            "_Lz": _codecs.functions(cs[0], ctype).load,
            "_Lt": _codecs.functions(cs[-2], ctype).load,
            "_S": _codecs.functions(cs[-1], ctype).store,
            "_row_max": row_max(ctype, cs[0]),
        }
        bound["_lse"] = _compile.instantiate(_lse, bound, tag, ijit, ctype)
        return _compile.instantiate(template, bound, tag, how, ctype)

    return cached((template.__name__, ctype, how, cs), build)


def per_row(z, target, axis, index, ignore, eps, scale, want_grad):
    """(loss per row as float64 in z's shape without `axis`, gradient or None);
    the gradient is C-contiguous in z's shape and dtype."""
    ctype = COMPUTE[z.dtype]
    zm = np.moveaxis(z, axis, -1)
    lead, C = zm.shape[:-1], zm.shape[-1]
    loss = np.empty(lead, np.float64)
    grad = np.empty(z.shape, z.dtype) if want_grad else None
    if loss.size == 0 or C == 0:
        loss[...] = 0.0
        return loss, grad
    inputs = [zm] if index else [zm, np.moveaxis(target, axis, -1)]
    gm = [np.moveaxis(grad, axis, -1)] if want_grad else []
    views = rows3(inputs + gm, -1)
    staged = views is None  # a layout that does not merge into (P, Q): contiguous copies
    if staged:
        views = rows3([np.ascontiguousarray(a) for a in inputs] + [np.empty(zm.shape, z.dtype) for _ in gm], -1)
    cs = codecs(inputs + [grad if want_grad else z])
    views = [_codecs.storage(v, c) for v, c in zip(views, cs)]
    P, Q = views[0].shape[:2]
    loss2 = loss.reshape(P, Q)
    g3 = views[-1] if want_grad else np.empty((1, 1, 1), cs[-1].storage)
    k = _kernel(_index_rows if index else _prob_rows, ctype, z.size, cs)
    if index:
        t2 = np.ascontiguousarray(target, dtype=np.int64).reshape(P, Q)
        k(views[0], t2, np.int64(ignore), ctype.type(eps), ctype.type(scale), loss2, g3, want_grad)
    else:
        k(views[0], views[1], ctype.type(eps), ctype.type(scale), loss2, g3, want_grad)
    if staged and want_grad:
        gm[0][...] = views[-1].view(z.dtype).reshape(gm[0].shape)
    return loss, grad
