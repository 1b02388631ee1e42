"""Every documented bad input: exception type and a message fragment."""

from __future__ import annotations

import math

import warnings

import numpy as np
import pytest
from numpy.exceptions import AxisError

import gpu_act as ga
from helpers import OP_DEFAULTS, op_id

ACCEPTED = "float16, float32, float64"

BAD_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128, object]


def _bad(dtype, shape=(4, 6)):
    if dtype is object:
        return np.empty(shape, dtype=object)
    return np.ones(shape, dtype=dtype)


def _check_type_error(excinfo, dtype):
    msg = str(excinfo.value)
    assert np.dtype(dtype).name in msg, msg
    assert ACCEPTED in msg, msg


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,params", OP_DEFAULTS, ids=[op_id(*p) for p in OP_DEFAULTS])
def test_elementwise_bad_dtype(name, params, dtype):
    x = _bad(dtype)
    with pytest.raises(TypeError) as e:
        getattr(ga, name)(x, **params)
    _check_type_error(e, dtype)
    good = np.ones((4, 6))
    with pytest.raises(TypeError) as e:
        getattr(ga, name + "_backward")(good, x, **params)
    _check_type_error(e, dtype)
    with pytest.raises(TypeError) as e:
        getattr(ga, name + "_backward")(x, good, **params)
    _check_type_error(e, dtype)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_other_ops_bad_dtype(dtype):
    x = _bad(dtype)
    good = np.ones((4, 6))
    calls = [
        lambda: ga.softmax(x),
        lambda: ga.log_softmax(x, axis=0),
        lambda: ga.softmax_backward(x, good),
        lambda: ga.log_softmax_backward(good, x),
        lambda: ga.maxout(x, 2),
        lambda: ga.maxout_backward(np.ones((4, 3)), x, 2),
        lambda: ga.prelu(x, np.ones(6)),
        lambda: ga.prelu_backward(good, x, np.ones(6)),
        lambda: ga.rrelu(x),
        lambda: ga.rrelu(x, training=True),
        lambda: ga.rrelu_backward(good, x, 0.1, 0.3),
        lambda: ga.cross_entropy(x, np.zeros(4, np.int64)),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(TypeError) as e:
            call()
        _check_type_error(e, dtype)


def test_zero_size_and_0d_bad_dtype_still_rejected():
    for x in (np.zeros((0,), np.int32), np.array(3, np.int64), np.zeros((2, 0), bool)):
        with pytest.raises(TypeError, match=np.dtype(x.dtype).name):
            ga.relu(x)
        with pytest.raises(TypeError, match=np.dtype(x.dtype).name):
            ga.softmax(x)


# --------------------------------------------------------------------------- axis


@pytest.mark.parametrize("axis", [2, -3, 5, -10])
def test_axis_out_of_range(axis):
    x = np.ones((3, 4))
    g = np.ones((3, 4))
    calls = [
        lambda: ga.softmax(x, axis=axis),
        lambda: ga.log_softmax(x, axis=axis),
        lambda: ga.softmax_backward(g, x, axis=axis),
        lambda: ga.log_softmax_backward(g, x, axis=axis),
        lambda: ga.maxout(x, 1, axis=axis),
        lambda: ga.maxout_backward(g, x, 1, axis=axis),
        lambda: ga.cross_entropy(x, np.zeros((3, 4)), axis=axis),
    ]
    for call in calls:
        with pytest.raises(AxisError, match="axis"):
            call()


def test_axis_out_of_range_zero_d():
    x = np.array(1.0)
    for axis in (1, -2):
        with pytest.raises(AxisError, match="axis"):
            ga.softmax(x, axis=axis)
        with pytest.raises(AxisError, match="axis"):
            ga.log_softmax(x, axis=axis)
        with pytest.raises(AxisError, match="axis"):
            ga.softmax_backward(x, x, axis=axis)


def test_axis_zero_size():
    with pytest.raises(AxisError, match="axis"):
        ga.softmax(np.zeros((0, 3)), axis=2)


# --------------------------------------------------------------------------- out=


def test_out_wrong_shape():
    x = np.ones((3, 4), np.float32)
    for out in (np.empty((4, 3), np.float32), np.empty((12,), np.float32),
                np.empty((3, 4, 1), np.float32), np.empty((), np.float32)):
        with pytest.raises(ValueError):
            ga.relu(x, out=out)
        with pytest.raises(ValueError):
            ga.softmax(x, out=out)
        with pytest.raises(ValueError):
            ga.relu_backward(x, x, out=out)
    # maxout's result has the reduced shape, not x's shape
    with pytest.raises(ValueError):
        ga.maxout(x, 2, out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError):
        ga.maxout_backward(np.ones((3, 2), np.float32), x, 2, out=np.empty((3, 2), np.float32))
    # broadcasting into out is not allowed either
    with pytest.raises(ValueError):
        ga.gelu(np.ones((4,), np.float32), out=np.empty((3, 4), np.float32))


@pytest.mark.parametrize("out_dtype", [np.float16, np.float64, np.int32, np.complex64])
def test_out_wrong_dtype(out_dtype):
    x = np.ones((3, 4), np.float32)
    out = np.zeros((3, 4), out_dtype)
    with pytest.raises(TypeError):
        ga.tanh(x, out=out)
    with pytest.raises(TypeError):
        ga.log_softmax(x, out=out)
    with pytest.raises(TypeError):
        ga.tanh_backward(x, x, out=out)
    with pytest.raises(TypeError):
        ga.maxout(x, 1, out=out)
    assert np.all(out == 0)


def test_out_read_only():
    x = np.ones((3, 4))
    out = np.zeros((3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError):
        ga.sigmoid(x, out=out)
    with pytest.raises(ValueError):
        ga.softmax(x, out=out)
    with pytest.raises(ValueError):
        ga.sigmoid_backward(x, x, out=out)
    # a broadcast view is read-only, so it cannot be used in place
    b = np.broadcast_to(np.ones(4), (3, 4))
    with pytest.raises(ValueError):
        ga.relu(b, out=b)
    assert np.all(out == 0)


def test_out_not_an_array():
    x = np.ones((2, 3))
    with pytest.raises(TypeError):
        ga.relu(x, out=[[0.0] * 3] * 2)
    with pytest.raises(TypeError):
        ga.softmax(x, out=[[0.0] * 3] * 2)
    with pytest.raises(TypeError):
        ga.maxout(x, 3, out=[[0.0], [0.0]])


# --------------------------------------------------------------------------- parameters

BAD_TEMPS = [0.0, -1.0, -1e-30, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("t", BAD_TEMPS)
def test_bad_temperature(t):
    x = np.ones((2, 3))
    for call in (lambda: ga.softmax(x, temperature=t),
                 lambda: ga.log_softmax(x, temperature=t),
                 lambda: ga.softmax_backward(x, x, temperature=t),
                 lambda: ga.log_softmax_backward(x, x, temperature=t)):
        with pytest.raises(ValueError, match="temperature"):
            call()


@pytest.mark.parametrize("pool", [0, -2, 4, 5, 7])
def test_bad_pool_size(pool):
    x = np.ones((3, 6))
    with pytest.raises(ValueError, match="pool_size"):
        ga.maxout(x, pool)
    with pytest.raises(ValueError, match="pool_size"):
        ga.maxout_backward(np.ones((3, 1)), x, pool)


@pytest.mark.parametrize("pool", [2.5, 2.0, True, "2", None])
def test_pool_size_of_another_type(pool):
    # never truncated or read as 1: a bool, a float, a string is a TypeError
    x = np.ones((3, 6))
    with pytest.raises(TypeError, match="pool_size must be an integer"):
        ga.maxout(x, pool)


@pytest.mark.parametrize("axis", [True, False, 1.0, "1"])
def test_axis_of_another_type(axis):
    x = np.ones((3, 6))
    for call in (lambda: ga.softmax(x, axis=axis), lambda: ga.maxout(x, 3, axis=axis),
                 lambda: ga.cross_entropy(x, np.zeros(3, np.int64), axis=axis)):
        with pytest.raises(TypeError, match="axis must be an integer"):
            call()


@pytest.mark.parametrize("ignore,error", [(1.7, TypeError), (1.0, TypeError), (True, TypeError), (None, TypeError),
                                          (np.nan, TypeError), (1e30, TypeError), (2**70, ValueError),
                                          (-(2**63) - 1, ValueError)])
def test_ignore_index_must_be_an_int64(ignore, error):
    with pytest.raises(error, match="ignore_index"):
        ga.cross_entropy(np.ones((2, 3)), np.array([0, 1]), ignore_index=ignore)
    assert np.isfinite(ga.cross_entropy(np.ones((2, 3)), np.array([0, 1]), ignore_index=np.int32(1)))


@pytest.mark.parametrize("value", ["2", b"2", True, None, [1.0]])
def test_real_parameters_of_another_type(value):
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="temperature must be a real number"):
        ga.softmax(x, temperature=value)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        ga.cross_entropy(x, np.array([0, 1]), label_smoothing=value)


def test_bad_pool_size_other_axis():
    x = np.ones((4, 6))
    with pytest.raises(ValueError, match="pool_size"):
        ga.maxout(x, 3, axis=0)
    # and the valid one works
    assert ga.maxout(x, 3, axis=1).shape == (4, 2)


def test_rrelu_lower_greater_than_upper():
    x = np.ones(4)
    with pytest.raises(ValueError, match="lower|upper"):
        ga.rrelu(x, 0.5, 0.2)
    with pytest.raises(ValueError, match="lower|upper"):
        ga.rrelu(x, 0.5, 0.2, training=True)
    with pytest.raises(ValueError, match="lower|upper"):
        ga.rrelu_backward(x, x, 0.5, 0.2)
    # lower == upper is fine
    np.testing.assert_allclose(ga.rrelu(-x, 0.3, 0.3, training=True), -0.3 * x)


def test_unknown_approximate():
    x = np.ones(4)
    for bad in ("exact", "Tanh", "", "erf"):
        for fn in (ga.gelu, lambda v, approximate: ga.gelu_backward(v, v, approximate=approximate)):
            with pytest.raises(ValueError, match="approximate") as e:
                fn(x, approximate=bad)
            assert "none" in str(e.value) and "tanh" in str(e.value)


def test_prelu_bad_weight():
    with pytest.raises(ValueError, match="weight"):
        ga.prelu(np.ones((4, 3)), np.ones(2))
    with pytest.raises(ValueError, match="weight"):
        ga.prelu(np.ones((2, 3, 5)), np.ones(5))  # channel axis is 1, not the last
    with pytest.raises(ValueError, match="weight"):
        ga.prelu(np.ones(5), np.ones(5))  # ndim < 2 needs a single weight
    with pytest.raises(ValueError, match="weight"):
        ga.prelu(np.array(1.0), np.ones(2))
    with pytest.raises(ValueError, match="weight"):
        ga.prelu_backward(np.ones((4, 3)), np.ones((4, 3)), np.ones(4))


def test_hardtanh_min_greater_than_max():
    with pytest.raises(ValueError, match="min_val|max_val"):
        ga.hardtanh(np.ones(3), min_val=1.0, max_val=-1.0)
    with pytest.raises(ValueError, match="min_val|max_val"):
        ga.hardtanh_backward(np.ones(3), np.ones(3), min_val=0.5, max_val=0.4)


def test_celu_alpha_zero():
    with pytest.raises(ValueError, match="alpha"):
        ga.celu(np.ones(3), alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        ga.celu_backward(np.ones(3), np.ones(3), alpha=0.0)


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_softplus_beta_not_positive(beta):
    with pytest.raises(ValueError, match="beta"):
        ga.softplus(np.ones(3), beta=beta)
    with pytest.raises(ValueError, match="beta"):
        ga.softplus_backward(np.ones(3), np.ones(3), beta=beta)


NONFINITE_PARAMS = [
    ("leaky_relu", "negative_slope"), ("elu", "alpha"), ("celu", "alpha"), ("swish", "beta"),
    ("softplus", "beta"), ("softplus", "threshold"), ("hardtanh", "min_val"),
    ("hardtanh", "max_val"),
]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name,param", NONFINITE_PARAMS)
def test_non_finite_parameters(name, param, value):
    x = np.ones(3)
    with pytest.raises(ValueError, match=param):
        getattr(ga, name)(x, **{param: value})
    with pytest.raises(ValueError, match=param):
        getattr(ga, name + "_backward")(x, x, **{param: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_rrelu_and_label_smoothing(value):
    x = np.ones(3)
    with pytest.raises(ValueError, match="lower"):
        ga.rrelu(x, lower=value, upper=0.3)
    with pytest.raises(ValueError, match="upper"):
        ga.rrelu(x, lower=0.1, upper=value)
    with pytest.raises(ValueError, match="label_smoothing"):
        ga.cross_entropy(np.ones((2, 3)), np.array([0, 1]), label_smoothing=value)


# --------------------------------------------------------------------------- backends


def test_unknown_backend():
    x = np.ones(3)
    for call in (lambda: ga.relu(x, backend="tpu"),
                 lambda: ga.softmax(x, backend="metal"),
                 lambda: ga.relu_backward(x, x, backend="opencl"),
                 lambda: ga.cross_entropy(np.ones((2, 3)), np.array([0, 1]), backend="gpu")):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        for known in ("cpu", "cuda", "cupy"):
            assert known in msg, msg


def test_unavailable_backend():
    available = ga.available_backends()
    assert "cpu" in available
    missing = [b for b in ("cuda", "cupy") if b not in available]
    x = np.ones(3)
    for b in missing:
        with pytest.raises(RuntimeError) as e:
            ga.relu(x, backend=b)
        for a in available:
            assert a in str(e.value), str(e.value)
        with pytest.raises(RuntimeError):
            ga.softmax(x, backend=b)
    if not missing:  # on a GPU machine every backend is there
        assert set(available) >= {"cpu", "cuda", "cupy"}


def test_a_backend_that_fails_to_load_is_unavailable_not_a_crash(monkeypatch):
    # e.g. a numba-cuda that does not import with the installed Numba or NumPy
    from gpu_act import _dispatch

    real = _dispatch.importlib.import_module

    def broken(name):
        if name == "gpu_act.backends.cupy":
            raise AttributeError("module 'numba' has no attribute 'something'")
        return real(name)

    monkeypatch.setattr(_dispatch, "_modules", {k: v for k, v in _dispatch._modules.items() if k != "cupy"})
    monkeypatch.setattr(_dispatch, "_available", None)
    monkeypatch.setattr(_dispatch.importlib, "import_module", broken)
    assert "cupy" not in ga.available_backends()
    with pytest.raises(ga.BackendUnavailableError, match="failed to load: AttributeError: module 'numba'"):
        ga.relu(np.ones(3), backend="cupy")


def test_available_backends_is_tuple_of_str():
    b = ga.available_backends()
    assert isinstance(b, tuple) and b and all(isinstance(n, str) for n in b)
    assert "cpu" in b and set(b) <= {"cpu", "cuda", "cupy"}


# --------------------------------------------------------------------------- cross_entropy


def test_cross_entropy_label_smoothing_range():
    z = np.ones((2, 3))
    t = np.array([0, 1])
    for eps in (-0.1, 1.1, 2.0):
        with pytest.raises(ValueError, match="label_smoothing"):
            ga.cross_entropy(z, t, label_smoothing=eps)
    for eps in (0.0, 1.0):  # both ends are valid
        ga.cross_entropy(z, t, label_smoothing=eps)


def test_cross_entropy_unknown_reduction():
    with pytest.raises(ValueError, match="reduction|mean") as e:
        ga.cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="avg")
    assert "mean" in str(e.value)


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [5, 0], [-101, 0]])
def test_cross_entropy_index_out_of_range(bad):
    with pytest.raises(ValueError, match=r"(?i)target|range|class|index"):
        ga.cross_entropy(np.ones((2, 3)), np.array(bad))


def test_cross_entropy_ignore_index_is_not_out_of_range():
    loss = ga.cross_entropy(np.ones((2, 3)), np.array([-100, 1]))
    assert np.isfinite(loss)
    loss = ga.cross_entropy(np.ones((2, 3)), np.array([7, 1]), ignore_index=7)
    assert np.isfinite(loss)


def test_cross_entropy_target_shape_mismatch():
    z = np.ones((4, 5))
    for t in (np.zeros(3, np.int64), np.zeros((4, 1), np.int64), np.zeros(5, np.int64),
              np.zeros((4, 4)), np.zeros((5, 4)), np.zeros(4)):
        with pytest.raises(ValueError, match=r"(?i)shape"):
            ga.cross_entropy(z, t)
    # with axis=0 the index target has shape (5,)
    with pytest.raises(ValueError, match=r"(?i)shape"):
        ga.cross_entropy(z, np.zeros(4, np.int64), axis=0)


@pytest.mark.parametrize("tdtype", [np.bool_, np.complex128, object])
def test_cross_entropy_bad_target_dtype(tdtype):
    z = np.ones((4, 5))
    for shape in ((4,), (4, 5)):
        t = np.zeros(shape, dtype=tdtype)
        with pytest.raises((TypeError, ValueError)) as e:
            ga.cross_entropy(z, t)
        assert np.dtype(tdtype).name in str(e.value), str(e.value)


def test_cross_entropy_zero_d_logits():
    with pytest.raises(ValueError):
        ga.cross_entropy(np.array(1.0), np.array(0))


def test_error_leaves_out_untouched():
    x = np.ones((2, 3))
    out = np.full((2, 3), 5.0)
    with pytest.raises(ValueError):
        ga.softmax(x, temperature=0.0, out=out)
    with pytest.raises(ValueError):
        ga.hardtanh(x, min_val=2.0, max_val=1.0, out=out)
    assert np.all(out == 5.0)


@pytest.mark.gpu
def test_mixing_host_and_device_arrays(gpu_backend):
    from helpers import to_backend

    x = np.ones((3, 4), np.float32)
    d = to_backend(x, gpu_backend)
    with pytest.raises(TypeError):
        ga.relu(d, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError):
        ga.relu(x, backend=gpu_backend)
    with pytest.raises(TypeError):
        ga.relu_backward(d, x)
    with pytest.raises(TypeError):
        ga.softmax(d, backend="cpu")
    with pytest.raises(TypeError):
        ga.relu(d, out=[0.0] * 12)


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_rrelu_seed_out_of_range(seed):
    x = -np.ones(3)
    with pytest.raises(ValueError, match="seed"):
        ga.rrelu(x, training=True, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        ga.rrelu_backward(x, x, training=True, seed=seed)


def test_integer_like_parameters_accepted():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(ga.softmax(x, temperature=2), ga.softmax(x, temperature=2.0))
    np.testing.assert_array_equal(ga.maxout(x, np.int64(2)), ga.maxout(x, 2))
    np.testing.assert_array_equal(ga.softmax(x, axis=np.int64(0)), ga.softmax(x, axis=0))
    np.testing.assert_array_equal(ga.rrelu(x, training=True, seed=np.uint64(2**64 - 1)),
                                  ga.rrelu(x, training=True, seed=2**64 - 1))
    np.testing.assert_array_equal(ga.elu(x, alpha=2), ga.elu(x, alpha=2.0))


def test_backward_argument_mismatch():
    x = np.ones((3, 4))
    with pytest.raises(ValueError):
        ga.relu_backward(np.ones((4, 3)), x)
    with pytest.raises(ValueError):
        ga.softmax_backward(np.ones((3, 5)), x)
    with pytest.raises(ValueError):
        ga.rrelu_backward(np.ones(12), x)
    with pytest.raises(TypeError, match="float32"):
        ga.gelu_backward(np.ones((3, 4), np.float32), x)
    with pytest.raises(TypeError, match="float16"):
        ga.log_softmax_backward(np.ones((3, 4), np.float16), x)


def test_masked_arrays_are_refused_with_how_to_pass_them():
    x = np.ma.masked_array([1.0, 1e30, 2.0], mask=[False, True, False])
    for call in (lambda: ga.softmax(x), lambda: ga.relu(x), lambda: ga.relu_backward(np.ones(3), x),
                 lambda: ga.cross_entropy(np.ones((2, 3)), np.ma.masked_array([0, 1], mask=[True, False]))):
        with pytest.raises(TypeError, match=r"MaskedArray.*filled"):
            call()
    out = np.ma.masked_array(np.zeros(3), mask=[True, False, False])
    with pytest.raises(TypeError, match="out is a numpy.ma.MaskedArray"):
        ga.relu(np.ones(3), out=out)
    np.testing.assert_array_equal(out.data, 0)


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_non_native_byte_order_is_computed_by_value(dtype):
    x = np.linspace(-3, 3, 12).reshape(3, 4).astype(dtype)
    native = x.astype(np.dtype(dtype).newbyteorder("="))
    for name in ("relu", "gelu", "softmax", "log_softmax"):
        r = getattr(ga, name)(x)
        assert r.dtype == native.dtype and r.dtype.isnative
        np.testing.assert_array_equal(r, getattr(ga, name)(native))
    np.testing.assert_array_equal(ga.sigmoid_backward(x, x), ga.sigmoid_backward(native, native))
    t = np.array([0, 3, 1], ">i8")
    np.testing.assert_array_equal(ga.cross_entropy(x, t), ga.cross_entropy(native, t.astype(np.int64)))
    with pytest.raises(TypeError, match="native byte order"):
        ga.relu(native, out=np.empty(native.shape, dtype))


@pytest.mark.parametrize(
    "name,params,dtype",
    [
        ("leaky_relu", {"negative_slope": 1e300}, np.float32),
        ("leaky_relu", {"negative_slope": -1e39}, np.float16),
        ("elu", {"alpha": 1e39}, np.float32),
        ("celu", {"alpha": 1e-300}, np.float32),
        ("celu", {"alpha": 1e-40}, np.float32),
        ("celu", {"alpha": 1e-310}, np.float64),
        ("softplus", {"beta": 1e-300}, np.float32),
        ("softplus", {"threshold": 1e300}, np.float32),
        ("hardtanh", {"min_val": -1e40}, np.float32),
        ("swish", {"beta": 1e39}, np.float16),
    ],
)
def test_parameters_the_compute_dtype_cannot_hold_are_refused(name, params, dtype):
    # e.g. float32(1e300) is inf, float32(1e-300) is 0: NaN at x = 0, or a NumPy RuntimeWarning
    x = np.array([-1.0, 0.0, 1.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (getattr(ga, name), lambda x, **p: getattr(ga, name + "_backward")(x, x, **p)):
            with pytest.raises(ValueError, match=f"{next(iter(params))}=.* computed in"):
                fn(x, **params)
    # the same value is fine in float64 where float64 holds it
    if abs(next(iter(params.values()))) < 1e300 and abs(next(iter(params.values()))) > 1e-300:
        assert np.isfinite(getattr(ga, name)(x.astype(np.float64), **params)).all()


# --------------------------------------------------------------------------- logsumexp, softmin


def test_logsumexp_and_softmin_bad_inputs():
    x = np.ones((3, 4))
    r = np.ones(3)
    for dtype in (np.int32, np.bool_, np.complex64):
        with pytest.raises(TypeError) as e:
            ga.logsumexp(_bad(dtype))
        _check_type_error(e, dtype)
        with pytest.raises(TypeError) as e:
            ga.softmin(_bad(dtype))
        _check_type_error(e, dtype)
    calls = [lambda a: ga.logsumexp(x, axis=a), lambda a: ga.logsumexp_backward(r, x, r, axis=a),
             lambda a: ga.softmin(x, axis=a), lambda a: ga.softmin_backward(x, x, axis=a)]
    for call in calls:
        with pytest.raises(AxisError, match="axis"):
            call(2)
        with pytest.raises(TypeError, match="axis must be an integer"):
            call(1.0)
    for t in BAD_TEMPS:
        for call in (lambda: ga.logsumexp(x, temperature=t), lambda: ga.softmin(x, temperature=t),
                     lambda: ga.softmin_backward(x, x, temperature=t),
                     lambda: ga.logsumexp_backward(r, x, r, temperature=t)):
            with pytest.raises(ValueError, match="temperature"):
                call()
    for keepdims in (1, None, "yes"):
        with pytest.raises(TypeError, match="keepdims must be True or False"):
            ga.logsumexp(x, keepdims=keepdims)


def test_logsumexp_temperature_must_be_held_by_the_compute_dtype():
    # the result is m + T log s: a T beyond the compute dtype's range is refused, naming the bound
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"temperature=1e\+40 .*computed in float32.*temperature <= 3.403e\+38"):
        ga.logsumexp(x, temperature=1e40)
    with pytest.raises(ValueError, match="temperature"):
        ga.logsumexp_backward(np.ones(2, np.float16), x.astype(np.float16), np.ones(2, np.float16), temperature=1e40)
    assert np.isfinite(ga.logsumexp(x.astype(np.float64), temperature=1e40)).all()
    ga.softmin(x, temperature=1e40)  # softmin only scales by 1/T


def test_logsumexp_backward_shapes_and_dtypes():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"grad_output has shape \(4,\); expected \(3,\)"):
        ga.logsumexp_backward(np.ones(4), x, np.ones(3))
    with pytest.raises(ValueError, match=r"result has shape \(3,\); expected \(3, 1\)"):
        ga.logsumexp_backward(np.ones((3, 1)), x, np.ones(3), keepdims=True)
    with pytest.raises(TypeError, match="result has dtype float32; expected float64"):
        ga.logsumexp_backward(np.ones(3), x, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="grad_output has dtype float16; expected float64"):
        ga.logsumexp_backward(np.ones(3, np.float16), x, np.ones(3))


def test_logsumexp_out_has_the_reduced_shape_and_nothing_is_written_on_error():
    x = np.ones((3, 4), np.float32)
    out = np.full((3, 4), 5.0, np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\); expected \(3,\)"):
        ga.logsumexp(x, out=out)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\); expected \(3, 1\)"):
        ga.logsumexp(x, keepdims=True, out=out)
    with pytest.raises(ValueError):
        ga.softmin(x, temperature=-1.0, out=out)
    small = np.full(3, 5.0, np.float32)
    with pytest.raises(TypeError):
        ga.logsumexp(x, keepdims=0, out=small)
    with pytest.raises(ValueError):
        ga.logsumexp(x, temperature=1e40, out=small)
    assert np.all(out == 5.0) and np.all(small == 5.0)


# --------------------------------------------------------------------------- gated linear units


def test_glu_bad_inputs():
    x = np.ones((3, 4))
    for call in (lambda: ga.glu(np.ones((3, 5))), lambda: ga.glu_backward(np.ones((3, 2)), np.ones((3, 5))),
                 lambda: ga.swiglu(np.ones((5, 2)), axis=0), lambda: ga.geglu_backward(np.ones(2), np.ones(5))):
        with pytest.raises(ValueError, match="x has length 5 along axis .; expected an even length"):
            call()
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ga.glu(np.array(1.0))
    for bad in ("swish_", "prelu", "rrelu", "Sigmoid", 3, None):
        with pytest.raises(ValueError, match="activation=.* is not accepted; expected one of sigmoid, tanh, relu") as e:
            ga.glu(x, activation=bad)
        assert "gelu" in str(e.value) and "logsigmoid" in str(e.value)
        with pytest.raises(ValueError, match="activation"):
            ga.glu_backward(np.ones((3, 2)), x, activation=bad)
    for dtype in (np.int32, np.bool_):
        with pytest.raises(TypeError) as e:
            ga.glu(_bad(dtype))
        _check_type_error(e, dtype)
    with pytest.raises(AxisError, match="axis"):
        ga.reglu(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        ga.glu(x, axis=1.0)


def test_glu_gate_parameters_are_checked_as_the_elementwise_functions_check_them():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="beta"):
        ga.glu(x, activation="softplus", beta=0.0)
    with pytest.raises(ValueError, match="alpha"):
        ga.glu_backward(np.ones((3, 2), np.float32), x, activation="celu", alpha=0.0)
    with pytest.raises(ValueError, match="negative_slope=.* computed in float32"):
        ga.glu(x, activation="leaky_relu", negative_slope=1e300)
    with pytest.raises(ValueError, match="min_val|max_val"):
        ga.glu(x, activation="hardtanh", min_val=1.0, max_val=-1.0)
    with pytest.raises(ValueError, match="approximate"):
        ga.geglu(x, approximate="exact")
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta'"):
        ga.glu(x, activation="relu", beta=1.0)
    with pytest.raises(TypeError, match="beta must be"):
        ga.glu(x, activation="swish", beta="1")


def test_glu_shapes_and_nothing_written_on_error():
    x = np.ones((3, 4))
    out = np.full((3, 2), 5.0)
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 4\); expected \(3, 2\)"):
        ga.glu_backward(np.ones((3, 4)), x)
    with pytest.raises(TypeError, match="grad_output has dtype float32; expected float64"):
        ga.glu_backward(np.ones((3, 2), np.float32), x)
    with pytest.raises(ValueError, match=r"out has shape \(3, 2\); expected \(3, 4\)"):
        ga.glu_backward(np.ones((3, 2)), x, out=out)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\); expected \(3, 2\)"):
        ga.glu(x, out=np.ones((3, 4)))
    with pytest.raises(ValueError, match="activation"):
        ga.glu(x, activation="nope", out=out)
    with pytest.raises(ValueError, match="beta"):
        ga.glu(x, activation="softplus", beta=-1.0, out=out)
    assert np.all(out == 5.0)


# --------------------------------------------------------------------------- masks


MASKED_CALLS = {
    "softmax": lambda x, **k: ga.softmax(x, **k),
    "log_softmax": lambda x, **k: ga.log_softmax(x, **k),
    "softmax_backward": lambda x, **k: ga.softmax_backward(x, x, **k),
    "log_softmax_backward": lambda x, **k: ga.log_softmax_backward(x, x, **k),
    "logsumexp": lambda x, **k: ga.logsumexp(x, **k),
    "logsumexp_backward": lambda x, **k: ga.logsumexp_backward(np.ones(3), x, np.ones(3), **k),
    "cross_entropy": lambda x, **k: ga.cross_entropy(x, np.zeros(3, np.int64), **k),
}


@pytest.mark.parametrize("name", list(MASKED_CALLS))
def test_bad_masks(name):
    call = MASKED_CALLS[name]
    x = np.ones((3, 4))
    for bad in (np.ones((3, 4)), np.ones((3, 4), np.int8), np.ones(4, np.float32)):
        with pytest.raises(TypeError, match=f"mask has dtype {bad.dtype}; expected bool"):
            call(x, mask=bad)
    for bad in (np.ones((4, 3), bool), np.ones(3, bool), np.ones((2, 3, 4), bool)):
        with pytest.raises(ValueError, match=r"mask has shape .*; expected a shape that broadcasts to the input's \(3, 4\)"):
            call(x, mask=bad)
    with pytest.raises(TypeError, match="MaskedArray"):
        call(x, mask=np.ma.masked_array(np.ones(4, bool), mask=[True, False, False, False]))
    call(x, mask=[True, False, True, True])  # any array-like of bools


def test_bad_mask_writes_nothing():
    x = np.ones((3, 4))
    out = np.full((3, 4), 5.0)
    with pytest.raises(TypeError):
        ga.softmax(x, mask=np.ones(4), out=out)
    with pytest.raises(ValueError):
        ga.log_softmax_backward(x, x, mask=np.ones(3, bool), out=out)
    small = np.full(3, 5.0)
    with pytest.raises(ValueError):
        ga.logsumexp(x, mask=np.ones((2, 4), bool), out=small)
    assert np.all(out == 5.0) and np.all(small == 5.0)


@pytest.mark.gpu
def test_mask_on_the_other_device(gpu_backend):
    from helpers import to_backend

    def dev(a):
        return to_backend(np.asarray(a), gpu_backend)

    x, r = dev(np.ones((3, 4), np.float32)), dev(np.ones(3, np.float32))
    calls = [lambda m: ga.softmax(x, mask=m), lambda m: ga.log_softmax_backward(x, x, mask=m),
             lambda m: ga.logsumexp(x, mask=m), lambda m: ga.logsumexp_backward(r, x, r, mask=m),
             lambda m: ga.cross_entropy(x, dev(np.zeros(3, np.int64)), mask=m)]
    for call in calls:
        with pytest.raises(TypeError, match="mixed"):
            call(np.ones(4, bool))
        call(dev(np.ones(4, bool)))  # on x's device: accepted
    with pytest.raises(TypeError, match="mixed"):
        ga.softmax(np.ones((3, 4)), mask=dev(np.ones(4, bool)))
