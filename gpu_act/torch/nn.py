"""torch.nn modules over gpu_act.torch's operators: drop-in replacements for
torch.nn's (the same class names, constructor arguments, attributes and
buffers), and ``swap_modules``, which puts them into an existing model.

Activations taking ``inplace=True`` accept it and compute out of place (a
custom operator never writes its input). The losses take torch's class
dimension (1, or 0 for an unbatched input) unless given ``dim``.
"""

import inspect

import torch

from gpu_act.registry import ACTIVATIONS, PLAIN

from ._ops import FUNCTIONS as F

# registry name -> class name: torch.nn's where it has the activation
_CLASS_NAMES = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "selu": "SELU",
    "celu": "CELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "swish": "Swish",
    "mish": "Mish",
    "softplus": "Softplus",
    "hardsigmoid": "Hardsigmoid",
    "hardswish": "Hardswish",
    "hardtanh": "Hardtanh",
    "softsign": "Softsign",
    "logsigmoid": "LogSigmoid",
}


class _Activation(torch.nn.Module):
    """A registry activation: its parameters are attributes of the registry's
    (and torch.nn's) names, read at each call; the constructor (one per class)
    takes them and ``inplace``."""

    _act = None  # the registry row
    _fn = None  # the gpu_act.torch function

    def forward(self, input):
        return self._fn(input, *[getattr(self, p.name) for p in self._act.params])

    def extra_repr(self):
        shown = [f"{p.name}={getattr(self, p.name)!r}" for p in self._act.params]
        return ", ".join(shown + (["inplace=True"] if self.inplace else []))

    @classmethod
    def from_torch(cls, module):
        return cls(**{p.name: getattr(module, p.name) for p in cls._act.params},
                   inplace=getattr(module, "inplace", False))


def _activation_class(act, class_name):
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(p.name, kind, default=p.default) for p in act.params]
    signature = inspect.Signature([*params, inspect.Parameter("inplace", kind, default=False)])

    def __init__(self, *args, **kwargs):
        torch.nn.Module.__init__(self)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            setattr(self, name, value)

    __init__.__signature__ = signature.replace(
        parameters=[inspect.Parameter("self", kind), *signature.parameters.values()]
    )
    return type(class_name, (_Activation,), {
        "__init__": __init__,
        "_act": act,
        "_fn": staticmethod(F[act.name]),
        "__module__": __name__,
        "__doc__": f"gpu_act's {act.name}: {act.formula}. Parameters: "
        + "".join(f"{p.name}={p.default!r}, " for p in act.params)
        + "inplace (accepted, computed out of place).",
    })


_ACTIVATIONS = {name: _activation_class(ACTIVATIONS[name], _CLASS_NAMES[name]) for name in PLAIN}
globals().update({cls.__name__: cls for cls in _ACTIVATIONS.values()})


class _Softmax(torch.nn.Module):
    _fn = None

    def __init__(self, dim=None, *, temperature=1.0):
        super().__init__()
        self.dim = dim
        self.temperature = temperature

    def forward(self, input):
        # dim=None: torch.nn's legacy choice (0 for 0-, 1- and 3-d inputs, else 1)
        dim = self.dim if self.dim is not None else (0 if input.dim() in (0, 1, 3) else 1)
        return self._fn(input, dim, temperature=self.temperature)

    def extra_repr(self):
        return f"dim={self.dim}" + (f", temperature={self.temperature}" if self.temperature != 1.0 else "")

    @classmethod
    def from_torch(cls, module):
        return cls(module.dim)


class Softmax(_Softmax):
    """gpu_act's softmax along ``dim``, of x / temperature."""

    _fn = staticmethod(F["softmax"])


class LogSoftmax(_Softmax):
    """gpu_act's log-softmax along ``dim``, of x / temperature."""

    _fn = staticmethod(F["log_softmax"])


class PReLU(torch.nn.Module):
    """x if x > 0 else weight[c] x, with ``num_parameters`` (1 or the channels,
    axis 1) learnable weights starting at ``init``."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = torch.nn.Parameter(torch.full((num_parameters,), float(init), device=device, dtype=dtype))

    def reset_parameters(self):
        torch.nn.init.constant_(self.weight, self.init)

    def forward(self, input):
        return F["prelu"](input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"

    @classmethod
    def from_torch(cls, module):
        new = cls(module.num_parameters, module.init, device="meta")
        new.weight = module.weight  # the same Parameter: an optimizer holding it keeps working
        return new


class RReLU(torch.nn.Module):
    """x if x > 0 else a x: a ~ U(lower, upper) per element in training (new
    slopes at each call, from torch's default generator), (lower+upper)/2 in eval."""

    def __init__(self, lower=1.0 / 8.0, upper=1.0 / 3.0, inplace=False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input):
        return F["rrelu"](input, self.lower, self.upper, training=self.training)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")

    @classmethod
    def from_torch(cls, module):
        return cls(module.lower, module.upper, module.inplace)


class Maxout(torch.nn.Module):
    """Max over consecutive groups of ``pool_size`` along ``dim``."""

    def __init__(self, pool_size, dim=-1):
        super().__init__()
        self.pool_size, self.dim = pool_size, dim

    def forward(self, input):
        return F["maxout"](input, self.pool_size, self.dim)

    def extra_repr(self):
        return f"pool_size={self.pool_size}, dim={self.dim}"


def _class_dim(input, dim):
    # torch.nn's class dimension: 1 for batched input, 0 for an unbatched one
    return dim if dim is not None else (1 if input.dim() >= 2 else 0)


class CrossEntropyLoss(torch.nn.Module):
    """gpu_act's cross-entropy as torch.nn.CrossEntropyLoss (class indices or
    probabilities; the class dim is 1, or 0 for an unbatched input, unless
    ``dim`` is given), plus gpu_act's ``z_loss`` and ``softcap``."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0,
                 softcap=None, dim=None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing
        self.z_loss, self.softcap, self.dim = z_loss, softcap, dim

    def forward(self, input, target):
        return F["cross_entropy"](
            input, target, _class_dim(input, self.dim), weight=self.weight, reduction=self.reduction,
            ignore_index=self.ignore_index, label_smoothing=self.label_smoothing, z_loss=self.z_loss,
            softcap=self.softcap,
        )

    @classmethod
    def from_torch(cls, module):
        return cls(module.weight, ignore_index=module.ignore_index, reduction=module.reduction,
                   label_smoothing=module.label_smoothing)


class NLLLoss(torch.nn.Module):
    """gpu_act's negative log-likelihood as torch.nn.NLLLoss (the class dim as
    CrossEntropyLoss's)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", dim=None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction, self.dim = ignore_index, reduction, dim

    def forward(self, input, target):
        return F["nll_loss"](input, target, _class_dim(input, self.dim), weight=self.weight,
                             reduction=self.reduction, ignore_index=self.ignore_index)

    @classmethod
    def from_torch(cls, module):
        return cls(module.weight, ignore_index=module.ignore_index, reduction=module.reduction)


class BCEWithLogitsLoss(torch.nn.Module):
    """gpu_act's binary cross-entropy on logits as torch.nn.BCEWithLogitsLoss."""

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = reduction

    def forward(self, input, target):
        return F["binary_cross_entropy_with_logits"](input, target, weight=self.weight, pos_weight=self.pos_weight,
                                                     reduction=self.reduction)

    @classmethod
    def from_torch(cls, module):
        return cls(module.weight, reduction=module.reduction, pos_weight=module.pos_weight)


class BCELoss(torch.nn.Module):
    """gpu_act's binary cross-entropy on probabilities as torch.nn.BCELoss."""

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction

    def forward(self, input, target):
        return F["binary_cross_entropy"](input, target, weight=self.weight, reduction=self.reduction)

    @classmethod
    def from_torch(cls, module):
        return cls(module.weight, reduction=module.reduction)


SWAPS = {
    getattr(torch.nn, cls.__name__): cls
    for cls in (*_ACTIVATIONS.values(), Softmax, LogSoftmax, PReLU, RReLU, CrossEntropyLoss, NLLLoss,
                BCEWithLogitsLoss, BCELoss)
    if hasattr(torch.nn, cls.__name__)
}
"""The torch.nn class each of these replaces (by exact type: a subclass may
compute something else)."""


def swap_modules(model):
    """Replace, in place, every submodule of ``model`` whose type is a torch.nn
    class of ``SWAPS`` by its gpu_act.torch counterpart, with the same settings,
    training mode, parameters (the same Parameter objects, so an optimizer
    built before keeps updating them) and buffers; return ``model`` (the
    replacement when ``model`` itself is such a module). Hooks registered on a
    replaced module are not carried over."""
    done = {}  # id of a replaced module -> its replacement: a module used twice stays shared

    def swapped(module):
        if id(module) not in done:
            new = SWAPS[type(module)].from_torch(module)
            new.train(module.training)
            done[id(module)] = new
        return done[id(module)]

    if type(model) in SWAPS:
        return swapped(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in SWAPS:
                setattr(parent, name, swapped(child))
    return model


__all__ = ["swap_modules", "SWAPS", "Softmax", "LogSoftmax", "PReLU", "RReLU", "Maxout", "CrossEntropyLoss",
           "NLLLoss", "BCEWithLogitsLoss", "BCELoss", *sorted(cls.__name__ for cls in _ACTIVATIONS.values())]
