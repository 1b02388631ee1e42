"""cross_entropy loss and gradient against the float64 reference and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

REDUCTIONS = ("mean", "sum", "none")


def _ce(logits, target, backend, **kw):
    res = ga.cross_entropy(to_backend(logits, backend), to_backend(target, backend),
                           backend=backend, **kw)
    if kw.get("return_grad"):
        loss, grad = res
        return to_numpy(loss), to_numpy(grad)
    return to_numpy(res)


def _index_target(shape_wo_axis, C, seed, ignore_index=-100, n_ignore=1, dtype=np.int64):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, C, size=shape_wo_axis).astype(dtype)
    flat = t.reshape(-1)
    if flat.size > 1 and n_ignore:
        flat[1:1 + n_ignore] = ignore_index
    return t


# (logits shape, axis)
LAYOUTS = [((7, 5), -1), ((5, 7), 0), ((4, 6, 3), 1), ((2, 3, 4), -1), ((6,), 0)]


def _wo_axis(shape, axis):
    axis = axis % len(shape)
    return shape[:axis] + shape[axis + 1:]


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_index_targets(backend, dtype, reduction, label_smoothing):
    for shape, axis in LAYOUTS:
        C = shape[axis % len(shape)]
        z = sample(shape, dtype, seed=len(shape) + C)
        t = _index_target(_wo_axis(shape, axis), C, seed=C)
        exp_loss, exp_grad = ref.cross_entropy(z, t, axis=axis, reduction=reduction,
                                               label_smoothing=label_smoothing)
        loss = _ce(z, t, backend, axis=axis, reduction=reduction,
                   label_smoothing=label_smoothing)
        assert_dtype(loss, dtype)
        assert loss.shape == exp_loss.shape, (shape, axis, loss.shape)
        assert_close(loss, exp_loss, dtype, msg=f"loss {shape} axis={axis}")
        loss2, grad = _ce(z, t, backend, axis=axis, reduction=reduction,
                          label_smoothing=label_smoothing, return_grad=True)
        assert_close(loss2, exp_loss, dtype)
        assert grad.shape == z.shape
        assert_dtype(grad, dtype)
        assert_close(grad, exp_grad, dtype, msg=f"grad {shape} axis={axis}")


@pytest.mark.parametrize("target_dtype", [np.int32, np.int64, np.uint8, np.int16])
def test_index_target_integer_dtypes(backend, target_dtype):
    z = sample((9, 4), np.float32, seed=1)
    t = np.random.default_rng(2).integers(0, 4, size=9).astype(target_dtype)
    exp_loss, exp_grad = ref.cross_entropy(z, t)
    loss, grad = _ce(z, t, backend, return_grad=True)
    assert_close(loss, exp_loss, np.float32)
    assert_close(grad, exp_grad, np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignore_index(backend, reduction):
    z = sample((8, 5), np.float64, seed=3)
    t = np.array([0, 1, -100, 4, -100, 2, 3, -100])
    exp_loss, exp_grad = ref.cross_entropy(z, t, reduction=reduction)
    loss, grad = _ce(z, t, backend, reduction=reduction, return_grad=True)
    assert_close(loss, exp_loss, np.float64)
    assert_close(grad, exp_grad, np.float64)
    assert np.all(grad[[2, 4, 7]] == 0)
    if reduction == "none":
        assert np.all(loss[[2, 4, 7]] == 0)
    if reduction == "mean":
        # denominator counts only the 5 non-ignored rows
        per_row = _ce(z, t, backend, reduction="none")
        assert_close(loss, np.asarray(per_row.sum() / 5), np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_custom_ignore_index_in_class_range(backend, reduction):
    z = sample((6, 4), np.float64, seed=4)
    t = np.array([0, 2, 1, 2, 3, 2])
    exp_loss, exp_grad = ref.cross_entropy(z, t, reduction=reduction, ignore_index=2)
    loss, grad = _ce(z, t, backend, reduction=reduction, ignore_index=2, return_grad=True)
    assert_close(loss, exp_loss, np.float64)
    assert_close(grad, exp_grad, np.float64)
    assert np.all(grad[t == 2] == 0)


def test_all_ignored(backend):
    z = sample((4, 3), np.float32, seed=5)
    t = np.full(4, -100)
    loss, grad = _ce(z, t, backend, reduction="mean", return_grad=True)
    assert loss.shape == () and np.isnan(loss)
    assert np.all(grad == 0)
    loss, grad = _ce(z, t, backend, reduction="sum", return_grad=True)
    assert float(loss) == 0.0 and np.all(grad == 0)
    loss = _ce(z, t, backend, reduction="none")
    assert np.all(loss == 0) and loss.shape == (4,)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_targets(backend, dtype, reduction, label_smoothing):
    for shape, axis in LAYOUTS:
        z = sample(shape, dtype, seed=7)
        p = ref.softmax(sample(shape, np.float64, seed=8, kinks=False), axis=axis).astype(dtype)
        exp_loss, exp_grad = ref.cross_entropy(z, p, axis=axis, reduction=reduction,
                                               label_smoothing=label_smoothing)
        loss, grad = _ce(z, p, backend, axis=axis, reduction=reduction,
                         label_smoothing=label_smoothing, return_grad=True)
        assert_dtype(loss, dtype)
        assert_dtype(grad, dtype)
        assert loss.shape == exp_loss.shape
        assert_close(loss, exp_loss, dtype, msg=f"loss {shape} axis={axis}")
        assert_close(grad, exp_grad, dtype, msg=f"grad {shape} axis={axis}")


def test_probability_targets_unnormalized_and_zero_terms(backend):
    """t_c == 0 terms contribute 0 even where z_c == -inf; sum(t) != 1 scales softmax."""
    z = sample((5, 6), np.float64, seed=9)
    t = np.abs(sample((5, 6), np.float64, seed=10, kinks=False))
    t[:, 2] = 0.0
    z[:, 2] = -np.inf
    t[3] *= 3.0
    for reduction in REDUCTIONS:
        exp_loss, exp_grad = ref.cross_entropy(z, t, reduction=reduction)
        loss, grad = _ce(z, t, backend, reduction=reduction, return_grad=True)
        assert np.all(np.isfinite(loss)), loss
        assert_close(loss, exp_loss, np.float64)
        assert_close(grad, exp_grad, np.float64)
        assert np.all(grad[:, 2] == 0)


def test_probability_mean_divides_by_rows(backend):
    z = sample((4, 3, 5), np.float64, seed=11)
    t = ref.softmax(sample((4, 3, 5), np.float64, seed=12), axis=1)
    per = _ce(z, t, backend, axis=1, reduction="none")
    assert per.shape == (4, 5)
    mean = _ce(z, t, backend, axis=1, reduction="mean")
    assert_close(mean, np.asarray(per.sum() / 20), np.float64)


def test_index_equals_onehot_probabilities(backend):
    z = sample((6, 5), np.float64, seed=13)
    t = np.array([0, 4, 2, 2, 1, 3])
    onehot = np.eye(5)[t]
    for eps in (0.0, 0.3):
        a, ga_ = _ce(z, t, backend, label_smoothing=eps, return_grad=True)
        b, gb = _ce(z, onehot, backend, label_smoothing=eps, return_grad=True)
        assert_close(a, b, np.float64)
        assert_close(ga_, gb, np.float64)


def test_known_value(backend):
    z = np.array([[1.0, 2.0, 3.0]])
    t = np.array([0])
    expected = np.log(np.exp(z).sum()) - 1.0
    assert_close(_ce(z, t, backend), np.asarray(expected), np.float64)
    assert_close(_ce(z, t, backend, reduction="none"), np.array([expected]), np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_grad_finite_differences(backend, reduction, kind, label_smoothing):
    shape, axis = (4, 5, 3), 1
    z = sample(shape, np.float64, seed=14, kinks=False)
    if kind == "index":
        t = _index_target((4, 3), 5, seed=15, n_ignore=2)
    else:
        t = ref.softmax(sample(shape, np.float64, seed=16), axis=1)
    kw = dict(axis=axis, reduction=reduction, label_smoothing=label_smoothing)
    _, grad = _ce(z, t, backend, return_grad=True, **kw)

    def scalar(v):
        return np.sum(_ce(v, t, backend, **kw))

    assert_close(grad, grad_fd(scalar, z), np.float64, rtol=FD_RTOL, atol=FD_ATOL)
    # reference gradient vs FD of the reference loss
    _, rg = ref.cross_entropy(z, t, **kw)
    fd_ref = grad_fd(lambda v: np.sum(ref.cross_entropy(v, t, **kw)[0]), z)
    assert_close(rg, fd_ref, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits_no_overflow(backend, dtype):
    big = 100.0 if dtype == np.float16 else 1e30
    z = np.array([[big, 0.0, -big], [0.0, big, big]], dtype=dtype)
    t = np.array([0, 1])
    exp_loss, exp_grad = ref.cross_entropy(z, t, reduction="none")
    loss, grad = _ce(z, t, backend, reduction="none", return_grad=True)
    assert_close(loss, exp_loss, dtype)
    assert_close(grad, exp_grad, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("big", [1e15, 1e30, -1e30])
def test_huge_logits_lose_no_loss(backend, dtype, big):
    # equal logits: log C; the loss is never formed as lse - z_c, which cancels to 0 here
    C = 5
    z = np.full((2, C), big, dtype)
    z[1, 2:] = -abs(big)  # [b, b, -|b|, ...]: log 2 for targets 0 and 1
    loss = _ce(z, np.array([3, 0]), backend, reduction="none")
    assert_close(loss, [np.log(C), np.log(2.0) if big > 0 else np.log(C)], dtype)
    p = np.full((2, C), 1.0 / C, dtype)
    loss = _ce(z, p, backend, reduction="none", label_smoothing=0.3)
    assert_close(loss, ref.cross_entropy(z, p, reduction="none", label_smoothing=0.3)[0], dtype)
    smooth = _ce(z, np.array([3, 0]), backend, reduction="none", label_smoothing=0.25)
    assert_close(smooth, ref.cross_entropy(z, np.array([3, 0]), reduction="none", label_smoothing=0.25)[0], dtype)


def test_rows_without_a_softmax_have_a_nan_loss_even_with_no_target_weight(backend):
    z = np.array([[np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [-np.inf] * 3, [1.0, 2.0, 3.0]])
    t = np.zeros_like(z)
    t[3, 0] = 1.0  # the other rows weight no class
    loss = _ce(z, t, backend, reduction="none")
    assert np.isnan(loss[:3]).all() and np.isfinite(loss[3])
    assert_close(loss, ref.cross_entropy(z, t, reduction="none")[0], np.float64)


def test_zero_rows(backend):
    z = np.zeros((0, 5), np.float32)
    t = np.zeros((0,), np.int64)
    loss, grad = _ce(z, t, backend, reduction="none", return_grad=True)
    assert loss.shape == (0,) and grad.shape == (0, 5)
    assert_dtype(loss, np.float32)
    loss = _ce(z, t, backend, reduction="sum")
    assert loss.shape == () and float(loss) == 0.0
    loss = _ce(z, t, backend, reduction="mean")
    assert loss.shape == () and np.isnan(loss)


def test_large_batch_float32(backend):
    z = sample((1823, 781), np.float32, seed=17)
    t = _index_target((1823,), 781, seed=18, n_ignore=5)
    exp_loss, exp_grad = ref.cross_entropy(z, t)
    loss, grad = _ce(z, t, backend, return_grad=True)
    assert_close(loss, exp_loss, np.float32)
    assert_close(grad, exp_grad, np.float32)
    z0 = np.ascontiguousarray(z.T)
    exp_loss, exp_grad = ref.cross_entropy(z0, t, axis=0, reduction="sum")
    loss, grad = _ce(z0, t, backend, axis=0, reduction="sum", return_grad=True)
    assert_close(loss, exp_loss, np.float32)
    assert_close(grad, exp_grad, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_axis_3d_4d(backend, dtype):
    for shape in ((3, 4, 5), (2, 3, 4, 5)):
        for axis in range(-len(shape), len(shape)):
            C = shape[axis]
            z = sample(shape, dtype, seed=axis + 30)
            t = _index_target(_wo_axis(shape, axis), C, seed=axis + 40)
            p = ref.softmax(sample(shape, np.float64, seed=axis + 50), axis=axis).astype(dtype)
            for target in (t, p):
                for reduction in REDUCTIONS:
                    el, eg = ref.cross_entropy(z, target, axis=axis, reduction=reduction,
                                               label_smoothing=0.05)
                    loss, grad = _ce(z, target, backend, axis=axis, reduction=reduction,
                                     label_smoothing=0.05, return_grad=True)
                    msg = f"{shape} axis={axis} {target.dtype} {reduction}"
                    assert_close(loss, el, dtype, msg=msg)
                    assert_close(grad, eg, dtype, msg=msg)


def _class_cases():
    from helpers import SIZES_FULL, SIZES_SMALL

    return [pytest.param(d, n, id=f"{np.dtype(d).name}-C{n}") for d in DTYPES
            for n in (SIZES_FULL if d == np.float32 else SIZES_SMALL) if n > 0]


@pytest.mark.parametrize("dtype,C", _class_cases())
def test_class_count_edges(backend, dtype, C):
    z = sample((5, C), dtype, seed=C)
    t = _index_target((5,), C, seed=C + 1)
    el, eg = ref.cross_entropy(z, t, label_smoothing=0.1)
    loss, grad = _ce(z, t, backend, label_smoothing=0.1, return_grad=True)
    assert_close(loss, el, dtype)
    assert_close(grad, eg, dtype)
    zt = np.ascontiguousarray(z.T)
    el, eg = ref.cross_entropy(zt, t, axis=0, reduction="none")
    loss, grad = _ce(zt, t, backend, axis=0, reduction="none", return_grad=True)
    assert_close(loss, el, dtype)
    assert_close(grad, eg, dtype)


def test_reduced_loss_is_0d_ndarray():
    z = sample((4, 3), np.float32, seed=20)
    t = np.array([0, 1, 2, 1])
    for reduction in ("mean", "sum"):
        loss = ga.cross_entropy(z, t, reduction=reduction)
        assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == np.float32
        loss, grad = ga.cross_entropy(z, t, reduction=reduction, return_grad=True)
        assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == np.float32
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float32
    loss = ga.cross_entropy(z, t, reduction="none")
    assert isinstance(loss, np.ndarray) and loss.shape == (4,) and loss.dtype == np.float32
