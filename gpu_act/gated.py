"""Gated linear units, generated from the activation registry.

x is split along ``axis`` into its halves, in PyTorch's order: the first, b,
carries the values, the second, a, is the gate:

    glu(x, axis, activation, **params) = act(a) * b
    glu_backward(g, x, ...)            = [g act(a), g b act'(a)]: the gradient of x, b's half first

for any plain activation of the registry (``registry.PLAIN``) with its
parameters, bound and checked as the elementwise functions bind them;
PyTorch's ``glu`` (first half times sigmoid of the second) is the sigmoid
gate. ``swiglu`` (silu), ``geglu`` (gelu, ``approximate=`` passed through) and
``reglu`` (relu) are the named shortcuts, with their backward passes. The
forward is the backends' ``scaled`` (b times the gate's formula of a) over the
two half views; the backward is one pass (``Backend.gated_backward``) writing
both halves of the gradient.
"""

import inspect

from . import _dispatch, _validate
from .registry import ACTIVATIONS, PLAIN

# shortcut -> its gate
SHORTCUTS = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}


def gate(fname, activation):
    """The registry row of the gate ``activation``, else ValueError naming the accepted ones."""
    if not isinstance(activation, str) or activation not in PLAIN:
        raise ValueError(
            f"{fname}: activation={activation!r} is not accepted; expected one of {', '.join(PLAIN)} "
            "(prelu and rrelu have per-channel or random slopes, not a gate's)"
        )
    return ACTIVATIONS[activation]


def halved(fname, shape, ax):
    """``shape`` with axis ``ax`` halved, else ValueError for an odd length."""
    n = shape[ax]
    if n % 2:
        raise ValueError(
            f"{fname}: x has length {n} along axis {ax}; expected an even length (the two halves a and b)"
        )
    return tuple(shape[:ax]) + (n // 2,) + tuple(shape[ax + 1 :])


def setup(fname, x, axis, activation, params, dtype):
    """(axis, half shape, gate formula, its derivative, kernel parameters) of a call on ``x``."""
    if len(x.shape) == 0:
        raise ValueError(f"{fname}: x must have at least 1 dimension (the axis split into halves); got a 0-d array")
    ax = _validate.axis(fname, axis, len(x.shape))
    act = gate(fname, activation)
    half = halved(fname, x.shape, ax)
    f, d, p = act.kernels(act.bind(fname, (), params, dtype))
    return ax, half, f, d, p


def glu(x, axis=-1, *, activation="sigmoid", out=None, backend=None, stream=None, **params):
    """b * act(a) with b, a the first and second halves of x along ``axis``
    (PyTorch's glu: b * sigmoid(a)); ``activation`` any plain registry
    activation, ``params`` its parameters."""
    fname = "gpu_act.glu"
    be, ctx = _dispatch.resolve(fname, (x, out), backend, stream)
    (xa,) = _validate.inputs(fname, be, ctx, [("x", x)])
    ax, half, f, _, p = setup(fname, xa, axis, activation, params, xa.dtype)
    o = _validate.out(fname, be, ctx, out, half, xa.dtype)
    if o.size:
        b, a = be.halves(ctx, xa, ax)
        be.scaled(ctx, f, b, a, p, o)
    return be.wrap(ctx, o, x)


def glu_backward(grad_output, x, axis=-1, *, activation="sigmoid", out=None, backend=None, stream=None, **params):
    """The gradient of x through ``glu``: g act(a) in the first half (b's),
    g b act'(a) in the second (the gate a's)."""
    fname = "gpu_act.glu_backward"
    be, ctx = _dispatch.resolve(fname, (x, grad_output, out), backend, stream)
    g, xa = _validate.inputs(fname, be, ctx, [("grad_output", grad_output), ("x", x)])
    ax, half, f, d, p = setup(fname, xa, axis, activation, params, xa.dtype)
    _validate.same_shape(fname, "grad_output", g, half)
    _validate.same_dtype(fname, "grad_output", g, xa.dtype)
    o = _validate.out(fname, be, ctx, out, xa.shape, xa.dtype)
    if o.size:
        b, a = be.halves(ctx, xa, ax)
        db, da = be.halves(ctx, o, ax)
        be.gated_backward(ctx, f, d, g, a, b, p, da, db)
    return be.wrap(ctx, o, x)


_KW = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in ("out", "backend", "stream")]


def _shortcut(name, gate_name):
    act = ACTIVATIONS[gate_name]
    names = {p.name for p in act.params}

    def check(fname, params):
        for k in params:
            if k not in names:
                raise TypeError(f"{fname}() got an unexpected keyword argument {k!r}")

    def forward(x, axis=-1, *, out=None, backend=None, stream=None, **params):
        check(f"gpu_act.{name}", params)
        return glu(x, axis, activation=gate_name, out=out, backend=backend, stream=stream, **params)

    def backward(grad_output, x, axis=-1, *, out=None, backend=None, stream=None, **params):
        check(f"gpu_act.{name}_backward", params)
        return glu_backward(grad_output, x, axis, activation=gate_name, out=out, backend=backend, stream=stream,
                            **params)

    keyword = [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in act.params]
    axis = inspect.Parameter("axis", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=-1)
    for fn, fn_name, arrays, what in (
        (forward, name, ["x"], f"b * {gate_name}(a) with b, a the first and second halves of x along ``axis``"),
        (backward, name + "_backward", ["grad_output", "x"], f"the gradient of x through {name}: g {gate_name}(a) in "
                                                             f"the first half, g b {gate_name}'(a) in the second"),
    ):
        fn.__name__ = fn.__qualname__ = fn_name
        fn.__module__ = "gpu_act"
        pos = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in arrays]
        fn.__signature__ = inspect.Signature(pos + [axis] + keyword + _KW)
        fn.__doc__ = f"{what} (glu with activation={gate_name!r})."
    return forward, backward


FUNCTIONS = {"glu": glu, "glu_backward": glu_backward}
for _name, _gate in SHORTCUTS.items():
    FUNCTIONS[_name], FUNCTIONS[_name + "_backward"] = _shortcut(_name, _gate)
