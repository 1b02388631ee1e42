"""Elementwise activations and their derivatives against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import (
    OP_DEFAULTS,
    OP_VARIANTS,
    SIZES_FULL,
    SIZES_SMALL,
    assert_dtype,
    central_diff,
    op_id,
    op_kinks,
    sample,
    sample_away_from,
    to_backend,
    to_numpy,
)
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close


def _call(name, x, backend, **params):
    return to_numpy(getattr(ga, name)(to_backend(x, backend), **params, backend=backend))


def _call_bwd(name, g, x, backend, **params):
    fn = getattr(ga, name + "_backward")
    return to_numpy(fn(to_backend(g, backend), to_backend(x, backend), **params,
                       backend=backend))


def _size_cases():
    cases = []
    for name, params in OP_DEFAULTS:
        for dtype in DTYPES:
            sizes = SIZES_FULL if dtype == np.float32 else SIZES_SMALL
            for n in sizes:
                cases.append(pytest.param(
                    name, params, dtype, n,
                    id=f"{op_id(name, params)}-{np.dtype(dtype).name}-n{n}"))
    return cases


SIZE_CASES = _size_cases()


@pytest.mark.parametrize("name,params,dtype,n", SIZE_CASES)
def test_forward_sizes(backend, name, params, dtype, n):
    x = sample((n,), dtype, seed=n)
    r = _call(name, x, backend, **params)
    assert r.shape == x.shape
    assert_dtype(r, dtype)
    assert_close(r, ref.forward(name, x, **params), dtype, msg=op_id(name, params))


@pytest.mark.parametrize("name,params,dtype,n", SIZE_CASES)
def test_backward_sizes(backend, name, params, dtype, n):
    x = sample((n,), dtype, seed=n)
    g = sample((n,), dtype, seed=n + 1, scale=1.0, kinks=False)
    r = _call_bwd(name, g, x, backend, **params)
    assert r.shape == x.shape
    assert_dtype(r, dtype)
    assert_close(r, ref.backward(name, g, x, **params), dtype, msg=op_id(name, params))


VARIANT_IDS = [op_id(n, p) for n, p in OP_VARIANTS]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=VARIANT_IDS)
def test_forward_backward_nd(backend, name, params, dtype):
    """0-d, 2-D, 3-D and 4-D inputs with every op variant (incl. non-default params)."""
    for shape in [(), (7, 9), (3, 4, 5), (2, 3, 4, 5)]:
        x = sample(shape, dtype, seed=len(shape))
        g = sample(shape, dtype, seed=len(shape) + 10, scale=1.0, kinks=False)
        r = _call(name, x, backend, **params)
        assert r.shape == shape
        assert_dtype(r, dtype)
        assert_close(r, ref.forward(name, x, **params), dtype, msg=f"fwd {shape}")
        rb = _call_bwd(name, g, x, backend, **params)
        assert rb.shape == shape
        assert_dtype(rb, dtype)
        assert_close(rb, ref.backward(name, g, x, **params), dtype, msg=f"bwd {shape}")


# the parallel chunking of large arrays is one template for every formula: a
# few formulas (none, one and several parameters; exp, erf, none) cover it
LARGE = [(n, p) for n, p in OP_DEFAULTS if n in ("relu", "leaky_relu", "gelu", "softplus")]


@pytest.mark.parametrize("name,params", LARGE, ids=[op_id(n, p) for n, p in LARGE])
def test_large_2d_float32(backend, name, params):
    x = sample((1823, 781), np.float32, seed=7)
    g = sample((1823, 781), np.float32, seed=8, scale=1.0, kinks=False)
    r = _call(name, x, backend, **params)
    assert_dtype(r, np.float32)
    assert_close(r, ref.forward(name, x, **params), np.float32)
    rb = _call_bwd(name, g, x, backend, **params)
    assert_dtype(rb, np.float32)
    assert_close(rb, ref.backward(name, g, x, **params), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=VARIANT_IDS)
def test_kinks_against_reference(backend, name, params, dtype):
    """Values exactly at (and next to) every kink, forward and derivative (g = 1)."""
    pts = [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 0.5, -0.5, 2.0, -2.0, 0.25, 5.0]
    pts += [float(k) for k in op_kinks(name, params)]
    base = np.array(sorted(set(pts)), dtype=np.float64)
    eps = float(np.finfo(dtype).eps) * 8
    x = np.concatenate([base, base * (1 + eps) + eps, base * (1 - eps) - eps]).astype(dtype)
    g = np.ones_like(x)
    assert_close(_call(name, x, backend, **params), ref.forward(name, x, **params), dtype)
    assert_close(_call_bwd(name, g, x, backend, **params),
                 ref.derivative(name, x, **params), dtype)


SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

# (op, params, x, derivative) exactly as PyTorch defines it at the kinks (issue text)
KINK_DERIVATIVES = [
    ("relu", {}, 0.0, 0.0),
    ("relu6", {}, 0.0, 0.0),
    ("relu6", {}, 6.0, 0.0),
    ("relu6", {}, 3.0, 1.0),
    ("leaky_relu", {}, 0.0, 0.01),
    ("leaky_relu", {"negative_slope": 0.2}, 0.0, 0.2),
    ("elu", {}, 0.0, 1.0),
    ("elu", {"alpha": 0.5}, 0.0, 0.5),
    ("selu", {}, 0.0, SELU_SCALE * SELU_ALPHA),
    ("celu", {}, 0.0, 1.0),
    ("celu", {"alpha": 2.0}, 0.0, 1.0),
    ("hardsigmoid", {}, 3.0, 0.0),
    ("hardsigmoid", {}, -3.0, 0.0),
    ("hardsigmoid", {}, 0.0, 1.0 / 6.0),
    ("hardsigmoid", {}, 2.5, 1.0 / 6.0),
    ("hardswish", {}, -3.0, 0.0),  # PyTorch >= 2.7
    ("hardswish", {}, 3.0, 1.0),  # PyTorch >= 2.7
    ("hardswish", {}, -4.0, 0.0),
    ("hardswish", {}, 4.0, 1.0),
    ("hardswish", {}, 0.0, 0.5),
    ("hardtanh", {}, -1.0, 0.0),
    ("hardtanh", {}, 1.0, 0.0),
    ("hardtanh", {}, 0.5, 1.0),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, -2.0, 0.0),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, 0.5, 0.0),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, 0.0, 1.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name,params,x0,expected", KINK_DERIVATIVES,
    ids=[f"{op_id(n, p)}@{x0}" for n, p, x0, _ in KINK_DERIVATIVES])
def test_kink_derivative_values(backend, name, params, x0, expected, dtype):
    x = np.array([x0, x0], dtype=dtype)
    g = np.array([1.0, -2.0], dtype=dtype)
    r = _call_bwd(name, g, x, backend, **params)
    assert_close(r, np.array([expected, -2.0 * expected]), dtype)
    # the reference encodes the same convention
    assert_close(ref.derivative(name, np.array([x0]), **params), np.array([expected]),
                 np.float64)


# Forward values at a few points computed by hand / from the definitions
EXACT_FORWARD = [
    ("relu", {}, -2.0, 0.0),
    ("relu6", {}, 7.0, 6.0),
    ("hardsigmoid", {}, 0.0, 0.5),
    ("hardsigmoid", {}, 1.5, 0.75),
    ("hardswish", {}, 1.5, 1.125),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, 3.0, 0.5),
    ("softsign", {}, 3.0, 0.75),
    ("leaky_relu", {"negative_slope": 0.2}, -5.0, -1.0),
    ("selu", {}, 2.0, 2.0 * SELU_SCALE),
    ("gelu", {}, 0.0, 0.0),
    ("sigmoid", {}, 0.0, 0.5),
    ("softplus", {}, 30.0, 30.0),            # beta*x > threshold: identity
    ("softplus", {"beta": 2.0, "threshold": 5.0}, 3.0, 3.0),
    ("logsigmoid", {}, 0.0, -np.log(2.0)),
    ("silu", {}, 0.0, 0.0),
    ("mish", {}, 0.0, 0.0),
]


@pytest.mark.parametrize(
    "name,params,x0,expected", EXACT_FORWARD,
    ids=[f"{op_id(n, p)}@{x0}" for n, p, x0, _ in EXACT_FORWARD])
def test_exact_forward_values(backend, name, params, x0, expected):
    x = np.array([x0], dtype=np.float64)
    assert_close(_call(name, x, backend, **params), np.array([expected]), np.float64)
    assert_close(ref.forward(name, x, **params), np.array([expected]), np.float64)


def test_gelu_tanh_formula(backend):
    """gelu(approximate='tanh') is 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))."""
    x = np.linspace(-6, 6, 97)
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    assert_close(_call("gelu", x, backend, approximate="tanh"), expected, np.float64)
    # and is not the erf form
    exact = _call("gelu", x, backend)
    assert np.max(np.abs(exact - expected)) > 1e-5


def test_celu_definition(backend):
    x = np.linspace(-5, 5, 41)
    for alpha in (0.5, 1.0, 3.0):
        with np.errstate(all="ignore"):
            expected = np.maximum(0, x) + np.minimum(0, alpha * (np.exp(x / alpha) - 1))
        assert_close(_call("celu", x, backend, alpha=alpha), expected, np.float64)


def test_softplus_definition(backend):
    x = np.linspace(-8, 8, 65)
    for beta, thr in ((1.0, 20.0), (2.0, 5.0), (0.5, 1.0)):
        expected = np.where(beta * x > thr, x, np.log1p(np.exp(beta * x)) / beta)
        assert_close(_call("softplus", x, backend, beta=beta, threshold=thr), expected,
                     np.float64)


@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=VARIANT_IDS)
def test_derivative_finite_differences(backend, name, params):
    """float64 backward(g=1) == central differences of the forward (away from kinks)."""
    x = sample_away_from((257,), seed=3, kinks=op_kinks(name, params))
    g = np.ones_like(x)
    d = _call_bwd(name, g, x, backend, **params)

    def f(v):
        return _call(name, v, backend, **params)

    fd = central_diff(f, x)
    assert_close(d, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL, msg="package vs FD")
    # the reference derivative agrees with FD of the reference forward
    fd_ref = central_diff(lambda v: ref.forward(name, v, **params), x)
    assert_close(ref.derivative(name, x, **params), fd_ref, np.float64,
                 rtol=FD_RTOL, atol=FD_ATOL, msg="reference vs FD")


def test_default_backend_is_cpu_for_numpy():
    x = sample((100,), np.float32, seed=1)
    a = ga.gelu(x, backend="cpu")
    b = ga.gelu(x)  # backend=None: NumPy input runs on the CPU
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    np.testing.assert_array_equal(a, b)
    assert_close(b, ref.forward("gelu", x), np.float32)


def test_positional_parameters():
    x = sample((50,), np.float64, seed=2)
    np.testing.assert_array_equal(ga.leaky_relu(x, 0.2), ga.leaky_relu(x, negative_slope=0.2))
    np.testing.assert_array_equal(ga.elu(x, 0.5), ga.elu(x, alpha=0.5))
    np.testing.assert_array_equal(ga.hardtanh(x, -2.0, 0.5),
                                  ga.hardtanh(x, min_val=-2.0, max_val=0.5))
    np.testing.assert_array_equal(ga.softplus(x, 2.0, 5.0),
                                  ga.softplus(x, beta=2.0, threshold=5.0))
    np.testing.assert_array_equal(ga.gelu(x, "tanh"), ga.gelu(x, approximate="tanh"))
    g = np.ones_like(x)
    np.testing.assert_array_equal(ga.leaky_relu_backward(g, x, 0.2),
                                  ga.leaky_relu_backward(g, x, negative_slope=0.2))


def test_swish_beta_one_is_silu():
    x = sample((200,), np.float64, seed=4)
    np.testing.assert_allclose(ga.swish(x), ga.silu(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(ga.swish(x, beta=1.0), ga.silu(x), rtol=1e-15, atol=0)


def test_float16_computed_in_float32():
    """float16 results are float32 results rounded to half (not a half-precision chain)."""
    x = sample((4097,), np.float16, seed=5)
    for name, params in OP_DEFAULTS:
        r16 = getattr(ga, name)(x, **params)
        r32 = getattr(ga, name)(x.astype(np.float32), **params).astype(np.float16)
        # allow one half-ulp of double rounding
        diff = np.abs(r16.astype(np.float64) - r32.astype(np.float64))
        ulp = np.spacing(np.abs(r32)).astype(np.float64)
        with np.errstate(all="ignore"):
            ok = (r16 == r32) | (np.isnan(r16) & np.isnan(r32)) | (diff <= ulp)
        assert np.all(ok), (name, x[~ok][:5], r16[~ok][:5], r32[~ok][:5])


@pytest.mark.gpu
def test_gpu_results_stay_on_device(gpu_backend):
    """A device input gives a device result (no silent host round trip) that is correct."""
    x = sample((1025,), np.float32, seed=6)
    for name, params in OP_DEFAULTS:
        d = to_backend(x, gpu_backend)
        r = getattr(ga, name)(d, **params)  # backend inferred from the array kind
        assert not isinstance(r, np.ndarray), name
        assert_close(to_numpy(r), ref.forward(name, x, **params), np.float32, msg=name)
        rb = getattr(ga, name + "_backward")(d, d, **params, backend=gpu_backend)
        assert not isinstance(rb, np.ndarray), name
        assert_close(to_numpy(rb), ref.backward(name, x, x, **params), np.float32, msg=name)
