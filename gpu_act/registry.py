"""The activation registry: one row per activation.

A row names the activation, its parameters (with defaults and accepted range)
and the scalar forward and derivative from ``gpu_act.formulas``. The public
functions (``gpu_act.elementwise``) and every backend's kernels are generated
from these rows; the README's table holds them too (tests/packaging/test_readme.py compares the two).
"""

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from . import formulas as F
from ._dtypes import COMPUTE


@dataclass(frozen=True)
class Param:
    """A scalar parameter. ``rule`` is one of "finite", "positive", "nonzero";
    a parameter with ``choices`` takes one of those strings instead, and the
    kernels receive its index."""

    name: str
    default: object
    rule: str = "finite"
    choices: tuple = ()

    def accepted(self):
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {
            "finite": "a finite real number",
            "positive": "a finite real number > 0",
            "nonzero": "a finite real number != 0",
        }[self.rule]

    def convert(self, fname, value, ctype=None):
        """The kernel value of ``value``, or ValueError/TypeError saying what is
        accepted; with ``ctype`` (the compute dtype), the value must also be one
        that dtype holds: within its range, and for "positive"/"nonzero" not
        below its smallest normal number (which would round to 0, or to a
        subnormal that GPUs flush to 0)."""
        if self.choices:
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{fname}: {self.name}={value!r} is not accepted; expected {self.accepted()}")
            return float(self.choices.index(value))
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise TypeError(f"{fname}: {self.name} must be {self.accepted()}, got {type(value).__name__}")
        v = float(value)
        ok = math.isfinite(v) and (
            self.rule == "finite" or (self.rule == "positive" and v > 0) or (self.rule == "nonzero" and v != 0)
        )
        if not ok:
            raise ValueError(f"{fname}: {self.name}={value!r} is not accepted; expected {self.accepted()}")
        if ctype is not None:
            info = np.finfo(ctype)
            big, tiny = float(info.max), float(info.tiny)
            if abs(v) > big or (self.rule != "finite" and abs(v) < tiny):
                within = f"|{self.name}| <= {big:.4g}" + (f" and >= {tiny:.4g}" if self.rule != "finite" else "")
                raise ValueError(
                    f"{fname}: {self.name}={value!r} is not accepted for this input, which is computed in "
                    f"{np.dtype(ctype).name}; expected {self.accepted()} with {within}"
                )
        return v


@dataclass(frozen=True)
class Activation:
    name: str
    forward: object  # scalar f(x, *params)
    derivative: object  # scalar df/dx(x, *params)
    formula: str  # for the README
    derivative_text: str
    params: tuple = ()
    # (param_a, param_b): require a <= b
    ordered: tuple = ()
    # for choice parameters: choice value -> (forward, derivative) used instead
    variants: dict = field(default_factory=dict)

    @functools.cached_property
    def _defaults(self):
        return tuple(p.convert(self.name, p.default) for p in self.params)

    def bind(self, fname, args, kwargs, dtype):
        """Positional/keyword parameters -> tuple of floats in declaration order,
        each one the compute dtype of ``dtype`` (the input's) holds."""
        if not args and not kwargs:  # the common call: the defaults, converted once (every dtype holds them)
            return self._defaults
        if len(args) > len(self.params):
            raise TypeError(f"{fname}() takes at most {len(self.params)} parameter(s) after x, got {len(args)}")
        values = {}
        for p, a in zip(self.params, args):
            values[p.name] = a
        for k, v in kwargs.items():
            if k not in {p.name for p in self.params}:
                raise TypeError(f"{fname}() got an unexpected keyword argument {k!r}")
            if k in values:
                raise TypeError(f"{fname}() got multiple values for argument {k!r}")
            values[k] = v
        ctype = COMPUTE[np.dtype(dtype)]
        bound = tuple(p.convert(fname, values.get(p.name, p.default), ctype) for p in self.params)
        if self.ordered:
            a, b = self.ordered
            va, vb = (bound[[p.name for p in self.params].index(n)] for n in (a, b))
            if va > vb:
                raise ValueError(f"{fname}: {a}={va!r} > {b}={vb!r}; expected {a} <= {b}")
        return bound

    def kernels(self, bound):
        """(forward, derivative, kernel params): a choice parameter selects a variant
        and is not passed to the kernel."""
        for i, p in enumerate(self.params):
            if p.choices:
                fwd, der = self.variants[p.choices[int(bound[i])]]
                return fwd, der, bound[:i] + bound[i + 1 :]
        return self.forward, self.derivative, bound


def _row(name, formula, derivative_text, params=(), **kw):
    return Activation(
        name,
        getattr(F, name + "_fwd"),
        getattr(F, name + "_der"),
        formula,
        derivative_text,
        tuple(params),
        **kw,
    )


ACTIVATIONS = {
    a.name: a
    for a in [
        _row("sigmoid", "1/(1+e^-x)", "s(1-s)"),
        _row("tanh", "tanh x", "1 - tanh^2 x"),
        _row("relu", "max(x, 0)", "1 if x > 0 else 0"),
        _row("relu6", "min(max(x, 0), 6)", "1 if 0 < x < 6 else 0"),
        _row(
            "leaky_relu",
            "x if x > 0 else negative_slope*x",
            "1 if x > 0 else negative_slope",
            [Param("negative_slope", 0.01)],
        ),
        _row("elu", "x if x > 0 else alpha(e^x - 1)", "1 if x > 0 else alpha e^x", [Param("alpha", 1.0)]),
        _row("selu", "scale*elu(x, alpha), alpha=1.67326, scale=1.05070", "scale*(1 if x > 0 else alpha e^x)"),
        _row(
            "celu",
            "x if x > 0 else alpha(e^(x/alpha) - 1)",
            "1 if x > 0 else e^(x/alpha)",
            [Param("alpha", 1.0, "nonzero")],
        ),
        Activation(
            "gelu",
            F.gelu_fwd,
            F.gelu_der,
            "x Phi(x); tanh: x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))",
            "Phi(x) + x phi(x); tanh: derivative of the approximation",
            (Param("approximate", "none", choices=("none", "tanh")),),
            variants={"none": (F.gelu_fwd, F.gelu_der), "tanh": (F.gelu_tanh_fwd, F.gelu_tanh_der)},
        ),
        _row("silu", "x sigmoid(x)", "s + x s(1-s)"),
        _row("swish", "x sigmoid(beta x)", "s + beta x s(1-s), s = sigmoid(beta x)", [Param("beta", 1.0)]),
        _row("mish", "x tanh(softplus x)", "tanh(sp) + x sigmoid(x) sech^2(sp)"),
        _row(
            "softplus",
            "log(1+e^(beta x))/beta; x where beta x > threshold",
            "sigmoid(beta x); 1 where beta x > threshold",
            [Param("beta", 1.0, "positive"), Param("threshold", 20.0)],
        ),
        _row("hardsigmoid", "relu6(x+3)/6", "1/6 if -3 < x < 3 else 0"),
        _row("hardswish", "x relu6(x+3)/6", "0 if x <= -3; x/3 + 1/2 if x < 3; 1"),
        _row(
            "hardtanh",
            "min(max(x, min_val), max_val)",
            "1 if min_val < x < max_val else 0",
            [Param("min_val", -1.0), Param("max_val", 1.0)],
            ordered=("min_val", "max_val"),
        ),
        _row("softsign", "x/(1+abs(x))", "1/(1+abs(x))^2"),
        _row("logsigmoid", "-softplus(-x)", "sigmoid(-x)"),
        Activation(
            "rrelu",
            F.rrelu_eval_fwd,
            F.rrelu_eval_der,
            "x if x > 0 else a x; a = (lower+upper)/2, training: a ~ U(lower, upper) per element",
            "1 if x > 0 else a",
            (Param("lower", 1.0 / 8.0), Param("upper", 1.0 / 3.0)),
            ordered=("lower", "upper"),
        ),
        Activation(
            "prelu",
            F.leaky_relu_fwd,
            F.leaky_relu_der,
            "x if x > 0 else w_c x (w per channel, axis 1)",
            "1 if x > 0 else w_c; dw_c = sum of x where x <= 0",
            (),
        ),
    ]
}

# The activations whose public functions are plain NAME(x, *params) / NAME_backward.
PLAIN = tuple(n for n in ACTIVATIONS if n not in ("rrelu", "prelu"))
