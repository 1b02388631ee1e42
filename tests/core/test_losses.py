"""The losses beyond plain cross-entropy: cross_entropy with class weights, z-loss,
softcap and its log-sum-exp; nll_loss; binary cross-entropy on logits and on
probabilities. Each against the independent float64 reference, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import assert_dtype, grad_fd, no_warnings, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

REDUCTIONS = ("mean", "sum", "none")


def _on(backend, *arrays):
    return [None if a is None else to_backend(a, backend) for a in arrays]


def _index_target(rows_shape, C, seed, ignore=-100):
    t = np.random.default_rng(seed).integers(0, C, size=rows_shape)
    if t.size > 2:
        t.reshape(-1)[2] = ignore
    return t


# (logits shape, class axis)
LAYOUTS = [((6, 9), -1), ((9, 5), 0), ((3, 7, 4), 1)]
EXTRAS = [
    {"weight": True},
    {"z_loss": 1e-2},
    {"softcap": 2.5},
    {"weight": True, "z_loss": 0.1, "softcap": 1.5, "label_smoothing": 0.2},
]


def _extra(kw, C, dtype):
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = np.random.default_rng(C).uniform(0.2, 2.0, C).astype(dtype)
    return kw


# each option alone in float32; all of them together in every dtype
OPTION_CASES = [(e, np.float32) for e in EXTRAS] + [(EXTRAS[-1], dt) for dt in DTYPES if dt != np.float32]


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("extra,dtype", OPTION_CASES, ids=["+".join(e) + f"-{np.dtype(d).name}" for e, d in OPTION_CASES])
def test_cross_entropy_weight_zloss_softcap_lse(backend, extra, dtype, kind):
    for shape, axis in LAYOUTS:
        C = shape[axis]
        z = sample(shape, dtype, seed=C)
        rows = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
        if kind == "index":
            t = _index_target(rows, C, seed=C)
        else:
            t = np.moveaxis(np.random.default_rng(C).dirichlet(np.ones(C), rows), -1, axis).astype(dtype)
        kw = _extra(extra, C, dtype)
        for reduction in REDUCTIONS:
            el, eg, elz = ref.cross_entropy(z, t, axis=axis, reduction=reduction, return_lse=True, **kw)
            zb, tb = _on(backend, z, t)
            kwb = dict(kw, weight=_on(backend, kw["weight"])[0]) if "weight" in kw else kw
            loss, grad, lse = ga.cross_entropy(zb, tb, axis, reduction=reduction, return_grad=True, return_lse=True,
                                               backend=backend, **kwb)
            what = f"{shape} axis={axis} {reduction} {kw}"
            assert_dtype(to_numpy(loss), dtype)
            assert_close(to_numpy(loss), el, dtype, msg=f"loss {what}")
            assert_close(to_numpy(grad), eg, dtype, msg=f"grad {what}")
            assert to_numpy(lse).dtype == np.dtype(np.float64 if dtype == np.float64 else np.float32)
            assert_close(to_numpy(lse), elz, np.float32 if dtype == np.float16 else dtype, msg=f"lse {what}")


def test_cross_entropy_returns_what_was_asked(backend):
    z = sample((4, 6), np.float32)
    t = np.array([0, 5, 2, 1])
    zb, tb = _on(backend, z, t)
    loss = ga.cross_entropy(zb, tb, backend=backend)
    assert np.ndim(to_numpy(loss)) == 0
    loss2, lse = ga.cross_entropy(zb, tb, return_lse=True, backend=backend)
    assert to_numpy(lse).shape == (4,)
    assert_close(to_numpy(loss2), to_numpy(loss), np.float32)
    assert len(ga.cross_entropy(zb, tb, return_grad=True, return_lse=True, backend=backend)) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extremes_with_weight_zloss_softcap(backend, dtype):
    # logits of +-1e30 lose nothing; under a softcap even +-inf logits give a finite loss
    big = 1e30
    z = np.array([[big, big, -big], [-big, -big, -big], [np.inf, 0.0, -np.inf], [1.0, np.nan, 0.0]], dtype)
    t = np.array([0, 2, 0, 1])
    w = np.array([1.0, 2.0, 0.5], dtype)
    for kw in ({"weight": w}, {"z_loss": 1e-4}, {"softcap": 30.0, "weight": w, "z_loss": 1e-3}):
        el, eg = ref.cross_entropy(z, t, reduction="none", **kw)
        zb, tb = _on(backend, z, t)
        kwb = dict(kw, weight=_on(backend, kw["weight"])[0]) if "weight" in kw else kw
        with no_warnings():
            loss, grad = ga.cross_entropy(zb, tb, reduction="none", return_grad=True, backend=backend, **kwb)
        assert_close(to_numpy(loss), el, dtype, msg=str(kw))
        assert_close(to_numpy(grad), eg, dtype, msg=str(kw))
    capped = to_numpy(ga.cross_entropy(*_on(backend, z[2:3], t[2:3]), reduction="none", softcap=5.0, backend=backend))
    assert np.isfinite(capped).all()


def test_cross_entropy_gradient_matches_finite_differences_with_every_option():
    z = sample((3, 5), np.float64, seed=4, kinks=False)
    t = np.array([1, -100, 4])
    kw = {"weight": np.array([0.5, 1.0, 2.0, 1.5, 0.7]), "z_loss": 0.05, "softcap": 2.0, "label_smoothing": 0.1}
    _, grad = ga.cross_entropy(z, t, return_grad=True, **kw)
    fd = grad_fd(lambda v: float(ga.cross_entropy(v, t, **kw)), z)
    assert_close(grad, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_loss_matches_reference_and_composes_to_cross_entropy(backend, dtype, reduction):
    for shape, axis in LAYOUTS:
        C = shape[axis]
        rows = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
        t = _index_target(rows, C, seed=C)
        w = np.random.default_rng(1).uniform(0.5, 2.0, C).astype(dtype)
        zb, tb, wb = _on(backend, sample(shape, dtype, seed=C), t, w)
        lp = ga.log_softmax(zb, axis, backend=backend)
        loss, grad = ga.nll_loss(lp, tb, axis, weight=wb, reduction=reduction, return_grad=True, backend=backend)
        el, eg = ref.nll_loss(to_numpy(lp), t, axis=axis, reduction=reduction, weight=w)
        assert_dtype(to_numpy(loss), dtype)
        assert_close(to_numpy(loss), el, dtype, msg=f"{shape} axis={axis}")
        assert_close(to_numpy(grad), eg, dtype, msg=f"{shape} axis={axis}")
        ce = ga.cross_entropy(zb, tb, axis, weight=wb, reduction=reduction, backend=backend)
        assert_close(to_numpy(loss), to_numpy(ce).astype(np.float64), dtype)


def test_nll_loss_everything_ignored_is_nan_with_zero_gradient(backend):
    lp = to_backend(np.log(np.full((3, 4), 0.25)), backend)
    loss, grad = ga.nll_loss(lp, to_backend(np.full(3, -100), backend), return_grad=True, backend=backend)
    assert np.isnan(to_numpy(loss)) and not to_numpy(grad).any()


def _bce_case(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    z = sample(shape, dtype, seed=seed, scale=6.0)
    t = rng.uniform(0, 1, shape).astype(dtype)
    t.reshape(-1)[:4] = [0, 1, 0, 1][: t.size]
    return z, t


# (shape, weight shape, pos_weight shape): None for absent
BCE_CASES = [
    ((5, 8), None, None),
    ((5, 8), (8,), (8,)),
    ((4, 3, 6), (4, 1, 1), (6,)),
    ((7,), (), None),
    ((), None, ()),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits(backend, dtype, reduction):
    for k, (shape, wshape, pwshape) in enumerate(BCE_CASES):
        z, t = _bce_case(shape, dtype, seed=k)
        rng = np.random.default_rng(10 + k)
        w = None if wshape is None else rng.uniform(0.1, 2.0, wshape).astype(dtype)
        pw = None if pwshape is None else rng.uniform(0.0, 3.0, pwshape).astype(dtype)
        el, eg = ref.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw, reduction=reduction)
        zb, tb, wb, pwb = _on(backend, z, t, w, pw)
        loss, grad = ga.binary_cross_entropy_with_logits(zb, tb, weight=wb, pos_weight=pwb, reduction=reduction,
                                                         return_grad=True, backend=backend)
        what = f"{shape} w={wshape} pw={pwshape}"
        assert_dtype(to_numpy(loss), dtype)
        assert_close(to_numpy(loss), el, dtype, msg=what)
        assert_close(to_numpy(grad), eg, dtype, msg=what)
        plain = ga.binary_cross_entropy_with_logits(zb, tb, weight=wb, pos_weight=pwb, reduction=reduction, backend=backend)
        assert_close(to_numpy(plain), el, dtype, msg=what)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits_at_the_limits(backend, dtype):
    big = float(np.finfo(dtype).max) / 2
    z = np.array([big, -big, np.inf, -np.inf, 0.0, np.nan, 1e-30, -40.0], dtype)
    for tv in (0.0, 1.0, 0.25):
        t = np.full(z.shape, tv, dtype)
        pw = np.full(z.shape, 2.0, dtype)
        el, eg = ref.binary_cross_entropy_with_logits(z, t, pos_weight=pw, reduction="none")
        with no_warnings():
            loss, grad = ga.binary_cross_entropy_with_logits(*_on(backend, z, t), pos_weight=_on(backend, pw)[0],
                                                             reduction="none", return_grad=True, backend=backend)
        assert_close(to_numpy(loss), el, dtype, msg=f"t={tv}")
        assert_close(to_numpy(grad), eg, dtype, msg=f"t={tv}")
    # exact limits: a confident right answer costs 0, at +-inf too
    loss = to_numpy(ga.binary_cross_entropy_with_logits(*_on(backend, np.array([np.inf, -np.inf], dtype),
                                                                np.array([1.0, 0.0], dtype)), reduction="none",
                                                        backend=backend))
    assert (loss == 0).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_on_probabilities(backend, dtype, reduction):
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, (6, 5)).astype(dtype)
    p.reshape(-1)[:4] = [0.0, 1.0, 1.0, 0.0]
    t = rng.uniform(0, 1, (6, 5)).astype(dtype)
    t.reshape(-1)[:4] = [1.0, 0.0, 1.0, 0.0]
    w = rng.uniform(0.5, 1.5, (5,)).astype(dtype)
    el, eg = ref.binary_cross_entropy(p, t, weight=w, reduction=reduction)
    with no_warnings():
        loss, grad = ga.binary_cross_entropy(*_on(backend, p, t), weight=_on(backend, w)[0], reduction=reduction,
                                             return_grad=True, backend=backend)
    assert np.isfinite(to_numpy(loss)).all()  # each log clamped at -100: p = 0 or 1 gives a finite loss
    assert_close(to_numpy(loss), el, dtype)
    assert_close(to_numpy(grad), eg, dtype)


def test_binary_cross_entropy_outside_0_1_is_nan(backend):
    p = np.array([-0.5, 0.5, 1.5, np.nan])
    t = np.array([0.0, 1.0, 1.0, 0.0])
    with no_warnings():
        loss, grad = ga.binary_cross_entropy(*_on(backend, p, t), reduction="none", return_grad=True, backend=backend)
    assert np.isnan(to_numpy(loss)).tolist() == [True, False, True, True]
    assert np.isnan(to_numpy(grad)).tolist() == [True, False, True, True]
    assert np.isnan(to_numpy(ga.binary_cross_entropy(*_on(backend, p, t), backend=backend)))


def test_binary_losses_of_empty_arrays(backend):
    z = np.empty((0, 3))
    zb = to_backend(z, backend)
    assert np.isnan(to_numpy(ga.binary_cross_entropy_with_logits(zb, zb, backend=backend)))
    assert to_numpy(ga.binary_cross_entropy(zb, zb, reduction="sum", backend=backend)) == 0
    loss, grad = ga.binary_cross_entropy_with_logits(zb, zb, reduction="none", return_grad=True, backend=backend)
    assert to_numpy(loss).shape == (0, 3) and to_numpy(grad).shape == (0, 3)


def test_loss_gradients_match_finite_differences():
    z, t = _bce_case((3, 4), np.float64, seed=7)
    w, pw = np.array([0.5, 1.0, 2.0, 1.5]), np.array([1.0, 0.0, 3.0, 0.5])
    _, grad = ga.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw, return_grad=True)
    fd = grad_fd(lambda v: float(ga.binary_cross_entropy_with_logits(v, t, weight=w, pos_weight=pw)), z)
    assert_close(grad, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)
    p = np.random.default_rng(2).uniform(0.05, 0.95, (3, 4))
    _, grad = ga.binary_cross_entropy(p, t, weight=w, reduction="sum", return_grad=True)
    fd = grad_fd(lambda v: float(ga.binary_cross_entropy(v, t, weight=w, reduction="sum")), p)
    assert_close(grad, fd, np.float64, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda z, t: ga.cross_entropy(z, t, weight=np.ones(4)), ValueError, "one weight per class"),
        (lambda z, t: ga.cross_entropy(z, t, weight=np.ones(5, np.int32)), TypeError, "weight"),
        (lambda z, t: ga.cross_entropy(z, t, softcap=0.0), ValueError, "softcap"),
        (lambda z, t: ga.cross_entropy(z, t, softcap=-1.0), ValueError, "softcap"),
        (lambda z, t: ga.cross_entropy(z, t, softcap=np.nan), ValueError, "softcap"),
        (lambda z, t: ga.cross_entropy(z, t, softcap=1e300), ValueError, "softcap"),
        (lambda z, t: ga.cross_entropy(z, t, softcap="2"), TypeError, "softcap"),
        (lambda z, t: ga.cross_entropy(z, t, z_loss=-1e-4), ValueError, "z_loss"),
        (lambda z, t: ga.cross_entropy(z, t, z_loss=np.inf), ValueError, "z_loss"),
        (lambda z, t: ga.nll_loss(z, t.astype(np.float32)), TypeError, "class indices"),
        (lambda z, t: ga.nll_loss(z, t, reduction="avg"), ValueError, "reduction"),
        (lambda z, t: ga.binary_cross_entropy_with_logits(z, np.zeros((3, 5))), ValueError, "target"),
        (lambda z, t: ga.binary_cross_entropy_with_logits(z, np.zeros((3, 5), np.int64)), TypeError, "target"),
        (lambda z, t: ga.binary_cross_entropy_with_logits(z, z, weight=np.ones(3)), ValueError, "broadcasts"),
        (lambda z, t: ga.binary_cross_entropy_with_logits(z, z, pos_weight=-np.ones(5)), ValueError, "pos_weight"),
        (lambda z, t: ga.binary_cross_entropy(z, z, reduction=None), ValueError, "reduction"),
    ],
)
def test_bad_loss_arguments_say_what_is_accepted(call, error, words):
    z = np.zeros((4, 5), np.float32)
    t = np.array([0, 1, 2, 3])
    with pytest.raises(error, match=words):
        call(z, t)


# ---------------------------------------------------------------- Dask
@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("extra", EXTRAS, ids=lambda e: "+".join(e))
def test_dask_cross_entropy_with_every_option_over_a_chunked_class_axis(extra, kind):
    da = pytest.importorskip("dask.array")
    z = sample((7, 9), np.float32, seed=5)
    t = _index_target((7,), 9, seed=5) if kind == "index" else np.random.default_rng(5).dirichlet(np.ones(9), 7)
    kw = _extra(extra, 9, np.float32)
    for reduction in REDUCTIONS:
        el, eg, elz = ref.cross_entropy(z, t, reduction=reduction, return_lse=True, **kw)
        dt = da.from_array(t, chunks=3 if kind == "index" else (3, 4))
        loss, grad, lse = ga.cross_entropy(da.from_array(z, chunks=(3, 4)), dt, reduction=reduction,
                                           return_grad=True, return_lse=True, **kw)
        assert_close(loss.compute(), el, np.float32, msg=f"{reduction} {kw}")
        assert_close(grad.compute(), eg, np.float32, msg=f"{reduction} {kw}")
        assert_close(lse.compute(), elz, np.float32, msg=f"{reduction} {kw}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dask_nll_and_binary_losses(reduction):
    da = pytest.importorskip("dask.array")
    lp = ga.log_softmax(sample((7, 9), np.float64, seed=6))
    t = _index_target((7,), 9, seed=6)
    w = np.random.default_rng(6).uniform(0.5, 2.0, 9)
    loss, grad = ga.nll_loss(da.from_array(lp, chunks=(3, 4)), da.from_array(t, chunks=3), weight=w,
                             reduction=reduction, return_grad=True)
    el, eg = ref.nll_loss(lp, t, weight=w, reduction=reduction)
    assert_close(loss.compute(), el, np.float64)
    assert_close(grad.compute(), eg, np.float64)
    z, tt = _bce_case((6, 8), np.float64, seed=6)
    pw = np.linspace(0.0, 3.0, 8)
    loss, grad = ga.binary_cross_entropy_with_logits(da.from_array(z, chunks=(4, 3)), da.from_array(tt, chunks=(4, 3)),
                                                     weight=w[:1], pos_weight=pw, reduction=reduction, return_grad=True)
    el, eg = ref.binary_cross_entropy_with_logits(z, tt, weight=w[:1], pos_weight=pw, reduction=reduction)
    assert_close(loss.compute(), el, np.float64)
    assert_close(grad.compute(), eg, np.float64)
    p = np.random.default_rng(7).uniform(0, 1, (6, 8))
    loss, grad = ga.binary_cross_entropy(da.from_array(p, chunks=(4, 3)), da.from_array(tt, chunks=(4, 3)),
                                         reduction=reduction, return_grad=True)
    el, eg = ref.binary_cross_entropy(p, tt, reduction=reduction)
    assert_close(loss.compute(), el, np.float64)
    assert_close(grad.compute(), eg, np.float64)
    with pytest.raises(ValueError, match="pos_weight"):
        ga.binary_cross_entropy_with_logits(da.from_array(z), da.from_array(tt), pos_weight=-pw)


def test_binary_cross_entropy_with_logits_weight_zero_drops_the_element_but_not_nan(backend):
    z = np.array([np.inf, -np.inf, 3.0, np.nan, np.nan])
    t = np.array([0.0, 1.0, 0.5, 0.5, 0.5])
    w = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    el, eg = ref.binary_cross_entropy_with_logits(z, t, weight=w, reduction="none")
    loss, grad = ga.binary_cross_entropy_with_logits(*_on(backend, z, t), weight=_on(backend, w)[0], reduction="none",
                                                     return_grad=True, backend=backend)
    assert to_numpy(loss)[:3].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(to_numpy(loss)[3:]).all()
    assert_close(to_numpy(loss), el, np.float64)
    assert_close(to_numpy(grad), eg, np.float64)


# ---------------------------------------------------------------- torch CPU tensors
def test_torch_cpu_tensors_come_back_as_tensors_and_grad_is_refused():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-3, 3, 12).reshape(3, 4)
    t = torch.tensor([0, 3, 1])
    for res in (ga.relu(x), ga.softmax(x, 0), ga.cross_entropy(x, t), ga.binary_cross_entropy_with_logits(x, torch.zeros(3, 4))):
        assert isinstance(res, torch.Tensor)
    assert torch.equal(ga.relu(x), torch.relu(x))
    out = torch.empty(3, 4)
    ga.silu(x, out=out)
    assert torch.allclose(out, torch.nn.functional.silu(x), atol=1e-6)
    with pytest.raises(TypeError, match="gpu_act.torch"):
        ga.gelu(x.clone().requires_grad_())
