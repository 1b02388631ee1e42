"""Hypothesis property tests (profile "gpu_act": max_examples=50, deadline=None)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gpu_act as ga
import reference as ref
from helpers import OP_VARIANTS, op_id
from tolerances import assert_close

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9)


def finite_arrays(dtype, lo=-50.0, hi=50.0, shape=shapes):
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape,
                      elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                                         width=width))


@st.composite
def array_and_axis(draw, dtype=np.float64, lo=-50.0, hi=50.0):
    x = draw(finite_arrays(dtype, lo, hi))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return x, axis


@given(array_and_axis(np.float64))
def test_softmax_rows_sum_to_one(xa):
    x, axis = xa
    y = ga.softmax(x, axis=axis)
    assert np.all(y >= 0) and np.all(y <= 1)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=0, atol=1e-12)


@given(array_and_axis(np.float32))
def test_softmax_rows_sum_to_one_float32(xa):
    x, axis = xa
    y = ga.softmax(x, axis=axis)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.astype(np.float64).sum(axis=axis), 1.0, rtol=0, atol=1e-5)
    assert_close(y, ref.softmax(x, axis=axis), np.float32)


@given(array_and_axis(np.float64), st.data())
def test_softmax_shift_invariance(xa, data):
    """Adding a constant per row (integers: x + c is exact to ~1e-13) changes nothing."""
    x, axis = xa
    cshape = list(x.shape)
    cshape[axis] = 1
    c = data.draw(hnp.arrays(np.float64, tuple(cshape),
                             elements=st.integers(-1000, 1000).map(float)))
    assert_close(ga.softmax(x + c, axis=axis), ga.softmax(x, axis=axis), np.float64)
    # x + c is rounded to ulp(|x + c|): log-probabilities inherit that absolute error
    atol = 4 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(x + c))))
    assert_close(ga.log_softmax(x + c, axis=axis), ga.log_softmax(x, axis=axis), np.float64,
                 atol=max(atol, 1e-13))


@given(array_and_axis(np.float64), st.floats(0.05, 20.0))
def test_temperature_equals_scaled_input(xa, t):
    x, axis = xa
    assert_close(ga.softmax(x, axis=axis, temperature=t), ga.softmax(x / t, axis=axis),
                 np.float64)
    # x / t (here) and the kernel's scaling may round differently: absolute error ~ulp(|x/t|)
    atol = 4 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(x / t))))
    assert_close(ga.log_softmax(x, axis=axis, temperature=t),
                 ga.log_softmax(x / t, axis=axis), np.float64, atol=max(atol, 1e-13))
    assert_close(ga.softmax(x, axis=axis, temperature=t),
                 ref.softmax(x, axis=axis, temperature=t), np.float64)


@given(array_and_axis(np.float64, -500.0, 500.0))
def test_log_softmax_is_log_of_softmax(xa):
    x, axis = xa
    y = ga.softmax(x, axis=axis)
    ly = ga.log_softmax(x, axis=axis)
    with np.errstate(divide="ignore"):
        logy = np.log(y)
    fin = np.isfinite(logy) & (y > 1e-300)
    np.testing.assert_allclose(ly[fin], logy[fin], rtol=1e-12, atol=1e-12)
    # where softmax underflows to 0 log_softmax is still finite and very negative
    assert np.all(np.isfinite(ly))
    assert np.all(ly[~fin] < -600)


@given(st.data())
def test_elementwise_matches_reference(data):
    name, params = data.draw(st.sampled_from(OP_VARIANTS), label="op")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    x = data.draw(finite_arrays(dtype, -30.0, 30.0), label="x")
    g = data.draw(finite_arrays(dtype, -2.0, 2.0, shape=st.just(x.shape)), label="g")
    r = getattr(ga, name)(x, **params)
    assert r.dtype == dtype and r.shape == x.shape
    assert_close(r, ref.forward(name, x, **params), dtype, msg=op_id(name, params))
    rb = getattr(ga, name + "_backward")(g, x, **params)
    assert_close(rb, ref.backward(name, g, x, **params), dtype, msg=op_id(name, params))


MONOTONE = ["sigmoid", "tanh", "relu", "relu6", "elu", "selu", "celu", "softplus",
            "hardsigmoid", "hardtanh", "softsign", "logsigmoid", "leaky_relu"]


@given(st.sampled_from(MONOTONE), finite_arrays(np.float64, -1e6, 1e6,
                                                  shape=st.integers(2, 64)))
def test_monotone_ops_are_monotone(name, x):
    xs = np.sort(x)
    y = getattr(ga, name)(xs)
    # allow a few ulps of non-monotonic rounding, nothing more
    assert np.all(np.diff(y) >= -4 * np.finfo(np.float64).eps * np.abs(y[1:])), name
    assert np.all(getattr(ga, name + "_backward")(np.ones_like(xs), xs) >= 0)


@given(st.data())
def test_maxout_properties(data):
    x = data.draw(finite_arrays(np.float64, -10, 10))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    pool = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    y = ga.maxout(x, pool, axis=axis)
    np.testing.assert_array_equal(y, ref.maxout(x, pool, axis=axis))
    g = data.draw(finite_arrays(np.float64, -3, 3, shape=st.just(y.shape)))
    gx = ga.maxout_backward(g, x, pool, axis=axis)
    np.testing.assert_array_equal(gx, ref.maxout_backward(g, x, pool, axis=axis))
    # each group gets exactly its gradient, once
    np.testing.assert_allclose(gx.sum(), g.sum(), rtol=1e-12, atol=1e-12)
    assert np.count_nonzero(gx) <= y.size


@given(st.data())
def test_cross_entropy_properties(data):
    x = data.draw(finite_arrays(np.float64, -20, 20,
                                shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=7)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    C = x.shape[axis]
    tshape = x.shape[:axis % x.ndim] + x.shape[axis % x.ndim + 1:]
    t = data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, C - 1)))
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.5]))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    loss, grad = ga.cross_entropy(x, t, axis=axis, reduction=reduction, label_smoothing=eps,
                                  return_grad=True)
    el, eg = ref.cross_entropy(x, t, axis=axis, reduction=reduction, label_smoothing=eps)
    assert_close(loss, el, np.float64)
    assert_close(grad, eg, np.float64)
    assert np.all(loss >= -1e-12)
    # every row's gradient sums to zero (softmax - smoothed one-hot)
    np.testing.assert_allclose(grad.sum(axis=axis), 0.0, atol=1e-12)


@given(finite_arrays(np.float64, -20, 20), st.integers(0, 2**64 - 1),
       st.floats(-1.0, 1.0), st.floats(0.0, 1.0))
def test_rrelu_training_matches_reference(x, seed, lower, width):
    upper = lower + width
    r = ga.rrelu(x, lower, upper, training=True, seed=seed)
    assert_close(r, ref.rrelu(x, lower, upper, training=True, seed=seed), np.float64)
    neg = x < -1e-300  # slope * x must not underflow
    assume(np.any(neg))
    slopes = r[neg] / x[neg]
    assert np.all(slopes >= lower - 1e-12) and np.all(slopes <= upper + 1e-12)


def any_float_arrays(dtype, shape=shapes):
    """Any values of dtype, NaN and +-inf included, full range."""
    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
    return hnp.arrays(dtype, shape, elements=st.floats(width=width, allow_nan=True,
                                                      allow_infinity=True))


@given(st.data())
def test_elementwise_any_values_match_reference(data):
    """Full-range inputs incl. NaN/inf/huge/subnormal: same NaN/inf pattern as the maths."""
    name, params = data.draw(st.sampled_from(OP_VARIANTS), label="op")
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]), label="dtype")
    x = data.draw(any_float_arrays(dtype), label="x")
    g = data.draw(finite_arrays(dtype, -2.0, 2.0, shape=st.just(x.shape)), label="g")
    r = getattr(ga, name)(x, **params)
    assert_close(r, ref.forward(name, x, **params), dtype, msg=op_id(name, params))
    rb = getattr(ga, name + "_backward")(g, x, **params)
    assert_close(rb, ref.backward(name, g, x, **params), dtype, msg=op_id(name, params))


@given(st.data())
def test_softmax_any_values_match_reference(data):
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]), label="dtype")
    x = data.draw(any_float_arrays(dtype), label="x")
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    assert_close(ga.softmax(x, axis=axis), ref.softmax(x, axis=axis), dtype)
    assert_close(ga.log_softmax(x, axis=axis), ref.log_softmax(x, axis=axis), dtype)
