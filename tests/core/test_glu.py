"""Gated linear units (glu with any registry gate, swiglu, geglu, reglu) and
their backward passes against the float64 reference and PyTorch.

The gate's kernels are generated from the registry for every activation by
the same code, so a handful of gates (with and without parameters, a choice
parameter) stand for all of them; every dtype and layout runs on one gate."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, sample, sample_away_from, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

GATES = [
    ("sigmoid", {}),
    ("silu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("relu", {}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
]


def _glu(x, backend, **kw):
    return to_numpy(ga.glu(to_backend(x, backend), backend=backend, **kw))


def _bwd(g, x, backend, **kw):
    return to_numpy(ga.glu_backward(to_backend(g, backend), to_backend(x, backend), backend=backend, **kw))


def _half(shape, axis):
    s = list(shape)
    s[axis] //= 2
    return tuple(s)


@pytest.mark.parametrize("gate,params", GATES, ids=[g for g, _ in GATES])
def test_every_kind_of_gate(backend, gate, params):
    x = sample((4, 18), np.float32, seed=1)
    x[0, :3], x[1, 9:12] = [np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf]  # in b's half, then in a's
    y = _glu(x, backend, activation=gate, **params)
    assert_close(y, ref.glu(x, activation=gate, **params), np.float32, msg=gate)
    g = sample((4, 9), np.float32, seed=2, kinks=False)
    d = _bwd(g, x, backend, activation=gate, **params)
    assert_close(d, ref.glu_backward(g, x, activation=gate, **params), np.float32, msg=gate)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_axes(backend, dtype):
    # the last axis (the halves strided views of contiguous rows), the first, the middle of three;
    # a transposed x
    cases = [((3, 10), -1), ((10, 3), 0), ((2, 8, 3), 1), ((5, 6), -1)]
    for k, (shape, axis) in enumerate(cases):
        x = sample(shape, dtype, seed=3 + k)
        if k == 3:
            x = np.ascontiguousarray(x.T).T
        y = _glu(x, backend, axis=axis)
        assert y.shape == _half(shape, axis)
        assert_dtype(y, dtype)
        assert_close(y, ref.glu(x, axis), dtype, msg=f"{shape} axis={axis}")
        g = sample(y.shape, dtype, seed=7 + k, kinks=False)
        d = _bwd(g, x, backend, axis=axis)
        assert d.shape == shape
        assert_dtype(d, dtype)
        assert_close(d, ref.glu_backward(g, x, axis), dtype, msg=f"bwd {shape} axis={axis}")


def test_bfloat16(backend):
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    x = sample((4, 12), np.float64, seed=11).astype(bf16)
    g = sample((4, 6), np.float64, seed=12).astype(bf16)
    xf, gf = x.astype(np.float64), g.astype(np.float64)
    y = _glu(x, backend, activation="silu")
    assert y.dtype == bf16
    assert_close(y, ref.glu(xf, activation="silu"), bf16)
    d = _bwd(g, x, backend, activation="silu")
    assert d.dtype == bf16
    assert_close(d, ref.glu_backward(gf, xf, activation="silu"), bf16)


@pytest.mark.parametrize("gate,params", [("sigmoid", {}), ("softplus", {"beta": 0.5, "threshold": 30.0}),
                                         ("gelu", {"approximate": "none"})])
def test_backward_finite_differences(backend, gate, params):
    x = sample_away_from((3, 4, 6), seed=13, kinks=[])
    g = sample((3, 4, 3), np.float64, seed=14, kinks=False)
    d = _bwd(g, x, backend, activation=gate, **params)
    fd = grad_fd(lambda v: np.sum(g * _glu(v, backend, activation=gate, **params)), x)
    assert_close(d, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_shortcuts(backend):
    x = sample((3, 8), np.float64, seed=15)
    g = sample((3, 4), np.float64, seed=16)
    for name, gate, params in (("swiglu", "silu", {}), ("geglu", "gelu", {}), ("geglu", "gelu", {"approximate": "tanh"}),
                               ("reglu", "relu", {})):
        f, b = getattr(ga, name), getattr(ga, name + "_backward")
        assert_close(to_numpy(f(to_backend(x, backend), backend=backend, **params)),
                     ref.glu(x, activation=gate, **params), np.float64, msg=name)
        assert_close(to_numpy(b(to_backend(g, backend), to_backend(x, backend), backend=backend, **params)),
                     ref.glu_backward(g, x, activation=gate, **params), np.float64, msg=name)
    assert list(inspect.signature(ga.geglu).parameters) == ["x", "axis", "approximate", "out", "backend", "stream"]
    with pytest.raises(TypeError, match="gpu_act.swiglu\\(\\) got an unexpected keyword argument 'beta'"):
        ga.swiglu(x, beta=2.0)


def test_in_place_out_and_empty(backend):
    x = sample((4, 10), np.float64, seed=17)
    g = sample((4, 5), np.float64, seed=18)
    expected = ref.glu(x)
    # into x's own first half (b): read and written by the same worker element by element
    xc = x.copy()
    assert ga.glu(xc, out=xc[:, :5]) is not None
    assert_close(xc[:, :5], expected, np.float64)
    # into the second half (a), which is read at the same positions
    xc = x.copy()
    ga.glu(xc, out=xc[:, 5:])
    assert_close(xc[:, 5:], expected, np.float64)
    # the gradient in place, and into an out that overlaps grad_output
    xc = x.copy()
    assert ga.glu_backward(g, xc, out=xc) is xc
    assert_close(xc, ref.glu_backward(g, x), np.float64)
    buf = np.zeros((4, 15))
    buf[:, 10:] = g
    ga.glu_backward(buf[:, 10:], x, out=buf[:, 5:15])
    assert_close(buf[:, 5:15], ref.glu_backward(g, x), np.float64)
    # a strided out
    out = np.zeros((4, 20))[:, ::2]
    ga.glu_backward(g, x, out=out)
    assert_close(out, ref.glu_backward(g, x), np.float64)
    for shape in ((0, 4), (3, 0)):
        z = np.zeros(shape, np.float32)
        assert _glu(z, backend).shape == _half(shape, -1)
        assert _bwd(np.zeros(_half(shape, -1), np.float32), z, backend).shape == shape


def test_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = sample((6, 8), np.float32, seed=19)
    for dim in (0, 1):
        xt = torch.tensor(x, requires_grad=True)
        y = F.glu(xt, dim)
        g = torch.linspace(-1.0, 2.0, y.numel()).reshape(y.shape)
        y.backward(g)
        assert_close(ga.glu(x, dim), y.detach().double().numpy(), np.float32)
        assert_close(ga.glu_backward(g.numpy(), x, dim), xt.grad.double().numpy(), np.float32)
    # SwiGLU as written with torch: the first half times silu of the second
    xt = torch.tensor(x, requires_grad=True)
    v, z = xt.chunk(2, dim=-1)
    y = v * F.silu(z)
    y.backward(torch.ones_like(y))
    assert_close(ga.swiglu(x), y.detach().double().numpy(), np.float32)
    assert_close(ga.swiglu_backward(np.ones((6, 4), np.float32), x), xt.grad.double().numpy(), np.float32)
