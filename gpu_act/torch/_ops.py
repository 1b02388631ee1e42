"""gpu_act's public functions as PyTorch custom operators (namespace "gpu_act").

Every forward op calls the gpu_act function of its name on the tensors'
memory (torch CPU tensors through NumPy, CUDA tensors on the CUDA backend)
and returns fresh, contiguous tensors; its backward formula
(``register_autograd``) calls the matching gpu_act backward, itself a custom
op, so that ``torch.compile`` traces forward and backward as opaque calls
whose shapes come from ``register_fake``. The backward ops have a registered
autograd formula that raises: gpu_act computes first derivatives only.

The losses run one op that returns (loss, gradient), computed in the same
pass; the gradient is saved for the backward pass, which multiplies it by
the incoming gradient (per row, or per element, for reduction "none"). When
nothing requires grad, a loss-only op skips the gradient.
"""

import inspect

import torch

import gpu_act
from gpu_act.registry import ACTIVATIONS, PLAIN

FUNCTIONS = {}
"""gpu_act's public functions by name, as operators: gpu_act's names and
parameters, with ``dim`` for gpu_act's ``axis``. The forward functions are
differentiable, the NAME_backward ones are not."""


def _define(name, schema, impl, fake):
    op = torch.library.custom_op(f"gpu_act::{name}", impl, mutates_args=(), schema=schema)
    op.register_fake(fake)
    return op


def _first_derivative_only(op, name):
    """Register an autograd formula for the backward op ``op`` that refuses to
    differentiate it (reached by double backward, gradgradcheck, Hessians)."""

    def refuse(ctx, *grads):
        raise RuntimeError(
            f"gpu_act.torch.{name} is not differentiable: gpu_act.torch computes first derivatives only "
            "(no double backward, gradgradcheck or Hessians); use torch.nn.functional where second "
            "derivatives are needed"
        )

    op.register_autograd(refuse)


def _d(t):
    """A tensor argument as gpu_act takes it: without autograd history (gpu_act
    refuses tensors that require grad); None stays None."""
    return None if t is None else t.detach()


def _like(x):
    return x.new_empty(x.shape)


def _export(fn, name, signature, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "gpu_act.torch"
    fn.__signature__ = signature
    fn.__doc__ = doc
    FUNCTIONS[name] = fn


# ---------------------------------------------------------------- the registry's elementwise activations
def _bind(fname, params, args, kwargs):
    """A call's parameter values in the registry's order, defaults filled in."""
    names = [p.name for p in params]
    if len(args) > len(names):
        raise TypeError(f"{fname}() takes at most {len(names)} parameter(s) after the tensors, got {len(args)}")
    values = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise TypeError(f"{fname}() got an unexpected keyword argument {k!r}")
        if k in values:
            raise TypeError(f"{fname}() got multiple values for argument {k!r}")
        values[k] = v
    for k, v in values.items():  # torch's schema would take a bool for a float; gpu_act refuses it
        if isinstance(v, bool):
            raise TypeError(f"{fname}: {k} must be a real number, got a bool ({v!r})")
    return tuple(values.get(p.name, p.default) for p in params)


def _elementwise(act):
    name = act.name
    forward_fn, backward_fn = getattr(gpu_act, name), getattr(gpu_act, name + "_backward")
    # a choice parameter (gelu's approximate) is a string, every other one a float
    params = "".join(f", {'str' if p.choices else 'float'} {p.name}" for p in act.params)
    n = len(act.params)

    fwd = _define(
        name,
        f"(Tensor x{params}) -> Tensor",
        lambda x, *p: forward_fn(_d(x), *p),
        lambda x, *p: _like(x),
    )
    bwd = _define(
        name + "_backward",
        f"(Tensor grad_output, Tensor x{params}) -> Tensor",
        lambda g, x, *p: backward_fn(_d(g), _d(x), *p),
        lambda g, x, *p: _like(x),
    )

    def setup_context(ctx, inputs, output):
        x, *p = inputs
        ctx.save_for_backward(x)
        ctx.params = p

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (bwd(grad, x, *ctx.params), *(None,) * n)

    fwd.register_autograd(backward, setup_context=setup_context)
    _first_derivative_only(bwd, name + "_backward")

    def call_forward(x, *args, **kwargs):
        return fwd(x, *_bind(f"gpu_act.torch.{name}", act.params, args, kwargs))

    def call_backward(grad_output, x, *args, **kwargs):
        return bwd(grad_output, x, *_bind(f"gpu_act.torch.{name}_backward", act.params, args, kwargs))

    for fn, fname, tensors, doc in (
        (call_forward, name, ["x"], f"{name}(x) = {act.formula}; differentiable."),
        (call_backward, name + "_backward", ["grad_output", "x"],
         f"grad_output * d{name}/dx = {act.derivative_text}; not differentiable."),
    ):
        pos = [inspect.Parameter(t, inspect.Parameter.POSITIONAL_OR_KEYWORD) for t in tensors]
        pos += [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default)
                for p in act.params]
        _export(fn, fname, inspect.Signature(pos), doc)


for _name in PLAIN:
    _elementwise(ACTIVATIONS[_name])


# ---------------------------------------------------------------- PReLU
_prelu = _define(
    "prelu",
    "(Tensor x, Tensor weight) -> Tensor",
    lambda x, w: gpu_act.prelu(_d(x), _d(w)),
    lambda x, w: _like(x),
)
_prelu_backward = _define(
    "prelu_backward",
    "(Tensor grad_output, Tensor x, Tensor weight) -> (Tensor, Tensor)",
    lambda g, x, w: gpu_act.prelu_backward(_d(g), _d(x), _d(w)),
    lambda g, x, w: (_like(x), _like(w)),
)


def _prelu_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _prelu_grad(ctx, grad):
    x, w = ctx.saved_tensors
    return _prelu_backward(grad, x, w)


_prelu.register_autograd(_prelu_grad, setup_context=_prelu_setup)
_first_derivative_only(_prelu_backward, "prelu_backward")


def prelu(x, weight):
    """x if x > 0 else weight[c] x, c the channel (axis 1 when x.ndim >= 2);
    ``weight`` has 1 element or one per channel. Differentiable in x and weight."""
    return _prelu(x, weight)


def prelu_backward(grad_output, x, weight):
    """(grad_x, grad_weight) of ``prelu``; not differentiable."""
    return _prelu_backward(grad_output, x, weight)


FUNCTIONS.update(prelu=prelu, prelu_backward=prelu_backward)


# ---------------------------------------------------------------- RReLU
# The seed is a 0-d int64 tensor (drawn in the graph when training), read in the op.
def _seed_of(seed):
    return 0 if seed is None else int(seed)


_rrelu = _define(
    "rrelu",
    "(Tensor x, float lower, float upper, bool training, Tensor? seed) -> Tensor",
    lambda x, lo, hi, training, seed: gpu_act.rrelu(_d(x), lo, hi, training=training, seed=_seed_of(seed)),
    lambda x, lo, hi, training, seed: _like(x),
)
_rrelu_backward = _define(
    "rrelu_backward",
    "(Tensor grad_output, Tensor x, float lower, float upper, bool training, Tensor? seed) -> Tensor",
    lambda g, x, lo, hi, training, seed: gpu_act.rrelu_backward(
        _d(g), _d(x), lo, hi, training=training, seed=_seed_of(seed)
    ),
    lambda g, x, lo, hi, training, seed: _like(x),
)


def _rrelu_setup(ctx, inputs, output):
    x, ctx.lower, ctx.upper, ctx.training, seed = inputs
    ctx.save_for_backward(x, seed)


def _rrelu_grad(ctx, grad):
    x, seed = ctx.saved_tensors
    return _rrelu_backward(grad, x, ctx.lower, ctx.upper, ctx.training, seed), None, None, None, None


_rrelu.register_autograd(_rrelu_grad, setup_context=_rrelu_setup)
_first_derivative_only(_rrelu_backward, "rrelu_backward")


def _seed_tensor(seed):
    return seed if isinstance(seed, torch.Tensor) else torch.tensor(seed, dtype=torch.int64)


def rrelu(x, lower=1.0 / 8.0, upper=1.0 / 3.0, *, training=False, seed=None):
    """x if x > 0 else a x: a = (lower+upper)/2, or when ``training`` a ~ U(lower, upper)
    per element from gpu_act's counter-based generator keyed by ``seed``: an int
    in [0, 2**63) or a 0-d int64 tensor; None (the default) draws a new seed from
    torch's default generator on each call, so every call draws new slopes (as
    torch's rrelu) and ``torch.manual_seed`` makes them reproducible. The backward
    pass regenerates the slopes from the seed. Differentiable."""
    if training:
        seed = torch.randint(0, 2**63 - 1, (), dtype=torch.int64) if seed is None else _seed_tensor(seed)
        return _rrelu(x, lower, upper, True, seed)
    return _rrelu(x, lower, upper, False, None)


def rrelu_backward(grad_output, x, lower=1.0 / 8.0, upper=1.0 / 3.0, *, training=False, seed=0):
    """grad_output * (1 if x > 0 else a), the slopes a of ``rrelu`` with the same
    ``seed`` (an int or a 0-d int64 tensor); not differentiable."""
    return _rrelu_backward(grad_output, x, lower, upper, training, _seed_tensor(seed) if training else None)


FUNCTIONS.update(rrelu=rrelu, rrelu_backward=rrelu_backward)


# ---------------------------------------------------------------- softmax family
def _softmax_ops(name, forward_fn, backward_fn, masked):
    """(forward op, backward op); ``masked``: the ops take gpu_act's ``mask`` (a
    bool tensor, no gradient) last."""
    m, mk = (", Tensor? mask=None", lambda mask: {"mask": _d(mask)}) if masked else ("", lambda mask: {})
    fwd = _define(
        name,
        f"(Tensor x, int dim, float temperature{m}) -> Tensor",
        lambda x, dim, t, mask=None: forward_fn(_d(x), dim, temperature=t, **mk(mask)),
        lambda x, dim, t, mask=None: _like(x),
    )
    bwd = _define(
        name + "_backward",
        f"(Tensor grad_output, Tensor output, int dim, float temperature{m}) -> Tensor",
        lambda g, y, dim, t, mask=None: backward_fn(_d(g), _d(y), dim, temperature=t, **mk(mask)),
        lambda g, y, dim, t, mask=None: _like(y),
    )

    def setup_context(ctx, inputs, output):
        _, ctx.dim, ctx.temperature, *ctx.mask = inputs
        ctx.save_for_backward(output)

    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return bwd(grad, y, ctx.dim, ctx.temperature, *ctx.mask), None, None, *(None,) * len(ctx.mask)

    fwd.register_autograd(backward, setup_context=setup_context)
    _first_derivative_only(bwd, name + "_backward")
    return fwd, bwd


_softmax, _softmax_backward = _softmax_ops("softmax", gpu_act.softmax, gpu_act.softmax_backward, True)
_log_softmax, _log_softmax_backward = _softmax_ops("log_softmax", gpu_act.log_softmax, gpu_act.log_softmax_backward,
                                                   True)
_softmin, _softmin_backward = _softmax_ops("softmin", gpu_act.softmin, gpu_act.softmin_backward, False)


def softmax(x, dim=-1, *, temperature=1.0, mask=None):
    """softmax(x/T) along ``dim`` (gpu_act's ``axis``), over the True entries of
    ``mask``; differentiable in x."""
    return _softmax(x, dim, temperature, mask)


def log_softmax(x, dim=-1, *, temperature=1.0, mask=None):
    """log softmax(x/T) along ``dim``, over the True entries of ``mask``; differentiable in x."""
    return _log_softmax(x, dim, temperature, mask)


def softmax_backward(grad_output, output, dim=-1, *, temperature=1.0, mask=None):
    """y (g - sum(g y)) / T from softmax's output y; not differentiable."""
    return _softmax_backward(grad_output, output, dim, temperature, mask)


def log_softmax_backward(grad_output, output, dim=-1, *, temperature=1.0, mask=None):
    """(g - e^y sum(g)) / T from log_softmax's output y; not differentiable."""
    return _log_softmax_backward(grad_output, output, dim, temperature, mask)


def softmin(x, dim=-1, *, temperature=1.0):
    """softmin(x/T) = softmax(-x/T) along ``dim``; differentiable."""
    return _softmin(x, dim, temperature)


def softmin_backward(grad_output, output, dim=-1, *, temperature=1.0):
    """-y (g - sum(g y)) / T from softmin's output y; not differentiable."""
    return _softmin_backward(grad_output, output, dim, temperature)


def _reduced(x, dim, keepdims, *rest):
    shape = list(x.shape)
    if shape:  # a 0-d x is one row of one element
        d = dim % len(shape)
        shape = shape[:d] + ([1] if keepdims else []) + shape[d + 1 :]
    return x.new_empty(shape)


_logsumexp = _define(
    "logsumexp",
    "(Tensor x, int dim, bool keepdims, float temperature, Tensor? mask=None) -> Tensor",
    lambda x, dim, keep, t, mask=None: gpu_act.logsumexp(_d(x), dim, keepdims=keep, temperature=t, mask=_d(mask)),
    _reduced,
)
_logsumexp_backward = _define(
    "logsumexp_backward",
    "(Tensor grad_output, Tensor x, Tensor result, int dim, bool keepdims, float temperature, Tensor? mask=None) "
    "-> Tensor",
    lambda g, x, r, dim, keep, t, mask=None: gpu_act.logsumexp_backward(
        _d(g), _d(x), _d(r), dim, keepdims=keep, temperature=t, mask=_d(mask)),
    lambda g, x, r, *rest: _like(x),
)


def _logsumexp_setup(ctx, inputs, output):
    x, ctx.dim, ctx.keepdims, ctx.temperature, *ctx.mask = inputs
    ctx.save_for_backward(x, output)


def _logsumexp_grad(ctx, grad):
    x, r = ctx.saved_tensors
    return (_logsumexp_backward(grad, x, r, ctx.dim, ctx.keepdims, ctx.temperature, *ctx.mask),
            *(None,) * (3 + len(ctx.mask)))


_logsumexp.register_autograd(_logsumexp_grad, setup_context=_logsumexp_setup)
_first_derivative_only(_logsumexp_backward, "logsumexp_backward")


def logsumexp(x, dim=-1, *, keepdims=False, mask=None, temperature=1.0):
    """T log sum e^{x/T} along ``dim`` over the True entries of ``mask``;
    differentiable in x (gradient: softmax(x/T))."""
    return _logsumexp(x, dim, keepdims, temperature, mask)


def logsumexp_backward(grad_output, x, result, dim=-1, *, keepdims=False, mask=None, temperature=1.0):
    """g e^{(x - result)/T}, g broadcast along ``dim``, 0 at masked entries; not differentiable."""
    return _logsumexp_backward(grad_output, x, result, dim, keepdims, temperature, mask)


FUNCTIONS.update(
    softmax=softmax,
    log_softmax=log_softmax,
    softmax_backward=softmax_backward,
    log_softmax_backward=log_softmax_backward,
    softmin=softmin,
    softmin_backward=softmin_backward,
    logsumexp=logsumexp,
    logsumexp_backward=logsumexp_backward,
)


# ---------------------------------------------------------------- gated linear units
def _halved(x, dim, *rest):
    shape = list(x.shape)
    if shape:  # a 0-d x is refused by gpu_act
        shape[dim % len(shape)] //= 2
    return x.new_empty(shape)


def _gate_params(activation, values, choices):
    """The gate's parameters as gpu_act takes them, from the op's float and string
    lists in the registry's order (none for an unknown gate: gpu_act names the accepted ones)."""
    if activation not in PLAIN:
        return {}
    floats, strings = iter(values), iter(choices)
    return {p.name: next(strings) if p.choices else next(floats) for p in ACTIVATIONS[activation].params}


_glu = _define(
    "glu",
    "(Tensor x, int dim, str activation, float[] values, str[] choices) -> Tensor",
    lambda x, dim, act, v, c: gpu_act.glu(_d(x), dim, activation=act, **_gate_params(act, v, c)),
    _halved,
)
_glu_backward = _define(
    "glu_backward",
    "(Tensor grad_output, Tensor x, int dim, str activation, float[] values, str[] choices) -> Tensor",
    lambda g, x, dim, act, v, c: gpu_act.glu_backward(_d(g), _d(x), dim, activation=act, **_gate_params(act, v, c)),
    lambda g, x, *rest: _like(x),
)


def _glu_setup(ctx, inputs, output):
    x, *ctx.args = inputs
    ctx.save_for_backward(x)


def _glu_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return (_glu_backward(grad, x, *ctx.args), *(None,) * len(ctx.args))


_glu.register_autograd(_glu_grad, setup_context=_glu_setup)
_first_derivative_only(_glu_backward, "glu_backward")


def _gate_lists(fname, activation, kwargs):
    """(float values, string choices) of the gate's parameters in the registry's
    order, defaults filled in; an unknown gate gets none (gpu_act refuses it)."""
    if activation not in PLAIN:
        return [], []
    params = ACTIVATIONS[activation].params
    bound = _bind(fname, params, (), kwargs)
    return ([float(v) for p, v in zip(params, bound) if not p.choices],
            [v for p, v in zip(params, bound) if p.choices])


def glu(x, dim=-1, *, activation="sigmoid", **params):
    """b * act(a) with b, a the first and second halves of x along ``dim``
    (torch.nn.functional.glu for the sigmoid gate); differentiable."""
    return _glu(x, dim, activation, *_gate_lists("gpu_act.torch.glu", activation, params))


def glu_backward(grad_output, x, dim=-1, *, activation="sigmoid", **params):
    """The gradient of x through ``glu``; not differentiable."""
    return _glu_backward(grad_output, x, dim, activation, *_gate_lists("gpu_act.torch.glu_backward", activation, params))


FUNCTIONS.update(glu=glu, glu_backward=glu_backward)


def _shortcut(name, gate):
    act = ACTIVATIONS[gate]
    params = "".join(f", {'str' if p.choices else 'float'} {p.name}" for p in act.params)
    forward_fn, backward_fn = getattr(gpu_act, name), getattr(gpu_act, name + "_backward")
    names = [p.name for p in act.params]
    fwd = _define(
        name,
        f"(Tensor x, int dim{params}) -> Tensor",
        lambda x, dim, *p: forward_fn(_d(x), dim, **dict(zip(names, p))),
        _halved,
    )
    bwd = _define(
        name + "_backward",
        f"(Tensor grad_output, Tensor x, int dim{params}) -> Tensor",
        lambda g, x, dim, *p: backward_fn(_d(g), _d(x), dim, **dict(zip(names, p))),
        lambda g, x, *rest: _like(x),
    )
    fwd.register_autograd(_shortcut_grad(bwd), setup_context=_glu_setup)
    _first_derivative_only(bwd, name + "_backward")

    def call_forward(x, dim=-1, **kwargs):
        return fwd(x, dim, *_bind(f"gpu_act.torch.{name}", act.params, (), kwargs))

    def call_backward(grad_output, x, dim=-1, **kwargs):
        return bwd(grad_output, x, dim, *_bind(f"gpu_act.torch.{name}_backward", act.params, (), kwargs))

    keyword = [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in act.params]
    dim = inspect.Parameter("dim", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=-1)
    for fn, fname, tensors, doc in (
        (call_forward, name, ["x"], f"glu with the {gate} gate: b * {gate}(a); differentiable."),
        (call_backward, name + "_backward", ["grad_output", "x"], f"the gradient of x through {name}; not differentiable."),
    ):
        pos = [inspect.Parameter(t, inspect.Parameter.POSITIONAL_OR_KEYWORD) for t in tensors]
        _export(fn, fname, inspect.Signature(pos + [dim] + keyword), doc)


def _shortcut_grad(bwd):
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (bwd(grad, x, *ctx.args), *(None,) * len(ctx.args))

    return backward


for _name, _gate in gpu_act.gated.SHORTCUTS.items():
    _shortcut(_name, _gate)


# ---------------------------------------------------------------- maxout
def _pooled(x, pool_size, dim):
    shape = list(x.shape)
    if shape:  # a 0-d x is one group of one element
        shape[dim % len(shape)] //= pool_size
    return x.new_empty(shape)


_maxout = _define(
    "maxout",
    "(Tensor x, int pool_size, int dim) -> Tensor",
    lambda x, p, dim: gpu_act.maxout(_d(x), p, dim),
    _pooled,
)
_maxout_backward = _define(
    "maxout_backward",
    "(Tensor grad_output, Tensor x, int pool_size, int dim) -> Tensor",
    lambda g, x, p, dim: gpu_act.maxout_backward(_d(g), _d(x), p, dim),
    lambda g, x, p, dim: _like(x),
)


def _maxout_setup(ctx, inputs, output):
    x, ctx.pool_size, ctx.dim = inputs
    ctx.save_for_backward(x)


def _maxout_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return _maxout_backward(grad, x, ctx.pool_size, ctx.dim), None, None


_maxout.register_autograd(_maxout_grad, setup_context=_maxout_setup)
_first_derivative_only(_maxout_backward, "maxout_backward")


def maxout(x, pool_size, dim=-1):
    """Max over consecutive groups of ``pool_size`` along ``dim``; differentiable
    (the gradient goes to the first maximum of each group)."""
    return _maxout(x, pool_size, dim)


def maxout_backward(grad_output, x, pool_size, dim=-1):
    """grad_output routed to the first maximum of each group; not differentiable."""
    return _maxout_backward(grad_output, x, pool_size, dim)


FUNCTIONS.update(maxout=maxout, maxout_backward=maxout_backward)


# ---------------------------------------------------------------- sparsemax
_sparsemax = _define(
    "sparsemax",
    "(Tensor x, int dim) -> Tensor",
    lambda x, dim: gpu_act.sparsemax(_d(x), dim),
    lambda x, dim: _like(x),
)
_sparsemax_backward = _define(
    "sparsemax_backward",
    "(Tensor grad_output, Tensor output, int dim) -> Tensor",
    lambda g, y, dim: gpu_act.sparsemax_backward(_d(g), _d(y), dim),
    lambda g, y, dim: _like(y),
)


def _sparsemax_setup(ctx, inputs, output):
    _, ctx.dim = inputs
    ctx.save_for_backward(output)


def _sparsemax_grad(ctx, grad):
    (y,) = ctx.saved_tensors
    return _sparsemax_backward(grad, y, ctx.dim), None


_sparsemax.register_autograd(_sparsemax_grad, setup_context=_sparsemax_setup)
_first_derivative_only(_sparsemax_backward, "sparsemax_backward")


def sparsemax(x, dim=-1):
    """The projection of each row along ``dim`` onto the probability simplex,
    max(x - tau, 0); differentiable."""
    return _sparsemax(x, dim)


def sparsemax_backward(grad_output, output, dim=-1):
    """g - mean of g over the support {y > 0} there, 0 elsewhere, from
    sparsemax's output y; not differentiable."""
    return _sparsemax_backward(grad_output, output, dim)


FUNCTIONS.update(sparsemax=sparsemax, sparsemax_backward=sparsemax_backward)


# ---------------------------------------------------------------- losses
# The backward of every loss: the saved gradient times the incoming one, which
# for reduction "none" has one entry per row (unsqueezed at the class dim) or
# per element (dim None). A custom op so that differentiating it raises.
_loss_backward = _define(
    "loss_backward",
    "(Tensor grad, Tensor grad_output, int? dim) -> Tensor",
    lambda grad, g, dim: _d(grad) * (_d(g) if dim is None else _d(g).unsqueeze(dim)),
    lambda grad, g, dim: _like(grad),
)
_first_derivative_only(_loss_backward, "loss_backward (the backward of the losses)")


def _loss_ops(name, schema, call):
    """(loss op, loss-and-gradient op) of a gpu_act loss whose arguments are
    ``schema`` (the input first); ``call(*args, grad=return_grad)`` calls gpu_act
    (arguments with a default in the schema may be left out).
    The loss is 0-d unless reduction is "none": then one per row (the input's
    shape without ``dim``) when the schema has a ``dim``, else one per element.
    Of the other tensors, none gets a gradient: the backward pass raises if one
    needs it."""
    names = [a.split()[-1].split("=")[0] for a in schema.split(", ")]
    r = names.index("reduction")
    d = names.index("dim") if "dim" in names else None
    others = [i for i, n in enumerate(names) if n in ("target", "weight", "pos_weight", "mask")]

    def fake_loss(x, *args):
        if args[r - 1] != "none":
            return x.new_empty(())
        if d is None or x.dim() == 0:  # per element; a 0-d input has no class dim (gpu_act refuses it)
            return _like(x)
        dim = args[d - 1] % x.dim()
        return x.new_empty(x.shape[:dim] + x.shape[dim + 1 :])

    only = _define(name, f"({schema}) -> Tensor", lambda *a: call(*a, grad=False), fake_loss)
    both = _define(
        name + "_with_grad",
        f"({schema}) -> (Tensor, Tensor)",
        lambda *a: call(*a, grad=True),
        lambda x, *args: (fake_loss(x, *args), _like(x)),
    )

    def setup_context(ctx, inputs, output):
        # where grad_output goes: None for a 0-d loss or one per element
        ctx.dim = inputs[d] if d is not None and inputs[r] == "none" else None
        ctx.save_for_backward(output[1])
        # the gradient output is internal: no zeros of the input's size for its (absent) gradient
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_loss, _):
        # one gradient per input the op got (trailing ones left at their default are not inputs)
        given = len(ctx.needs_input_grad)
        if grad_loss is None:
            return (None,) * given
        for i in others:
            if i < given and ctx.needs_input_grad[i]:
                raise RuntimeError(
                    f"gpu_act.torch.{name}: the gradient with respect to {names[i]} is not computed; "
                    f"pass {names[i]}.detach()"
                )
        (grad,) = ctx.saved_tensors
        return (_loss_backward(grad, grad_loss, ctx.dim), *(None,) * (given - 1))

    both.register_autograd(backward, setup_context=setup_context)
    return only, both


def _loss(ops, tensors, args):
    """The loss of ``ops`` on ``args``; the op with the gradient when one of
    ``tensors`` requires grad (and grad mode is on)."""
    only, both = ops
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return both(*args)[0]
    return only(*args)


_ce = _loss_ops(
    "cross_entropy",
    "Tensor logits, Tensor target, int dim, Tensor? weight, str reduction, int ignore_index, "
    "float label_smoothing, float z_loss, float? softcap, Tensor? mask=None",
    lambda z, t, dim, w, reduction, ignore, eps, zl, cap, mask=None, *, grad: gpu_act.cross_entropy(
        _d(z), _d(t), dim, weight=_d(w), reduction=reduction, ignore_index=ignore, label_smoothing=eps,
        z_loss=zl, softcap=cap, mask=_d(mask), return_grad=grad,
    ),
)


def cross_entropy(logits, target, dim=-1, *, weight=None, reduction="mean", ignore_index=-100,
                  label_smoothing=0.0, z_loss=0.0, softcap=None, mask=None):
    """gpu_act's cross-entropy (class indices or probabilities along ``dim``,
    gpu_act's ``axis``; ``mask``: the classes each row has), differentiable in
    the logits: the gradient comes from the forward pass, which keeps it (the
    logits' size) until the backward pass. Probability targets, ``weight`` and
    ``mask`` get no gradient: backward raises if they require one."""
    return _loss(_ce, (logits, target, weight),
                 (logits, target, dim, weight, reduction, ignore_index, label_smoothing, z_loss, softcap, mask))


_nll = _loss_ops(
    "nll_loss",
    "Tensor log_probs, Tensor target, int dim, Tensor? weight, str reduction, int ignore_index",
    lambda lp, t, dim, w, reduction, ignore, grad: gpu_act.nll_loss(
        _d(lp), _d(t), dim, weight=_d(w), reduction=reduction, ignore_index=ignore, return_grad=grad
    ),
)


def nll_loss(log_probs, target, dim=-1, *, weight=None, reduction="mean", ignore_index=-100):
    """gpu_act's negative log-likelihood of class indices along ``dim``,
    differentiable in ``log_probs`` (the gradient computed with the loss)."""
    return _loss(_nll, (log_probs, weight), (log_probs, target, dim, weight, reduction, ignore_index))


_bcel = _loss_ops(
    "binary_cross_entropy_with_logits",
    "Tensor logits, Tensor target, Tensor? weight, Tensor? pos_weight, str reduction",
    lambda z, t, w, pw, reduction, grad: gpu_act.binary_cross_entropy_with_logits(
        _d(z), _d(t), weight=_d(w), pos_weight=_d(pw), reduction=reduction, return_grad=grad
    ),
)


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None, reduction="mean"):
    """gpu_act's binary cross-entropy on logits, differentiable in the logits
    (the gradient computed with the loss); target, weight and pos_weight get no
    gradient: backward raises if one requires it."""
    return _loss(_bcel, (logits, target, weight, pos_weight), (logits, target, weight, pos_weight, reduction))


_bce = _loss_ops(
    "binary_cross_entropy",
    "Tensor probs, Tensor target, Tensor? weight, str reduction",
    lambda p, t, w, reduction, grad: gpu_act.binary_cross_entropy(
        _d(p), _d(t), weight=_d(w), reduction=reduction, return_grad=grad
    ),
)


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean"):
    """gpu_act's binary cross-entropy on probabilities, differentiable in
    ``probs`` (the gradient computed with the loss); target and weight get no
    gradient: backward raises if one requires it."""
    return _loss(_bce, (probs, target, weight), (probs, target, weight, reduction))


FUNCTIONS.update(
    cross_entropy=cross_entropy,
    nll_loss=nll_loss,
    binary_cross_entropy_with_logits=binary_cross_entropy_with_logits,
    binary_cross_entropy=binary_cross_entropy,
)
