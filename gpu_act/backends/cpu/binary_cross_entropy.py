"""Binary cross-entropy, elementwise: loss and gradient in one pass.

Each element's loss and gradient are the formulas of ``gpu_act.formulas``
(``bce_logits_fwd``/``bce_logits_der`` on logits with weight w and positive
weight pw; ``bce_fwd``/``bce_der`` on probabilities with weight w), compiled
for the compute dtype. The operands (input, target, w, pw) share the input's
shape, w and pw through stride 0 where they broadcast (1 where absent), and
are merged to 3-D views (``_views.flat``); each is read through its
codec. Losses are written in the compute dtype, the gradient (times ``scale``)
in the input's.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ...formulas import bce_der, bce_fwd, bce_logits_der, bce_logits_fwd
from . import _codecs
from ._kernels import cached, codecs, decorator, formulas
from ._numba import SOURCE_HASH, ijit
from ._views import flat, row_casts, unit_rows


# elements per parallel task
CHUNK = 1 << 14


def _rows(z, t, w, pw, loss, grad, scale):
    # the (P, Q) rows cut into chunks of CHUNK elements, the parallel tasks
    P, Q, N = z.shape
    chunks = (N + CHUNK - 1) // CHUNK
    for r in prange(P * Q * chunks):
        row = r // chunks
        lo = (r - row * chunks) * CHUNK
        hi = min(lo + CHUNK, N)
        i = row // Q
        k = row - i * Q
        zr, tr, lr, gr = _U0(z[i, k]), _U1(t[i, k]), _U4(loss[i, k]), _U5(grad[i, k])  # noqa: F821
        wr, pr = _U2(w[i, k]), _U3(pw[i, k])  # noqa: F821
        for j in range(lo, hi):
            a, b = _Lz(zr[j]), _Lt(tr[j])  # noqa: F821
            c = _Lw(wr[j]) if _WEIGHTED else _C(1.0)  # noqa: F821
            d = _Lp(pr[j]) if _POS_WEIGHTED else _C(1.0)  # noqa: F821
            lr[j] = _fwd(a, b, c, d)  # noqa: F821
            if _GRAD:  # noqa: F821
                gr[j] = _S(_der(a, b, c, d) * scale)  # noqa: F821


def _on_probs(formula, ctype, tag):
    return _compile.instantiate(_probs_template, {"_g": formulas(ctype)[formula.__name__]}, f"{formula.__name__}.{tag}", ijit)


def _probs_template(p, t, w, pw):
    # the formulas on probabilities take no positive weight
    return _g(p, t, w)  # noqa: F821


def _kernel(ctype, size, cs, logits, weighted, pos_weighted, want_grad, units):
    """The kernel for operand codecs ``cs`` (z, t, w, pw, gradient); without a
    weight (or positive weight) its argument is never read: 1 is compiled in.
    ``units``: whether the rows of z, t, w, pw, loss and gradient have unit
    stride (``_views.row_casts``)."""
    how = decorator(size)

    def build():
        names = ".".join(c.name for c in cs)
        flags = "".join(str(int(f)) for f in (logits, weighted, pos_weighted, want_grad, *units))
        tag = f"{ctype.name}.{names}.{flags}.{how.__name__}.{SOURCE_HASH}"
        if logits:
            fwd, der = formulas(ctype)[bce_logits_fwd.__name__], formulas(ctype)[bce_logits_der.__name__]
        else:
            fwd, der = _on_probs(bce_fwd, ctype, tag), _on_probs(bce_der, ctype, tag)
        load = [_codecs.functions(c, ctype).load for c in cs[:4]]
        bound = {
            "_C": ctype.type,
            "_fwd": fwd,
            "_der": der,
            "_GRAD": want_grad,
            "_WEIGHTED": weighted,
            "_POS_WEIGHTED": pos_weighted,
            "_Lz": load[0],
            "_Lt": load[1],
            "_Lw": load[2],
            "_Lp": load[3],
            "_S": _codecs.functions(cs[4], ctype).store,
            **row_casts(units),
        }
        return _compile.instantiate(_rows, bound, tag, how, ctype)

    return cached(("bce", ctype, how, cs, logits, weighted, pos_weighted, want_grad, units), build)


def binary_cross_entropy(z, t, w, pw, logits, scale, want_grad):
    """(element losses in the compute dtype, gradient in z's dtype or None)."""
    ctype = COMPUTE[z.dtype]
    one = np.ones((), ctype)
    wb = np.broadcast_to(one if w is None else w, z.shape)
    pwb = np.broadcast_to(one if pw is None else pw, z.shape)
    loss = np.empty(z.shape, ctype)
    grad = np.empty(z.shape, z.dtype) if want_grad else None
    arrays = [z, t, wb, pwb, loss] + ([grad] if want_grad else [])
    views = flat(arrays)
    if views is None:  # dims that do not merge to three: contiguous copies
        views = flat([np.ascontiguousarray(a) for a in arrays[:4]] + arrays[4:])
    if not want_grad:  # the kernel's gradient argument, never written
        views.append(np.empty((1, 1, 1), z.dtype))
    cs = codecs([z, t, wb, pwb, views[5]])
    views = [_codecs.storage(v, c) for v, c in zip(views[:4], cs[:4])] + [views[4], _codecs.storage(views[5], cs[4])]
    k = _kernel(ctype, z.size, cs, logits, w is not None, pw is not None, want_grad, unit_rows(views))
    k(*views, ctype.type(scale))
    return loss, grad
