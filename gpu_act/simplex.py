"""Public projections onto the probability simplex: sparsemax and its backward pass.

sparsemax (Martins & Astudillo 2016) along ``axis``: y_j = max(x_j - tau, 0),
tau the row's threshold where sum_j y_j = 1 (the Euclidean projection of the
row onto the simplex); its backward pass from y and g: dx_j = g_j - the mean
of g over the support {y_j > 0}, 0 off it. A 0-d array is a single row of
one element (sparsemax 1). Special rows: NaN anywhere makes the row NaN (in
the backward pass, NaN anywhere in g or y); -inf entries get 0 (a row of only
-inf is NaN); +inf entries share the mass equally and the others get 0.
"""

from . import _dispatch, _validate
from .rowwise import _as_rows


def sparsemax(x, axis=-1, *, out=None, backend=None, stream=None):
    """The projection of each row of x along ``axis`` onto the probability simplex: max(x - tau, 0)."""
    fname = "gpu_act.sparsemax"
    be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.sparsemax(ctx, _as_rows(xa), ax, _as_rows(o))
    return be.wrap(ctx, o, x)


def sparsemax_backward(grad_output, output, axis=-1, *, out=None, backend=None, stream=None):
    """Gradient through sparsemax from its output y: g - mean of g over {y > 0} there, 0 elsewhere."""
    fname = "gpu_act.sparsemax_backward"
    be, ctx = _dispatch.resolve(fname, (output, grad_output, out), backend, stream)
    g, y = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("output", output)])
    _validate.grad_like(fname, g, y)
    ax = _validate.axis(fname, axis, y.ndim)
    o = _validate.out(fname, be, ctx, out, y.shape, y.dtype)
    if y.size:
        be.sparsemax_backward(ctx, _as_rows(g), _as_rows(y), ax, _as_rows(o))
    return be.wrap(ctx, o, output)
