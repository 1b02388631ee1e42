"""Public row-wise functions: softmax, log-softmax, softmin, logsumexp, their
backward passes, maxout.

A 0-d array is treated as a single row of one element. softmin(x/T) is
softmax(-x/T): the backends compute it as softmax at temperature -T (the
sign of the temperature they are given), folding the sign into the loads of
x, so no negated copy is made.
"""

from . import _dispatch, _validate


def _as_rows(a):
    # 0-d -> (1,) view; row ops need an axis
    return a.reshape((1,)) if a.ndim == 0 else a


def _mask(fname, be, ctx, mask, shape):
    # the checked mask with the rank of _as_rows' arrays, or None
    m = _validate.mask(fname, be, ctx, mask, shape)
    return None if m is None else _as_rows(m)


def _softmax_forward(fname, log, x, axis, temperature, mask, out, backend, stream, sign=1.0):
    # sign -1: softmin, softmax at temperature -T
    be, ctx = _dispatch.resolve(fname, (x, mask, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    t = _validate.temperature(fname, temperature, xa.dtype)
    m = _mask(fname, be, ctx, mask, xa.shape)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.softmax(ctx, _as_rows(xa), ax, sign * t, log, m, _as_rows(o))
    return be.wrap(ctx, o, x)


def _softmax_backward(fname, log, grad_output, output, axis, temperature, mask, out, backend, stream, sign=1.0):
    be, ctx = _dispatch.resolve(fname, (output, grad_output, mask, out), backend, stream)
    g, y = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("output", output)])
    _validate.grad_like(fname, g, y)
    ax = _validate.axis(fname, axis, y.ndim)
    t = _validate.temperature(fname, temperature, y.dtype)
    m = _mask(fname, be, ctx, mask, y.shape)
    o = _validate.out(fname, be, ctx, out, y.shape, y.dtype)
    if y.size:
        be.softmax_backward(ctx, _as_rows(g), _as_rows(y), ax, sign * t, log, m, _as_rows(o))
    return be.wrap(ctx, o, output)


def softmax(x, axis=-1, *, temperature=1.0, mask=None, out=None, backend=None, stream=None):
    """softmax(x/T) along ``axis``: e^{(x_i - max)/T} / sum_j e^{(x_j - max)/T}.
    ``mask`` (bool, broadcast to x): only its True entries take part; the others
    get 0, and a row with none is all 0."""
    return _softmax_forward("gpu_act.softmax", False, x, axis, temperature, mask, out, backend, stream)


def log_softmax(x, axis=-1, *, temperature=1.0, mask=None, out=None, backend=None, stream=None):
    """log softmax(x/T) along ``axis``: (x_i - max)/T - log sum_j e^{(x_j - max)/T}.
    ``mask`` as softmax's: masked entries (and every entry of a row with no
    unmasked one) get -inf."""
    return _softmax_forward("gpu_act.log_softmax", True, x, axis, temperature, mask, out, backend, stream)


def softmax_backward(grad_output, output, axis=-1, *, temperature=1.0, mask=None, out=None, backend=None,
                     stream=None):
    """Gradient through softmax from its output y: y (g - sum(g y)) / T, the sum
    over the unmasked entries of ``mask``; masked entries 0."""
    return _softmax_backward("gpu_act.softmax_backward", False, grad_output, output, axis, temperature, mask, out,
                             backend, stream)


def log_softmax_backward(grad_output, output, axis=-1, *, temperature=1.0, mask=None, out=None, backend=None,
                         stream=None):
    """Gradient through log_softmax from its output y: (g - e^y sum(g)) / T, the
    sum over the unmasked entries of ``mask``; masked entries 0."""
    return _softmax_backward(
        "gpu_act.log_softmax_backward", True, grad_output, output, axis, temperature, mask, out, backend, stream
    )


def softmin(x, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """softmin(x/T) = softmax(-x/T) along ``axis`` (PyTorch's softmin):
    e^{-(x_i - min)/T} / sum_j e^{-(x_j - min)/T}."""
    return _softmax_forward("gpu_act.softmin", False, x, axis, temperature, None, out, backend, stream, sign=-1.0)


def softmin_backward(grad_output, output, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """Gradient through softmin from its output y: -y (g - sum(g y)) / T."""
    return _softmax_backward(
        "gpu_act.softmin_backward", False, grad_output, output, axis, temperature, None, out, backend, stream, sign=-1.0
    )


def reduced_shape(shape, ax, keepdims):
    """The shape of a reduction along axis ``ax`` of ``shape`` (a 0-d shape stays 0-d)."""
    if not shape:
        return ()
    return tuple(shape[:ax]) + ((1,) if keepdims else ()) + tuple(shape[ax + 1 :])


def _kept(a, shape, ax):
    """``a``, a reduction's result along ``ax`` of an array of ``shape``, as a view of
    that array's rank with axis ``ax`` of length 1 (a 0-d shape counts as (1,))."""
    return a.reshape(reduced_shape(tuple(shape) or (1,), ax, True))


def logsumexp(x, axis=-1, *, keepdims=False, mask=None, temperature=1.0, out=None, backend=None, stream=None):
    """T log sum_j e^{x_j/T} along ``axis``, as m + T log sum_j e^{(x_j - m)/T}
    (m the row max): NaN in a row gives NaN, else +inf in it gives +inf, a row
    of only -inf (or none) gives -inf (SciPy's logsumexp). ``keepdims`` keeps the
    axis with length 1. ``mask`` (bool, broadcast to x): only its True entries
    take part; a row with none gives -inf."""
    fname = "gpu_act.logsumexp"
    be, ctx = _dispatch.resolve(fname, (x, mask, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    keep = _validate.flag(fname, "keepdims", keepdims)
    t = _validate.temperature(fname, temperature, xa.dtype, factor=True)
    m = _mask(fname, be, ctx, mask, xa.shape)
    o = _validate.out(fname, be, ctx, out, reduced_shape(xa.shape, ax, keep), xa.dtype)
    if o.size:
        be.logsumexp(ctx, _as_rows(xa), ax, t, m, _kept(o, xa.shape, ax))
    return be.wrap(ctx, o, x)


def logsumexp_backward(grad_output, x, result, axis=-1, *, keepdims=False, mask=None, temperature=1.0, out=None,
                       backend=None, stream=None):
    """Gradient through logsumexp: g softmax(x/T) = g e^{(x - result)/T}, g and the
    forward's ``result`` (of logsumexp's shape, ``keepdims`` as there) broadcast
    along ``axis``; NaN along a row whose result is not finite (its softmax is NaN).
    Masked entries of ``mask`` (as the forward's) get 0."""
    fname = "gpu_act.logsumexp_backward"
    be, ctx = _dispatch.resolve(fname, (x, grad_output, result, mask, out), backend, stream)
    g, xa, r = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("x", x), ("result", result)])
    ax = _validate.axis(fname, axis, xa.ndim)
    keep = _validate.flag(fname, "keepdims", keepdims)
    shape = reduced_shape(xa.shape, ax, keep)
    for what, a in (("grad_output", g), ("result", r)):
        _validate.same_shape(fname, what, a, shape)
        _validate.same_dtype(fname, what, a, xa.dtype)
    t = _validate.temperature(fname, temperature, xa.dtype, factor=True)
    m = _mask(fname, be, ctx, mask, xa.shape)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.logsumexp_backward(ctx, _kept(g, xa.shape, ax), _as_rows(xa), _kept(r, xa.shape, ax), ax, t, m,
                              _as_rows(o))
    return be.wrap(ctx, o, x)


def check_pool(fname, pool_size, length):
    """``pool_size`` as an int dividing ``length``, else TypeError/ValueError."""
    p = _validate.integer(fname, "pool_size", pool_size, 1, 2**63)
    if length % p:
        raise ValueError(
            f"{fname}: pool_size={pool_size} is not accepted; expected a positive integer dividing the axis length {length}"
        )
    return p


def pooled_shape(shape, ax, p):
    """``shape`` with axis ``ax`` divided by the pool size ``p`` (a 0-d shape counts as (1,))."""
    shape = list(shape) or [1]
    shape[ax] //= p
    return tuple(shape)


def maxout(x, pool_size, axis=-1, *, out=None, backend=None, stream=None):
    """Max over consecutive groups of ``pool_size`` along ``axis``."""
    fname = "gpu_act.maxout"
    be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    xr = _as_rows(xa)
    p = check_pool(fname, pool_size, xr.shape[ax])
    shape = pooled_shape(xr.shape, ax, p)
    o = _validate.out(fname, be, ctx, out, shape if xa.ndim else (), xa.dtype)
    if xa.size and o.size:
        be.maxout(ctx, xr, p, ax, _as_rows(o))
    return be.wrap(ctx, o, x)


def maxout_backward(grad_output, x, pool_size, axis=-1, *, out=None, backend=None, stream=None):
    """grad_output routed to the first maximum of each group (NaN counts as the maximum); 0 elsewhere."""
    fname = "gpu_act.maxout_backward"
    be, ctx = _dispatch.resolve(fname, (x, grad_output, out), backend, stream)
    g, xa = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    xr = _as_rows(xa)
    p = check_pool(fname, pool_size, xr.shape[ax])
    _validate.same_shape(fname, "grad_output", g, pooled_shape(xr.shape, ax, p) if xa.ndim else ())
    _validate.same_dtype(fname, "grad_output", g, xa.dtype)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.maxout_backward(ctx, _as_rows(g), xr, p, ax, _as_rows(o))
    return be.wrap(ctx, o, x)
