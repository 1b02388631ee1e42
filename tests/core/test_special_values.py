"""NaN, +-inf, huge values and dtype limits, placed at odd offsets of large arrays."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import (
    OP_DEFAULTS,
    OP_VARIANTS,
    no_warnings,
    op_id,
    sample,
    to_backend,
    to_numpy,
)
from tolerances import DTYPES, assert_close

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

VARIANT_IDS = [op_id(n, p) for n, p in OP_VARIANTS]


def _specials(dtype):
    fi = np.finfo(dtype)
    vals = [np.nan, np.inf, -np.inf, float(fi.max), -float(fi.max), float(fi.tiny),
            -float(fi.tiny), 0.0, -0.0, 100.0, -100.0, 88.0, -88.0, 710.0, -710.0]
    if dtype == np.float16:
        vals += [65504.0, -65504.0, 11.0, -17.0]
    else:
        vals += [1e30, -1e30, 1e15, -1e15, 1e200 if dtype == np.float64 else 3e38]
    return np.array(vals, dtype=np.float64)


def _embed(dtype, n=4097, seed=0):
    """Random array of n elements with every special value at odd offsets."""
    x = sample((n,), np.float64, seed=seed)
    sp = _specials(dtype)
    with np.errstate(over="ignore"):
        sp = sp.astype(dtype).astype(np.float64)
    pos = 1 + 2 * (np.arange(sp.size) * 97 % (n // 2 - 1))  # odd offsets, spread out
    x[pos] = sp
    x[n - 1] = np.nan  # last element (tail of any vector loop)
    x[n - 2] = -np.inf
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=VARIANT_IDS)
def test_elementwise_special_values(backend, name, params, dtype):
    x = _embed(dtype, seed=len(name))
    g = sample(x.shape, dtype, seed=1, scale=1.0, kinks=False)
    fn = getattr(ga, name)
    bfn = getattr(ga, name + "_backward")
    with no_warnings():
        r = to_numpy(fn(to_backend(x, backend), **params, backend=backend))
        rb = to_numpy(bfn(to_backend(g, backend), to_backend(x, backend), **params,
                          backend=backend))
    assert_close(r, ref.forward(name, x, **params), dtype, msg="forward")
    assert_close(rb, ref.backward(name, g, x, **params), dtype, msg="backward")
    # NaN in, NaN out; every derivative is NaN at NaN x
    assert np.all(np.isnan(r[np.isnan(x)]))
    assert np.all(np.isnan(rb[np.isnan(x)]))


# Limits at -inf and +inf: (forward(-inf), forward(inf), derivative(-inf), derivative(inf))
LIMITS = [
    ("sigmoid", {}, 0.0, 1.0, 0.0, 0.0),
    ("tanh", {}, -1.0, 1.0, 0.0, 0.0),
    ("relu", {}, 0.0, np.inf, 0.0, 1.0),
    ("relu6", {}, 0.0, 6.0, 0.0, 0.0),
    ("leaky_relu", {}, -np.inf, np.inf, 0.01, 1.0),
    ("elu", {}, -1.0, np.inf, 0.0, 1.0),
    ("elu", {"alpha": 0.5}, -0.5, np.inf, 0.0, 1.0),
    ("selu", {}, -SELU_SCALE * SELU_ALPHA, np.inf, 0.0, SELU_SCALE),
    ("celu", {}, -1.0, np.inf, 0.0, 1.0),
    ("celu", {"alpha": 2.0}, -2.0, np.inf, 0.0, 1.0),
    ("gelu", {}, 0.0, np.inf, 0.0, 1.0),
    ("gelu", {"approximate": "tanh"}, 0.0, np.inf, 0.0, 1.0),
    ("silu", {}, 0.0, np.inf, 0.0, 1.0),
    ("swish", {}, 0.0, np.inf, 0.0, 1.0),
    ("swish", {"beta": 1.7}, 0.0, np.inf, 0.0, 1.0),
    ("mish", {}, 0.0, np.inf, 0.0, 1.0),
    ("softplus", {}, 0.0, np.inf, 0.0, 1.0),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, 0.0, np.inf, 0.0, 1.0),
    ("hardsigmoid", {}, 0.0, 1.0, 0.0, 0.0),
    ("hardswish", {}, 0.0, np.inf, 0.0, 1.0),
    ("hardtanh", {}, -1.0, 1.0, 0.0, 0.0),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, -2.0, 0.5, 0.0, 0.0),
    ("softsign", {}, -1.0, 1.0, 0.0, 0.0),
    ("logsigmoid", {}, -np.inf, 0.0, 1.0, 0.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params,f_lo,f_hi,d_lo,d_hi", LIMITS,
                         ids=[op_id(r[0], r[1]) for r in LIMITS])
def test_limits_at_infinity(backend, name, params, f_lo, f_hi, d_lo, d_hi, dtype):
    x = np.array([-np.inf, np.inf], dtype=dtype)
    expected_f = np.array([f_lo, f_hi])
    expected_d = np.array([d_lo, d_hi])
    with no_warnings():
        r = to_numpy(getattr(ga, name)(to_backend(x, backend), **params, backend=backend))
        d = to_numpy(getattr(ga, name + "_backward")(
            to_backend(np.ones_like(x), backend), to_backend(x, backend), **params,
            backend=backend))
    assert_close(r, expected_f, dtype, msg="forward limit")
    assert_close(d, expected_d, dtype, msg="derivative limit")
    # the reference agrees with the hand-written limits
    assert_close(ref.forward(name, x, **params), expected_f, np.float64)
    assert_close(ref.derivative(name, x, **params), expected_d, np.float64)


@pytest.mark.parametrize("name,params", OP_DEFAULTS, ids=[op_id(*p) for p in OP_DEFAULTS])
def test_huge_finite_inputs_float32(backend, name, params):
    """+-1e30 and the float32 maximum: finite limits, no inf*0 NaNs, no overflow warnings."""
    fmax = float(np.finfo(np.float32).max)
    x = np.array([1e30, -1e30, fmax, -fmax, 1e15, -1e15, 1e5, -1e5], dtype=np.float32)
    with no_warnings():
        r = to_numpy(getattr(ga, name)(to_backend(x, backend), **params, backend=backend))
        d = to_numpy(getattr(ga, name + "_backward")(
            to_backend(np.ones_like(x), backend), to_backend(x, backend), **params,
            backend=backend))
    assert not np.any(np.isnan(r)) and not np.any(np.isnan(d)), (r, d)
    assert_close(r, ref.forward(name, x, **params), np.float32)
    assert_close(d, ref.derivative(name, x, **params), np.float32)


# ------------------------------------------------------------------ softmax family


def _row_specials_cases(dtype):
    big = 100.0 if dtype == np.float16 else 1e30
    fmax = float(np.finfo(dtype).max)
    return [
        [np.nan, 1.0, 2.0],
        [1.0, np.inf, 2.0],
        [np.inf, np.inf, 0.0],
        [-np.inf, -np.inf, -np.inf],
        [-np.inf, 0.0, 1.0],
        [-np.inf, np.inf, 0.0],
        [big, -big, 0.0],
        [big, big, big],
        [-big, -big, -big],
        [fmax, -fmax, 0.0],
        [fmax, fmax, 1.0],
        [-np.inf, -big, -big],
    ]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_special_rows(backend, op, dtype):
    rows = np.array(_row_specials_cases(dtype), dtype=dtype)
    reff = ref.softmax if op == "softmax" else ref.log_softmax
    with no_warnings():
        r = to_numpy(getattr(ga, op)(to_backend(rows, backend), backend=backend))
        rt = to_numpy(getattr(ga, op)(to_backend(np.ascontiguousarray(rows.T), backend),
                                      axis=0, backend=backend))
    assert_close(r, reff(rows), dtype)
    assert_close(rt, reff(rows.T, axis=0), dtype)
    # rows with NaN or +inf, and all -inf rows, are all NaN
    for i in (0, 1, 2, 3, 5):
        assert np.all(np.isnan(r[i])), (i, r[i])
    # -inf entries in a row with a finite max: probability 0 / log-probability -inf
    if op == "softmax":
        assert r[4, 0] == 0.0 and r[11, 0] == 0.0
    else:
        assert r[4, 0] == -np.inf and r[11, 0] == -np.inf
    # huge values never overflow: the finite rows are finite and normalised
    for i in (4, 6, 7, 8, 9, 10, 11):
        p = r[i].astype(np.float64) if op == "softmax" else np.exp(r[i].astype(np.float64))
        assert np.all(np.isfinite(p)), (i, r[i])
        np.testing.assert_allclose(p.sum(), 1.0, rtol=0, atol=2e-3)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_specials_in_large_rows(backend, op, dtype):
    """Special values at odd offsets of 4097-long rows, reduced along either axis."""
    big = 100.0 if dtype == np.float16 else 1e30
    x = sample((5, 4097), np.float64, seed=3)
    x[0, 1] = np.nan
    x[1, 4095] = np.inf
    x[2, :] = -np.inf
    x[3, 7::9] = -np.inf
    x[3, 2049] = big
    x[4, 3] = -big
    x[4, 4001] = big
    x = x.astype(dtype)
    reff = ref.softmax if op == "softmax" else ref.log_softmax
    with no_warnings():
        r = to_numpy(getattr(ga, op)(to_backend(x, backend), backend=backend))
        xt = np.ascontiguousarray(x.T)
        rt = to_numpy(getattr(ga, op)(to_backend(xt, backend), axis=0, backend=backend))
    assert_close(r, reff(x), dtype)
    assert_close(rt, reff(xt, axis=0), dtype)
    assert np.all(np.isnan(r[:3]))
    assert not np.any(np.isnan(r[3:]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_hundred_float16_style(backend, dtype):
    """100 (exp overflows float16 and float32 without max-subtraction) is fine."""
    x = np.array([[100.0, 99.0, 98.0], [100.0, 100.0, 100.0]], dtype=dtype)
    with no_warnings():
        r = to_numpy(ga.softmax(to_backend(x, backend), backend=backend))
        lr = to_numpy(ga.log_softmax(to_backend(x, backend), backend=backend))
    assert_close(r, ref.softmax(x), dtype)
    assert_close(lr, ref.log_softmax(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_special_values_large(backend, dtype):
    x = _embed(dtype, n=4096, seed=9)
    with no_warnings():
        r = to_numpy(ga.maxout(to_backend(x, backend), 4, backend=backend))
        g = sample(r.shape, dtype, seed=2, kinks=False)
        rb = to_numpy(ga.maxout_backward(to_backend(g, backend), to_backend(x, backend), 4,
                                         backend=backend))
    assert_close(r, ref.maxout(x, 4), dtype)
    assert_close(rb, ref.maxout_backward(g, x, 4), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_rrelu_special_values(backend, dtype):
    x = _embed(dtype, n=4097, seed=10)
    w = np.array([0.25], dtype=dtype)
    g = sample(x.shape, dtype, seed=3, kinks=False)
    with no_warnings():
        r = to_numpy(ga.prelu(to_backend(x, backend), to_backend(w, backend), backend=backend))
        rr = to_numpy(ga.rrelu(to_backend(x, backend), backend=backend))
        rt = to_numpy(ga.rrelu(to_backend(x, backend), training=True, seed=3, backend=backend))
        rbt = to_numpy(ga.rrelu_backward(to_backend(g, backend), to_backend(x, backend),
                                         training=True, seed=3, backend=backend))
    assert_close(r, ref.prelu(x, w), dtype)
    assert_close(rr, ref.rrelu(x), dtype)
    assert_close(rt, ref.rrelu(x, training=True, seed=3), dtype)
    assert_close(rbt, ref.rrelu_backward(g, x, training=True, seed=3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_special_logits(backend, dtype):
    big = 100.0 if dtype == np.float16 else 1e30
    z = np.array([[big, -big, 0.0], [-np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0],
                  [0.0, 0.0, 0.0]], dtype=dtype)
    t = np.array([0, 2, 1, 1])
    with no_warnings():
        loss, grad = ga.cross_entropy(to_backend(z, backend), to_backend(t, backend),
                                      reduction="none", return_grad=True, backend=backend)
    loss, grad = to_numpy(loss), to_numpy(grad)
    el, eg = ref.cross_entropy(z, t, reduction="none")
    assert_close(loss, el, dtype)
    assert_close(grad, eg, dtype)
    assert np.isnan(loss[2]) and np.isfinite(loss[[0, 1, 3]]).all()


VIEW_OPS = [("gelu", {"approximate": "tanh"}), ("mish", {}), ("softplus", {}),
            ("logsigmoid", {}), ("hardswish", {}), ("selu", {})]


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_in_views(dtype):
    """Special values seen through negative-stride, strided and transposed host views."""
    base = _embed(dtype, n=8194, seed=4)
    gbase = sample(base.shape, dtype, seed=5, scale=1.0, kinks=False)
    # strided loops run the formulas' scalar code (contiguous ones their vector code);
    # float16 computes in float32, whose scalar code the float32 views run: two ops
    ops = VIEW_OPS if np.dtype(dtype) != np.float16 else VIEW_OPS[:2]
    for view in (lambda a: a[::-2], lambda a: a[1::2], lambda a: a.reshape(2, 4097).T):
        x, g = view(base), view(gbase)
        for name, params in ops:
            with no_warnings():
                r = getattr(ga, name)(x, **params)
                rb = getattr(ga, name + "_backward")(g, x, **params)
            assert_close(r, ref.forward(name, x, **params), dtype, msg=name)
            assert_close(rb, ref.backward(name, g, x, **params), dtype, msg=name)
    xt = base.reshape(2, 4097).T  # (4097, 2), F-ordered: rows along axis 0
    for op, rf in (("softmax", ref.softmax), ("log_softmax", ref.log_softmax)):
        with no_warnings():
            r = getattr(ga, op)(xt, axis=0)
            rr = getattr(ga, op)(base[::-1].reshape(2, 4097), axis=1)
        assert_close(r, rf(xt, axis=0), dtype, msg=op)
        assert_close(rr, rf(base[::-1].reshape(2, 4097), axis=1), dtype, msg=op)
