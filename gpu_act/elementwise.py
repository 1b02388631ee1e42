"""Public elementwise functions, generated from the registry.

For every row NAME of ``registry.PLAIN``:
    NAME(x, *params, out=None, backend=None)                 = f(x)
    NAME_backward(grad_output, x, *params, out=None, backend=None) = grad_output * f'(x)
plus PReLU (per-channel weight) and RReLU (random slopes when training).
"""

import inspect

import numpy as np

from . import _dispatch, _validate
from . import formulas as F
from ._dtypes import COMPUTE
from .registry import ACTIVATIONS, PLAIN

_KW = [
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, default=None),
]


def _signature(act, arrays):
    pos = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in arrays]
    params = [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default) for p in act.params]
    return inspect.Signature(pos + params + _KW)


def _make(act):
    fname = f"gpu_act.{act.name}"

    def forward(x, *args, out=None, backend=None, stream=None, **kwargs):
        be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
        (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
        f, _, params = act.kernels(act.bind(fname, args, kwargs, xa.dtype))
        o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
        if xa.size:
            be.unary(ctx, f, xa, params, o)
        return be.wrap(ctx, o, x)

    def backward(grad_output, x, *args, out=None, backend=None, stream=None, **kwargs):
        name = fname + "_backward"
        be, ctx = _dispatch.resolve(name, (x, grad_output, out), backend, stream)
        g, xa = _validate.inputs(name, be, ctx, [("grad_output", grad_output), ("x", x)])
        _validate.grad_like(name, g, xa)
        _, d, params = act.kernels(act.bind(name, args, kwargs, xa.dtype))
        o = _validate.out(name, be, ctx, out, xa.shape, xa.dtype)
        if xa.size:
            be.scaled(ctx, d, g, xa, params, o)
        return be.wrap(ctx, o, x)

    for fn, name, arrays, what in (
        (forward, act.name, ["x"], f"{act.name}(x) = {act.formula}"),
        (backward, act.name + "_backward", ["grad_output", "x"], f"grad_output * d{act.name}/dx = {act.derivative_text}"),
    ):
        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = "gpu_act"
        fn.__signature__ = _signature(act, arrays)
        fn.__doc__ = f"{what}\n\nParameters: {', '.join(f'{p.name}={p.default!r} ({p.accepted()})' for p in act.params) or 'none'}."
    return forward, backward


FUNCTIONS = {}
for _name in PLAIN:
    FUNCTIONS[_name], FUNCTIONS[_name + "_backward"] = _make(ACTIVATIONS[_name])


# ---------------------------------------------------------------- PReLU
def _prelu_setup(fname, named, weight, out, backend, stream):
    """(backend, call context, native arrays, native weight, slope): the slope is
    the weight reshaped to x's rank so that it broadcasts along every axis but
    axis 1. x (the last of ``named``) is the call's primary input."""
    be, ctx = _dispatch.resolve(fname, (named[-1][1], *(a for _, a in named[:-1]), weight, out), backend, stream)
    *arrays, w = _validate.inputs(fname, be, ctx, [*named, ("weight", weight)])
    x = arrays[-1]
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.ndim > 1 or w.size not in (1, channels):
        raise ValueError(
            f"{fname}: weight has shape {tuple(w.shape)}; expected 1 element or {channels} "
            "(one per channel, axis 1 of x)"
        )
    shape = [1] * x.ndim
    if w.size != 1:  # one per channel (also zero channels)
        shape[1] = w.size
    return be, ctx, arrays, w, be.astype(ctx, w.reshape(tuple(shape)), x.dtype)


def prelu(x, weight, *, out=None, backend=None, stream=None):
    """x if x > 0 else weight[c] * x, c the channel (axis 1 for ndim >= 2)."""
    fname = "gpu_act.prelu"
    be, ctx, (xa,), _, slope = _prelu_setup(fname, [("x", x)], weight, out, backend, stream)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        be.unary_slope(ctx, F.leaky_relu_fwd, xa, slope, o)
    return be.wrap(ctx, o, x)


def prelu_backward(grad_output, x, weight, *, backend=None, stream=None):
    """(grad_x, grad_weight): grad_x = g (1 if x > 0 else w_c);
    grad_weight[c] = sum of g x over channel c where x <= 0."""
    fname = "gpu_act.prelu_backward"
    be, ctx, (g, xa), w, slope = _prelu_setup(
        fname, [("grad_output", grad_output), ("x", x)], weight, None, backend, stream
    )
    _validate.grad_like(fname, g, xa)
    gx = be.empty(ctx, xa.shape, xa.dtype)
    contrib = be.empty(ctx, xa.shape, COMPUTE[xa.dtype])  # summed below: keep float16 terms unrounded
    if xa.size:
        be.scaled_slope(ctx, F.leaky_relu_der, g, xa, slope, gx)
        be.scaled_slope(ctx, F.leaky_relu_slope_der, g, xa, slope, contrib)
    gw = be.channel_sum(ctx, contrib, 1 if w.size != 1 else None, w.dtype).reshape(w.shape)
    return be.wrap(ctx, gx, x), be.wrap(ctx, gw, weight)


# ---------------------------------------------------------------- RReLU
def rrelu_key(fname, seed):
    """The generator key of ``seed`` (an integer in [0, 2**64)), else TypeError/ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{fname}: seed must be an integer in [0, 2**64), got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"{fname}: seed={seed} is not accepted; expected an integer in [0, 2**64)")
    return F.mix64(int(seed))


def rrelu(x, lower=1.0 / 8.0, upper=1.0 / 3.0, *, training=False, seed=0, out=None, backend=None, stream=None):
    """x if x > 0 else a x. Eval: a = (lower+upper)/2. Training: a ~ U(lower, upper)
    per element, from a counter-based generator keyed by (seed, C-order flat index)."""
    fname = "gpu_act.rrelu"
    act = ACTIVATIONS["rrelu"]
    be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    params = act.bind(fname, (lower, upper), {}, xa.dtype)
    key = rrelu_key(fname, seed)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        if training:
            be.unary_slope(ctx, F.leaky_relu_fwd, xa, be.rrelu_slopes(ctx, xa.shape, key, *params, xa.dtype), o)
        else:
            be.unary(ctx, act.forward, xa, params, o)
    return be.wrap(ctx, o, x)


def rrelu_backward(
    grad_output, x, lower=1.0 / 8.0, upper=1.0 / 3.0, *, training=False, seed=0, out=None, backend=None, stream=None
):
    """grad_output * (1 if x > 0 else a), with the slopes a of ``rrelu`` regenerated."""
    fname = "gpu_act.rrelu_backward"
    act = ACTIVATIONS["rrelu"]
    be, ctx = _dispatch.resolve(fname, (x, grad_output, out), backend, stream)
    g, xa = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("x", x)])
    _validate.grad_like(fname, g, xa)
    params = act.bind(fname, (lower, upper), {}, xa.dtype)
    key = rrelu_key(fname, seed)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if xa.size:
        if training:
            be.scaled_slope(ctx, F.leaky_relu_der, g, xa, be.rrelu_slopes(ctx, xa.shape, key, *params, xa.dtype), o)
        else:
            be.scaled(ctx, act.derivative, g, xa, params, o)
    return be.wrap(ctx, o, x)
