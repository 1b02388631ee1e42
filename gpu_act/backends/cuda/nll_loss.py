"""Negative log-likelihood of class indices, per row, and its gradient.

Row r with target t_r: loss_r = -w_{t_r} lp[r, t_r] (w = 1 without class
weights); the gradient is -w_{t_r} scale at [r, t_r] and 0 elsewhere. Rows
whose target is ``ignore`` have loss 0 and gradient 0. The gradient is
zero-filled, then one thread per row (grid-stride) writes its loss and its
one gradient entry. Targets are already in range (``check_targets``).
The log-probabilities are read and the gradient written through their codec
(``_codecs``: ``_Llp`` loads, ``_Sg`` stores); class weights are in the
compute dtype.
"""

import numpy as np

from ... import _cuda
from ..._dtypes import COMPUTE
from . import _arrays, _codecs, _config, _kernels, _operands, _rows, reduce

cuda = _cuda.cuda


def _nll(lp, lo, ls_, la, g, go, gs, ga, t, to, ts, ta, w, loss, shape, rows, ignore, scale, want_grad, weighted):
    # ``w`` is read only when ``weighted``, ``g`` written only when ``want_grad``
    r = cuda.grid(1)
    step = cuda.gridsize(1)
    while r < rows:
        ti = np.int64(t[_row_offset(r, shape, ts, to)])  # noqa: F821
        if ti == ignore:
            loss[r] = 0.0
        else:
            wt = _C(w[ti]) if weighted else _C(1.0)  # noqa: F821
            loss[r] = -wt * _Llp(lp[_row_offset(r, shape, ls_, lo) + ti * la])  # noqa: F821
            if want_grad:
                g[_row_offset(r, shape, gs, go) + ti * ga] = _Sg(-wt * scale)  # noqa: F821
        r += step


def kernel(ctype, codec=_codecs.NATIVE):
    """The kernel for compute dtype ``ctype``, lp and its gradient stored as ``codec``."""
    ctype = np.dtype(ctype)

    def build():
        b = dict(_rows.helpers(ctype, "thread"), _Llp=_codecs.load(codec, ctype), _Sg=_codecs.store(codec))
        return _kernels.kernel(_nll, b, f"nll.{codec}", ctype, "elementwise")

    return _kernels.cached(("nll_loss", ctype, codec), build)


def nll_loss(ctx, lp, target, axis, ignore_index, weight, scale, want_grad):
    """(per-row losses in the compute dtype, gradient or None in lp's dtype and
    shape, C-contiguous)."""
    ctype = COMPUTE[lp.dtype]
    rows_shape = lp.shape[:axis] + lp.shape[axis + 1 :]
    rows = int(np.prod(rows_shape))
    loss = _arrays.empty(ctx, rows_shape, ctype)
    grad = _arrays.empty(ctx, lp.shape, lp.dtype) if want_grad else None
    if want_grad:
        reduce.fill(ctx, grad, 0.0)
    if rows == 0:
        return loss, grad
    if lp.shape[axis] == 0:  # no classes: every target is ignored (check_targets)
        reduce.fill(ctx, loss, 0.0)
        return loss, grad
    # without a gradient, lp stands in for it (never written)
    shape, ops = _operands.row_operands(ctx, [lp, grad if want_grad else lp, target], axis)
    loss_v = _operands.contiguous_view(ctx, loss)
    w_v = loss_v if weight is None else _operands.contiguous_view(ctx, weight)  # the losses' view stands in
    config = _config.plan("elementwise", 1, rows, "unit", ctype.itemsize, _config.limits(ctx))
    args = [*[v for o in ops for v in o], w_v, loss_v, shape, np.int64(rows), np.int64(ignore_index)]
    k = kernel(ctype, _codecs.of(lp.dtype))
    _kernels.launch(ctx, k, config, [*args, ctype.type(scale), want_grad, weight is not None])
    return loss, grad
