"""Public row-wise functions: softmax, log-softmax, their backward passes, maxout.

A 0-d array is treated as a single row of one element.
"""

from . import _dispatch, _validate


def _as_rows(a):
    # 0-d -> (1,) view; row ops need an axis
    return a.reshape((1,)) if a.ndim == 0 else a


def _softmax_forward(fname, log, x, axis, temperature, out, backend, stream):
    be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax = _validate.axis(fname, axis, xa.ndim)
    t = _validate.temperature(fname, temperature, xa.dtype)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.softmax(ctx, _as_rows(xa), ax, t, log, _as_rows(o))
    return be.wrap(ctx, o, x)


def _softmax_backward(fname, log, grad_output, output, axis, temperature, out, backend, stream):
    be, ctx = _dispatch.resolve(fname, (output, grad_output, out), backend, stream)
    g, y = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("output", output)])
    _validate.grad_like(fname, g, y)
    ax = _validate.axis(fname, axis, y.ndim)
    t = _validate.temperature(fname, temperature, y.dtype)
    o = _validate.out(fname, be, ctx, out, y.shape, y.dtype)
    if y.size:
        be.softmax_backward(ctx, _as_rows(g), _as_rows(y), ax, t, log, _as_rows(o))
    return be.wrap(ctx, o, output)


def softmax(x, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """softmax(x/T) along ``axis``: e^{(x_i - max)/T} / sum_j e^{(x_j - max)/T}."""
    return _softmax_forward("gpu_act.softmax", False, x, axis, temperature, out, backend, stream)


def log_softmax(x, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """log softmax(x/T) along ``axis``: (x_i - max)/T - log sum_j e^{(x_j - max)/T}."""
    return _softmax_forward("gpu_act.log_softmax", True, x, axis, temperature, out, backend, stream)


def softmax_backward(grad_output, output, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """Gradient through softmax from its output y: y (g - sum(g y)) / T."""
    return _softmax_backward("gpu_act.softmax_backward", False, grad_output, output, axis, temperature, out, backend, stream)


def log_softmax_backward(grad_output, output, axis=-1, *, temperature=1.0, out=None, backend=None, stream=None):
    """Gradient through log_softmax from its output y: (g - e^y sum(g)) / T."""
    return _softmax_backward(
        "gpu_act.log_softmax_backward", True, grad_output, output, axis, temperature, out, backend, stream
    )


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
