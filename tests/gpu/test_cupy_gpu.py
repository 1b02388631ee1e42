"""The CuPy backend on a real device: every op x dtype x kernel variant
against the float64 reference, non-contiguous / offset / zero-size inputs,
out= and in place, CuPy non-default streams, a 262,144-column row and
special values. Marked ``gpu``: skipped where no GPU backend is available."""

import numpy as np
import pytest
import reference as R
from helpers import OP_DEFAULTS, OP_VARIANTS, op_id, sample
from tolerances import DTYPES, assert_close

import gpu_act as ga

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("cupy" not in ga.available_backends(), reason="the cupy backend needs CuPy and a CUDA device"),
]

cp = pytest.importorskip("cupy")
launch = pytest.importorskip("gpu_act.backends.cupy._config")

TEAMS = ("thread", "warp", "block")


@pytest.fixture(params=TEAMS)
def team(request, monkeypatch):
    """Force one row-reduction variant for every row length and layout."""
    monkeypatch.setattr(launch, "team_for", lambda *a: request.param)
    return request.param


def _dev(a):
    return cp.asarray(a)


def _np(a):
    assert isinstance(a, cp.ndarray), f"result is {type(a).__name__}, expected cupy.ndarray"
    return cp.asnumpy(a)


def _layouts(x):
    """(name, device view) of x: contiguous, transposed, strided, reversed, misaligned by one element."""
    d = _dev(x)
    big = cp.zeros((x.shape[0] * 2, x.shape[1] * 2 + 1), x.dtype)
    big[::2, 1:-1:2] = d
    flat = cp.zeros(x.size + 1, x.dtype)
    flat[1:] = d.reshape(-1)
    return [
        ("contiguous", d),
        ("transposed", cp.asfortranarray(d)),
        ("strided", big[::2, 1:-1:2]),
        ("reversed", cp.ascontiguousarray(d[::-1, ::-1])[::-1, ::-1]),
        ("offset", flat[1:].reshape(x.shape)),
    ]


# ---------------------------------------------------------------- elementwise
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=[op_id(n, p) for n, p in OP_VARIANTS])
def test_elementwise(name, params, dtype):
    x = sample((33, 65), dtype, seed=3)
    g = sample((33, 65), dtype, seed=4, scale=1.0, kinks=False)
    want_f = R.forward(name, x, **params)
    want_b = R.backward(name, g, x, **params)
    for layout, xd in _layouts(x):
        assert_close(_np(getattr(ga, name)(xd, **params)), want_f, dtype, msg=f"{name} {layout}")
        gd = _dev(g)
        assert_close(_np(getattr(ga, name + "_backward")(gd, xd, **params)), want_b, dtype, msg=f"{name}_backward {layout}")
    # out= non-contiguous, and in place
    out = cp.empty((65, 33), dtype).T
    r = getattr(ga, name)(_dev(x), **params, out=out)
    assert r is out or r.data.ptr == out.data.ptr
    assert_close(_np(out), want_f, dtype, msg=f"{name} out=")
    xi = _dev(x)
    getattr(ga, name)(xi, **params, out=xi)
    assert_close(_np(xi), want_f, dtype, msg=f"{name} in place")


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_elementwise(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 3.0, -3.0, 6.0, 20.0, 30.0], dtype)
    for name, params in OP_VARIANTS:
        assert_close(_np(getattr(ga, name)(_dev(x), **params)), R.forward(name, x, **params), dtype, msg=name)
        assert_close(_np(getattr(ga, name + "_backward")(_dev(np.ones_like(x)), _dev(x), **params)),
                     R.derivative(name, x, **params), dtype, msg=name + "_backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_and_rrelu(dtype):
    x = sample((4, 5, 7), dtype, seed=5)
    g = sample((4, 5, 7), dtype, seed=6, scale=1.0, kinks=False)
    w = np.array([0.1, -0.2, 0.3, 0.0, 2.0], dtype)
    assert_close(_np(ga.prelu(_dev(x), _dev(w))), R.prelu(x, w), dtype)
    gx, gw = ga.prelu_backward(_dev(g), _dev(x), _dev(w))
    rgx, rgw = R.prelu_backward(g, x, w)
    assert_close(_np(gx), rgx, dtype)
    assert_close(_np(gw), rgw, dtype, msg="weight grad")
    for training in (False, True):
        kw = dict(lower=0.1, upper=0.3, training=training, seed=99)
        assert_close(_np(ga.rrelu(_dev(x), **kw)), R.rrelu(x, **kw), dtype, msg=f"rrelu training={training}")
        assert_close(_np(ga.rrelu_backward(_dev(g), _dev(x), **kw)), R.rrelu_backward(g, x, **kw), dtype)
    # the device generator reproduces the host's slopes exactly
    kw = dict(lower=0.1, upper=0.3, training=True, seed=7)
    np.testing.assert_array_equal(_np(ga.rrelu(_dev(x), **kw)), ga.rrelu(x, **kw, backend="cpu"))


# ---------------------------------------------------------------- softmax family
ROW_CASES = [((5, 1), -1), ((7, 31), -1), ((3, 33), -1), ((4, 1024), -1), ((2, 4097), -1), ((65, 3), 0),
             ((9, 40, 6), 1), ((3, 4, 1025), 2), ((1025, 3), 0)]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_every_variant(team, op, dtype, temperature):
    fwd, bwd = getattr(R, op), getattr(R, op + "_backward")
    for shape, axis in ROW_CASES:
        x = sample(shape, dtype, seed=sum(shape))
        want = fwd(x, axis=axis, temperature=temperature)
        xd = _dev(x)
        y = getattr(ga, op)(xd, axis=axis, temperature=temperature)
        assert_close(_np(y), want, dtype, msg=f"{op} {team} {shape} axis={axis}")
        g = sample(shape, dtype, seed=1, scale=1.0, kinks=False)
        yh = want.astype(dtype)
        got = getattr(ga, op + "_backward")(_dev(g), _dev(yh), axis=axis, temperature=temperature)
        assert_close(_np(got), bwd(g, yh, axis=axis, temperature=temperature), dtype, msg=f"bwd {team} {shape}")
        # strided input and output, and in place
        big = cp.zeros(tuple(2 * s for s in shape), dtype)
        view = big[tuple(slice(None, None, 2) for _ in shape)]
        view[...] = xd
        out = cp.zeros(tuple(2 * s for s in shape), dtype)[tuple(slice(1, None, 2) for _ in shape)]
        getattr(ga, op)(view, axis=axis, temperature=temperature, out=out)
        assert_close(_np(out), want, dtype, msg=f"{op} strided {team} {shape}")
        getattr(ga, op)(xd, axis=axis, temperature=temperature, out=xd)
        assert_close(_np(xd), want, dtype, msg=f"{op} in place {team} {shape}")


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_special_rows(team, op, dtype):
    inf, nan = np.inf, np.nan
    rows = [[0.0, 1.0, 2.0, -inf], [nan, 1.0, 2.0, 3.0], [inf, 1.0, 2.0, 3.0], [-inf] * 4, [-inf, -inf, 5.0, -inf],
            [1e4, -1e4, 0.0, 1e4]]
    x = np.array(rows, dtype)
    assert_close(_np(getattr(ga, op)(_dev(x))), getattr(R, op)(x), dtype)
    # the same rows along a strided axis
    assert_close(_np(getattr(ga, op)(_dev(x.T.copy()), axis=0)), getattr(R, op)(x.T, axis=0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_row_262144(dtype):
    n = 262144
    x = sample((2, n), dtype, seed=11, scale=5.0)
    x[1, 12345] = np.inf  # second row all NaN
    for op in ("softmax", "log_softmax"):
        y = getattr(ga, op)(_dev(x))
        assert_close(_np(y), getattr(R, op)(x), dtype, msg=op)
        g = sample((2, n), dtype, seed=12, scale=1.0, kinks=False)
        yh = getattr(R, op)(x).astype(dtype)
        got = getattr(ga, op + "_backward")(_dev(g), _dev(yh))
        assert_close(_np(got), getattr(R, op + "_backward")(g, yh), dtype, msg=op + "_backward")
    t = np.array([3, 7])
    loss, grad = ga.cross_entropy(_dev(x[:1]), _dev(t[:1]), return_grad=True)
    rl, rg = R.cross_entropy(x[:1], t[:1])
    assert_close(_np(loss), rl, dtype)
    assert_close(_np(grad), rg, dtype)


# ---------------------------------------------------------------- cross-entropy, maxout
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_every_variant(team, dtype, reduction, label_smoothing):
    rng = np.random.default_rng(0)
    for shape, axis in (((6, 10), -1), ((6, 1500), -1), ((10, 40), 0), ((3, 5, 4), 1)):
        z = sample(shape, dtype, seed=2)
        rows = tuple(s for k, s in enumerate(shape) if k != axis % len(shape))
        t = rng.integers(0, shape[axis], rows)
        t.reshape(-1)[0] = -100
        kw = dict(axis=axis, reduction=reduction, label_smoothing=label_smoothing)
        loss, grad = ga.cross_entropy(_dev(z), _dev(t), return_grad=True, **kw)
        rl, rg = R.cross_entropy(z, t, **kw)
        assert_close(_np(loss), rl, dtype, msg=f"index loss {shape}")
        assert_close(_np(grad), rg, dtype, msg=f"index grad {shape}")
        for tdtype in {dtype, np.float64}:
            p = rng.random(shape).astype(tdtype)
            loss, grad = ga.cross_entropy(_dev(z), _dev(p), return_grad=True, **kw)
            rl, rg = R.cross_entropy(z, p, **kw)
            assert_close(_np(loss), rl, dtype, msg=f"prob loss {shape} {np.dtype(tdtype)}")
            assert_close(_np(grad), rg, dtype, msg=f"prob grad {shape}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_backend_functions(team, dtype):
    """The backend's loss functions themselves, as gpu_act.losses calls them, against the
    reference: cross-entropy with class weights, z-loss, softcap and lse (index targets
    along either axis, probabilities), check_targets, nll_loss, binary cross-entropy on
    logits (broadcast weight and pos_weight) and on probabilities, any_negative, total."""
    from gpu_act.backends import cupy as be

    rng = np.random.default_rng(1)
    C = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    z = sample((6, 40), dtype, seed=3)
    ctx = be.context(_dev(z), None)
    w = rng.uniform(0.5, 2.0, 40).astype(C)
    t = rng.integers(0, 40, 6)
    t[0] = -100
    count, denom = be.check_targets(ctx, "t", _dev(t), 40, -100, _dev(w))
    assert count == 5 and denom == pytest.approx(float(w[t[1:]].astype(np.float64).sum()), rel=1e-12)
    kw = dict(reduction="none", label_smoothing=0.1, weight=w, z_loss=1e-3, softcap=5.0, return_lse=True)
    for axis, zz in ((1, z), (0, np.ascontiguousarray(z.T))):
        rows, grad, lse = be.cross_entropy(ctx, _dev(zz), _dev(t), axis, True, -100, 0.1, _dev(w), 1e-3, 5.0,
                                           1.0 / denom, True, True)
        rl, rg, rlse = R.cross_entropy(zz, t, axis=axis, **kw)
        assert rows.dtype == C and lse.dtype == C and grad.dtype == np.dtype(dtype)
        assert_close(_np(rows), rl, dtype, msg=f"index rows axis={axis}")
        assert_close(_np(grad), rg / denom, dtype, msg=f"index grad axis={axis}")
        assert_close(_np(lse), rlse, dtype, msg=f"index lse axis={axis}")
    p = rng.random((6, 40)).astype(dtype)
    rows, grad, lse = be.cross_entropy(ctx, _dev(z), _dev(p), 1, False, -100, 0.0, _dev(w), 0.0, None, 1.0, True, False)
    rl, rg = R.cross_entropy(z, p, reduction="none", weight=w)
    assert lse is None
    assert_close(_np(rows), rl, dtype, msg="prob rows")
    assert_close(_np(grad), rg, dtype, msg="prob grad")
    tot = be.total(ctx, rows, 0.5, dtype)
    assert tot.shape == () and tot.dtype == np.dtype(dtype)
    assert_close(_np(tot), rl.sum() * 0.5, dtype, msg="total")
    lp = R.log_softmax(z).astype(dtype)
    rows, grad = be.nll_loss(ctx, _dev(lp), _dev(t), 1, -100, _dev(w), 0.25, True)
    rl, rg = R.nll_loss(lp, t, reduction="none", weight=w)
    assert_close(_np(rows), rl, dtype, msg="nll rows")
    assert_close(_np(grad), rg * 0.25, dtype, msg="nll grad")
    x = sample((5, 7), dtype, seed=4)
    tb = rng.random((5, 7)).astype(dtype)
    wb, pwb = rng.uniform(0.5, 2.0, (1, 7)).astype(dtype), rng.uniform(0.5, 2.0, (5, 1)).astype(np.float64)
    elems, grad = be.binary_cross_entropy(ctx, _dev(x), _dev(tb), _dev(wb), _dev(pwb), True, 0.5, True)
    rl, rg = R.binary_cross_entropy_with_logits(x, tb, wb, pwb, reduction="none")
    assert elems.dtype == C and grad.dtype == np.dtype(dtype)
    assert_close(_np(elems), rl, dtype, msg="bce logits")
    assert_close(_np(grad), rg * 0.5, dtype, msg="bce logits grad")
    assert be.any_negative(ctx, _dev(np.array([[1.0, -0.5]]))[:, ::-1])
    assert not be.any_negative(ctx, _dev(np.array([0.0, -0.0, np.nan])))
    pb = rng.random((5, 7)).astype(dtype)
    elems, grad = be.binary_cross_entropy(ctx, _dev(pb)[:, ::-1], _dev(tb), None, None, False, 1.0, True)
    rl, rg = R.binary_cross_entropy(pb[:, ::-1], tb, reduction="none")
    assert_close(_np(elems), rl, dtype, msg="bce")
    assert_close(_np(grad), rg, dtype, msg="bce grad")


def test_cross_entropy_bad_target_raises():
    with pytest.raises(ValueError, match="out of range"):
        ga.cross_entropy(cp.zeros((2, 3), cp.float32), cp.asarray([0, 3]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout(dtype):
    for shape, axis, pool in (((4, 12), -1, 3), ((12, 5), 0, 4), ((2, 6, 3), 1, 2), ((3, 8), -1, 1)):
        x = sample(shape, dtype, seed=4)
        x.reshape(-1)[1] = np.nan
        for layout, xd in [("contiguous", _dev(x)), ("transposed", cp.asfortranarray(_dev(x)))]:
            y = ga.maxout(xd, pool, axis=axis)
            assert_close(_np(y), R.maxout(x, pool, axis=axis), dtype, msg=f"maxout {layout} {shape}")
            g = sample(y.shape, dtype, seed=5, kinks=False)
            got = ga.maxout_backward(_dev(g), xd, pool, axis=axis)
            assert_close(_np(got), R.maxout_backward(g, x, pool, axis=axis), dtype, msg=f"maxout_backward {shape}")


# ---------------------------------------------------------------- streams, sizes, devices
def test_non_default_stream():
    x = sample((256, 1000), np.float32, seed=8)
    xd = _dev(x)
    with cp.cuda.Stream(non_blocking=True) as s:
        y = ga.softmax(xd)
        e = ga.gelu(xd)
        loss = ga.cross_entropy(xd, cp.arange(256) % 1000)
        done = s.record()
    done.synchronize()
    assert_close(_np(y), R.softmax(x), np.float32)
    assert_close(_np(e), R.forward("gelu", x), np.float32)
    assert_close(_np(loss), R.cross_entropy(x, np.arange(256) % 1000)[0], np.float32)


def test_zero_size_and_0d():
    for shape in ((0,), (0, 5), (3, 0), (2, 0, 4)):
        x = cp.zeros(shape, cp.float32)
        assert ga.relu(x).shape == shape
        assert ga.softmax(x, axis=-1).shape == shape
        assert ga.log_softmax_backward(x, x, axis=0).shape == shape
    s = ga.softmax(cp.asarray(np.float32(3.0)))
    assert s.shape == () and float(s) == 1.0
    assert ga.cross_entropy(cp.zeros((0, 4), cp.float32), cp.zeros((0,), cp.int64), reduction="sum").shape == ()


def test_results_stay_on_the_input_device():
    last = cp.cuda.runtime.getDeviceCount() - 1
    with cp.cuda.Device(last):
        x = cp.asarray(sample((8, 16), np.float32, seed=9))
    for r in (ga.silu(x), ga.softmax(x), ga.maxout(x, 4), ga.cross_entropy(x, cp.zeros(8, cp.int64), reduction="none")):
        assert isinstance(r, cp.ndarray) and r.device.id == last


# ---------------------------------------------------------------- bfloat16
@pytest.fixture
def bf16():
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


def _f64(a):
    return np.asarray(a).astype(np.float64)


def _bf16_specials(shape, bf16, seed):
    """``sample`` in bfloat16 with NaN, +-inf, +-1e30 and signed zeros first."""
    x = sample(shape, np.float64, seed=seed).reshape(-1)
    x[1:8] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0]
    return x.reshape(shape).astype(bf16)


@pytest.mark.parametrize("name,params", OP_DEFAULTS, ids=[op_id(n, p) for n, p in OP_DEFAULTS])
def test_bfloat16_elementwise(bf16, name, params):
    x = _bf16_specials((33, 65), bf16, seed=3)
    g = sample((33, 65), bf16, seed=4, scale=1.0, kinks=False)
    xd = cp.asfortranarray(_dev(x))
    y = getattr(ga, name)(xd, **params)
    d = getattr(ga, name + "_backward")(_dev(g), xd, **params)
    assert y.dtype == bf16 and d.dtype == bf16
    assert_close(_np(y), R.forward(name, _f64(x), **params), bf16, msg=name)
    assert_close(_np(d), R.backward(name, _f64(g), _f64(x), **params), bf16, msg=name + "_backward")


def test_bfloat16_rounds_the_float_result_once(bf16):
    # each result is the float32 kernel's on the widened input, rounded to nearest even as
    # ml_dtypes' astype (bit for bit); a NaN stays NaN
    bits = np.random.default_rng(11).integers(0, 2**32, 1 << 17, dtype=np.uint64).astype(np.uint32)
    f = bits.view(np.float32)
    x = f[np.isfinite(f)].astype(bf16)
    got = _np(ga.silu(_dev(x)))
    want = _np(ga.silu(_dev(x.astype(np.float32)))).astype(bf16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    assert np.isnan(_np(ga.silu(_dev(np.array([np.nan, -np.nan]).astype(bf16)))).astype(np.float32)).all()


@pytest.mark.parametrize("axis", [-1, 0])
def test_bfloat16_softmax_family(team, bf16, axis):
    for shape in ((9, 40), (3, 1100)):
        x = _bf16_specials(shape, bf16, seed=sum(shape))
        xf = _f64(x)
        g = sample(shape, bf16, seed=4, scale=1.0, kinks=False)
        for t in (1.0, 2.5):
            for op in ("softmax", "log_softmax"):
                y = getattr(ga, op)(_dev(x), axis, temperature=t)
                assert y.dtype == bf16
                assert_close(_np(y), getattr(R, op)(xf, axis, t), bf16, msg=f"{op} {shape} T={t}")
                got = getattr(ga, op + "_backward")(_dev(g), y, axis, temperature=t)
                want = getattr(R, op + "_backward")(_f64(g), _f64(_np(y)), axis, t)
                assert_close(_np(got), want, bf16, msg=f"{op}_backward {shape} T={t}")


def test_bfloat16_losses(team, bf16):
    z = _bf16_specials((6, 11), bf16, seed=5)
    t = np.array([0, 10, -100, 3, 4, 5])
    w = np.linspace(0.5, 1.5, 11).astype(bf16)
    for kw in ({}, {"weight": w, "z_loss": 1e-3, "softcap": 4.0, "label_smoothing": 0.1}):
        loss, grad, lse = ga.cross_entropy(_dev(z), _dev(t), reduction="none", return_grad=True, return_lse=True,
                                           **{k: _dev(v) if k == "weight" else v for k, v in kw.items()})
        el, eg, elz = R.cross_entropy(_f64(z), t, reduction="none", return_lse=True,
                                      **{k: _f64(v) if k == "weight" else v for k, v in kw.items()})
        assert loss.dtype == bf16 and grad.dtype == bf16 and lse.dtype == np.float32
        assert_close(_np(loss), el, bf16, msg=f"cross_entropy {kw}")
        assert_close(_np(grad), eg, bf16, msg=f"cross_entropy grad {kw}")
        assert_close(_np(lse), elz, np.float32, msg=f"cross_entropy lse {kw}")
    zf = sample((6, 11), bf16, seed=6)
    p = np.random.default_rng(6).dirichlet(np.ones(11), 6).astype(bf16)
    loss, grad = ga.cross_entropy(_dev(zf).T, _dev(p).T, axis=0, return_grad=True)
    el, eg = R.cross_entropy(_f64(zf).T, _f64(p).T, axis=0)
    assert_close(_np(loss), el, bf16, msg="cross_entropy probabilities")
    assert_close(_np(grad), eg, bf16, msg="cross_entropy probabilities grad")
    lp = ga.log_softmax(_dev(zf))
    loss, grad = ga.nll_loss(lp, _dev(t), weight=_dev(w), return_grad=True)
    el, eg = R.nll_loss(_f64(_np(lp)), t, weight=_f64(w))
    assert_close(_np(loss), el, bf16, msg="nll_loss")
    assert_close(_np(grad), eg, bf16, msg="nll_loss grad")
    tt = np.random.default_rng(7).uniform(0, 1, zf.shape).astype(bf16)
    loss, grad = ga.binary_cross_entropy_with_logits(_dev(zf), _dev(tt), pos_weight=_dev(w), reduction="sum",
                                                     return_grad=True)
    el, eg = R.binary_cross_entropy_with_logits(_f64(zf), _f64(tt), pos_weight=_f64(w), reduction="sum")
    assert_close(_np(loss), el, bf16, msg="bce with logits")
    assert_close(_np(grad), eg, bf16, msg="bce with logits grad")
    probs = ga.sigmoid(_dev(zf))
    assert_close(_np(ga.binary_cross_entropy(probs, _dev(tt))), R.binary_cross_entropy(_f64(_np(probs)), _f64(tt))[0],
                 bf16, msg="bce")


def test_bfloat16_maxout_prelu_rrelu(bf16):
    x = _bf16_specials((4, 12, 3), bf16, seed=8)
    xd = _dev(x)
    assert_close(_np(ga.maxout(xd, 3, axis=1)), R.maxout(_f64(x), 3, axis=1), bf16, msg="maxout")
    g = sample((4, 4, 3), bf16, seed=9, kinks=False)
    got = ga.maxout_backward(_dev(g), xd, 3, axis=1)
    assert_close(_np(got), R.maxout_backward(_f64(g), _f64(x), 3, axis=1), bf16, msg="maxout_backward")
    w = np.linspace(-0.5, 1.5, 12).astype(bf16)
    assert_close(_np(ga.prelu(xd, _dev(w))), R.prelu(_f64(x), _f64(w)), bf16, msg="prelu")
    go = sample(x.shape, bf16, seed=10, kinks=False)
    gx, gw = ga.prelu_backward(_dev(go), xd, _dev(w))
    rgx, rgw = R.prelu_backward(_f64(go), _f64(x), _f64(w))
    assert gx.dtype == bf16 and gw.dtype == bf16
    assert_close(_np(gx), rgx, bf16, msg="prelu grad")
    assert_close(_np(gw), rgw, bf16, msg="prelu weight grad")
    kw = dict(lower=0.1, upper=0.3, training=True, seed=7)
    assert_close(_np(ga.rrelu(xd, **kw)), R.rrelu(_f64(x), **kw), bf16, msg="rrelu")
    # the device generator and rounding reproduce the host's results exactly (NaN aside: its bits may differ)
    xs = sample(x.shape, bf16, seed=11)
    np.testing.assert_array_equal(_np(ga.rrelu(_dev(xs), **kw)).view(np.uint16),
                                  ga.rrelu(xs, **kw, backend="cpu").view(np.uint16))
