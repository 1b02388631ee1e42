"""The registry's activations against PyTorch 2.13 (where installed): values
and derivatives at every kink and boundary, where the README promises PyTorch's
choices (relu'(0) = 0, hardswish'(-3) = 0, ...), and on random points."""

import numpy as np
import pytest

import gpu_act as ga
from helpers import OP_VARIANTS, op_id, op_kinks

torch = pytest.importorskip("torch")
F = torch.nn.functional

# gpu_act name -> (PyTorch function, gpu_act parameter name -> PyTorch's)
TORCH = {
    "sigmoid": (torch.sigmoid, {}),
    "tanh": (torch.tanh, {}),
    "relu": (F.relu, {}),
    "relu6": (F.relu6, {}),
    "leaky_relu": (F.leaky_relu, {}),
    "elu": (F.elu, {}),
    "selu": (F.selu, {}),
    "celu": (F.celu, {}),
    "gelu": (F.gelu, {}),
    "silu": (F.silu, {}),
    "mish": (F.mish, {}),
    "softplus": (F.softplus, {}),
    "hardsigmoid": (F.hardsigmoid, {}),
    "hardswish": (F.hardswish, {}),
    "hardtanh": (F.hardtanh, {}),
    "softsign": (F.softsign, {}),
    "logsigmoid": (F.logsigmoid, {}),
}
CASES = [(n, p) for n, p in OP_VARIANTS if n in TORCH]


@pytest.mark.parametrize("name,params", CASES, ids=[op_id(n, p) for n, p in CASES])
def test_values_and_derivatives_match_pytorch_at_kinks(name, params):
    x = np.concatenate([op_kinks(name, params), np.random.default_rng(0).uniform(-8, 8, 64)])
    fn, _ = TORCH[name]
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(t, **params)
    y.sum().backward()
    # PyTorch keeps some constants in float32 (hardsigmoid's 1/6, celu's 1/alpha): 1e-6 relative
    np.testing.assert_allclose(getattr(ga, name)(x, **params), y.detach().numpy(), rtol=1e-6, atol=1e-12)
    d = getattr(ga, name + "_backward")(np.ones_like(x), x, **params)
    np.testing.assert_allclose(d, t.grad.numpy(), rtol=1e-6, atol=1e-12, err_msg=f"{name}' at {x}")
