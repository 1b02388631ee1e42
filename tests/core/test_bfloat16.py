"""bfloat16 (ml_dtypes) through every public function on NumPy arrays: computed
in float32 and rounded once, against the float64 reference of the bfloat16
inputs rounded to bfloat16 (``assert_close`` rounds the reference to the dtype)."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import OP_DEFAULTS, no_warnings, op_id, sample
from tolerances import assert_close

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 3.0, -3.0]


def _bf16(x):
    return np.asarray(x, np.float64).astype(BF16)


def _f64(x):
    return np.asarray(x).astype(np.float64)


def _with_specials(shape, seed):
    x = sample(shape, np.float64, seed=seed).reshape(-1)
    x[1 : 1 + len(SPECIAL)] = SPECIAL
    return _bf16(x.reshape(shape))


@pytest.mark.parametrize("name, params", OP_DEFAULTS, ids=[op_id(n, p) for n, p in OP_DEFAULTS])
def test_elementwise_forward_and_backward(name, params):
    x = _with_specials((7, 33), seed=1)
    g = _bf16(sample((7, 33), np.float64, seed=2))
    with no_warnings():
        y = getattr(ga, name)(x, **params)
        d = getattr(ga, name + "_backward")(g, x, **params)
    assert y.dtype == BF16 and d.dtype == BF16
    assert_close(y, ref.forward(name, _f64(x), **params), BF16, msg=name)
    assert_close(d, ref.backward(name, _f64(g), _f64(x), **params), BF16, msg=name)


@pytest.mark.parametrize("name", ["gelu", "relu"])
def test_elementwise_views_and_in_place(name):
    # the layouts go through the same codec loads and stores for every formula
    x = _with_specials((7, 33), seed=1)
    xt = x.T
    assert_close(getattr(ga, name)(xt), ref.forward(name, _f64(xt)), BF16)
    x2 = x.copy()
    getattr(ga, name)(x2, out=x2)
    np.testing.assert_array_equal(x2.view(np.uint16), getattr(ga, name)(x).view(np.uint16))


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family(axis):
    x = _with_specials((9, 40), seed=3)
    x[4] = _bf16([1e30] * 40)  # equal huge entries: each 1/40
    xf = _f64(x)
    for t in (1.0, 2.5):
        assert_close(ga.softmax(x, axis, temperature=t), ref.softmax(xf, axis, t), BF16)
        assert_close(ga.log_softmax(x, axis, temperature=t), ref.log_softmax(xf, axis, t), BF16)
    y = ga.softmax(x, axis)
    ly = ga.log_softmax(x, axis)
    g = _bf16(sample(x.shape, np.float64, seed=4))
    assert_close(ga.softmax_backward(g, y, axis), ref.softmax_backward(_f64(g), _f64(y), axis), BF16)
    assert_close(ga.log_softmax_backward(g, ly, axis), ref.log_softmax_backward(_f64(g), _f64(ly), axis), BF16)


def test_losses():
    z = _bf16(sample((6, 11), np.float64, seed=5))
    t = np.array([0, 10, -100, 3, 4, 5])
    w = _bf16(np.linspace(0.5, 1.5, 11))
    for kw in ({}, {"weight": w, "z_loss": 1e-3, "softcap": 4.0, "label_smoothing": 0.1}):
        loss, grad, lse = ga.cross_entropy(z, t, return_grad=True, return_lse=True, **kw)
        kr = dict(kw, weight=_f64(w)) if kw else kw
        el, eg, elz = ref.cross_entropy(_f64(z), t, return_lse=True, **kr)
        assert loss.dtype == BF16 and grad.dtype == BF16 and lse.dtype == np.float32
        assert_close(loss, el, BF16)
        assert_close(grad, eg, BF16)
        assert_close(lse, elz, np.float32)
    p = _bf16(np.random.default_rng(6).dirichlet(np.ones(11), 6))
    assert_close(ga.cross_entropy(z, p, reduction="none"), ref.cross_entropy(_f64(z), _f64(p), reduction="none")[0], BF16)
    lp = ga.log_softmax(z)
    assert_close(ga.nll_loss(lp, t), ref.nll_loss(_f64(lp), t)[0], BF16)
    tt = _bf16(np.random.default_rng(7).uniform(0, 1, z.shape))
    loss, grad = ga.binary_cross_entropy_with_logits(z, tt, pos_weight=w, reduction="sum", return_grad=True)
    el, eg = ref.binary_cross_entropy_with_logits(_f64(z), _f64(tt), pos_weight=_f64(w), reduction="sum")
    assert_close(loss, el, BF16)
    assert_close(grad, eg, BF16)
    probs = ga.sigmoid(z)
    assert_close(ga.binary_cross_entropy(probs, tt), ref.binary_cross_entropy(_f64(probs), _f64(tt))[0], BF16)


def test_maxout_prelu_rrelu():
    x = _with_specials((4, 12, 3), seed=8)
    assert_close(ga.maxout(x, 3, axis=1), ref.maxout(_f64(x), 3, axis=1), BF16)
    g = _bf16(sample((4, 4, 3), np.float64, seed=9))
    assert_close(ga.maxout_backward(g, x, 3, axis=1), ref.maxout_backward(_f64(g), _f64(x), 3, axis=1), BF16)
    w = _bf16([0.25] * 12)
    assert_close(ga.prelu(x, w), ref.prelu(_f64(x), _f64(w)), BF16)
    gx, gw = ga.prelu_backward(_bf16(np.ones(x.shape)), x, w)
    rgx, rgw = ref.prelu_backward(np.ones(x.shape), _f64(x), _f64(w))
    assert_close(gx, rgx, BF16)
    assert_close(gw, rgw, BF16)
    y = ga.rrelu(x, training=True, seed=3)
    a = ref.rrelu_uniforms(x.shape, 3) * (1 / 3 - 1 / 8) + 1 / 8
    assert_close(y, np.where(_f64(x) > 0, _f64(x), a * _f64(x)), BF16)


def test_dask_chunks():
    da = pytest.importorskip("dask.array")
    x = _with_specials((6, 40), seed=10)
    got = ga.softmax(da.from_array(x, chunks=(3, 16)))
    assert got.dtype == BF16
    assert_close(got.compute(), ref.softmax(_f64(x)), BF16)
    assert_close(ga.gelu(da.from_array(x, chunks=(4, 7))).compute(), ref.forward("gelu", _f64(x)), BF16)


def test_rounding_is_ml_dtypes_round_to_nearest_even():
    # silu's float32 result goes through the kernel's store, which must round as
    # ml_dtypes' astype does (ties to even, up to inf); a NaN stays NaN
    bits = np.random.default_rng(11).integers(0, 2**32, 1 << 17, dtype=np.uint64).astype(np.uint32)
    f = bits.view(np.float32)
    f = f[np.isfinite(f)]
    from gpu_act.backends.cpu import _codecs, _kernels

    assert _codecs.codec(BF16).name == "bf16"
    x = f.astype(BF16)
    y = ga.silu(x)
    want = ga.silu(x.astype(np.float32)).astype(BF16)
    np.testing.assert_array_equal(y.view(np.uint16), want.view(np.uint16))
    assert _kernels.PARALLEL_MIN <= f.size
    assert np.isnan(ga.silu(_bf16([np.nan, -np.nan])).astype(np.float32)).all()


def test_bfloat16_is_refused_where_not_computed(monkeypatch):
    be = pytest.importorskip("gpu_act.backends.cpu")
    monkeypatch.setattr(be, "BFLOAT16", False)
    with pytest.raises(TypeError, match="bfloat16.*does not compute"):
        ga.relu(_bf16([1.0]))
