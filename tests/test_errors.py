"""Every documented bad input: exception type and a message fragment."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize("pool", [0, -2, 4, 5, 7, 2.5])
def test_bad_pool_size(pool):
    x = np.ones((3, 6))
    with pytest.raises(ValueError, match="pool_size"):
        ga.maxout(x, pool)
    with pytest.raises(ValueError, match="pool_size"):
        ga.maxout_backward(np.ones((3, 1)), x, pool)


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
