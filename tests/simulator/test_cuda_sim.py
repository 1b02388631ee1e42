"""The CUDA backend's kernels under the Numba CUDA simulator.

Runs only in its own process with the simulator switched on (it replaces
numba.cuda for the whole process):

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator

Every kernel variant runs here on small shapes that still cross each variant
boundary; warp shuffles go through the test-only emulation in
``cuda_sim.py``. Results are compared with the independent float64
reference (``reference.py``) under the shared tolerance table.
"""

import importlib

import numpy as np
import pytest

import gpu_act as ga
from gpu_act import _cuda

pytestmark = [
    pytest.mark.skipif(
        not _cuda.SIMULATOR,
        reason="simulator tests run in their own process: NUMBA_ENABLE_CUDASIM=1 pytest tests/simulator",
    ),
    # the simulator runs kernels on NumPy scalars, which warn on inf - inf where the device is silent
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]

import cuda_sim  # noqa: E402
import reference as ref  # noqa: E402
from helpers import OP_DEFAULTS, cancelling_backward, op_id, sample  # noqa: E402
from tolerances import DTYPES, assert_close  # noqa: E402

cuda = _cuda.cuda
_config = importlib.import_module("gpu_act.backends.cuda._config")
cuda_sim.install()

F64_SHARED_MAX = 4096 * 4 // 8  # the longest float64 row block-shared holds on the small device (conftest)


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    assert type(r).__module__.startswith("numba"), type(r)
    return r.copy_to_host()


def variant(op, x, axis=-1):
    """The variant _config.plan chooses for this call (to assert the boundary is crossed)."""
    n = x.shape[axis]
    c = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    layout = _config.row_layout(x, axis)
    return _config.plan(op, x.size // n, n, layout, c.itemsize, _cuda.limits(0)).variant


# ---------------------------------------------------------------- elementwise
@pytest.mark.parametrize("name,params", OP_DEFAULTS, ids=[op_id(n, p) for n, p in OP_DEFAULTS])
def test_every_activation_forward_backward(name, params):
    x = sample((37,), np.float32, seed=1)
    g = sample((37,), np.float32, seed=2, kinks=False)
    assert_close(host(getattr(ga, name)(dev(x), **params)), ref.forward(name, x, **params), np.float32)
    assert_close(
        host(getattr(ga, name + "_backward")(dev(g), dev(x), **params)), ref.backward(name, g, x, **params), np.float32
    )


LAYOUTS = {
    "contiguous": lambda d: d,
    "transposed": lambda d: d.T,
    "reversed": lambda d: d[::-1, ::-2],
    "sliced": lambda d: d[1:, 1::3],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_elementwise_layouts_and_dtypes(dtype, layout):
    x = sample((6, 9), dtype, seed=3)
    g = sample((6, 9), dtype, seed=4, kinks=False)
    view = LAYOUTS[layout]
    xv, gv = view(x), view(g)
    r = ga.softplus(view(dev(x)), 2.0, 5.0)
    assert np.dtype(r.dtype) == np.dtype(dtype)
    assert_close(host(r), ref.forward("softplus", xv, beta=2.0, threshold=5.0), dtype)
    r = ga.gelu_backward(view(dev(g)), view(dev(x)), approximate="tanh")
    assert_close(host(r), ref.backward("gelu", gv, xv, approximate="tanh"), dtype)


def test_elementwise_paths_are_the_ones_meant():
    _arrays = importlib.import_module("gpu_act.backends.cuda._arrays")
    _operands = importlib.import_module("gpu_act.backends.cuda._operands")
    ctx = _arrays.context(dev(np.zeros(1, np.float32)), None)
    mk = lambda shape: _arrays.asarray(ctx, dev(np.zeros(shape, np.float32)))  # noqa: E731
    a = mk((4, 5))
    assert _operands.elementwise_operands(ctx, [a, a])[0]
    t = mk((5, 4))
    assert not _operands.elementwise_operands(ctx, [a, t._view((4, 5), t.strides[::-1])])[0]


def test_out_in_place_and_overlap():
    x = sample((5, 8), np.float32, seed=5)
    d = dev(x)
    r = ga.tanh(d, out=d)
    assert r is d
    assert_close(host(d), ref.forward("tanh", x), np.float32)
    # out overlapping the input shifted by one column: staged through a temporary
    y = dev(x)
    ga.relu(y[:, 1:], out=y[:, :-1])
    expect = x.copy()
    expect[:, :-1] = np.maximum(x[:, 1:], 0)
    assert_close(host(y), expect, np.float32)
    o = dev(np.zeros((8, 5), np.float32)).T
    ga.sigmoid(dev(x), out=o)
    assert_close(host(o), ref.forward("sigmoid", x), np.float32)


def test_zero_size_and_0d():
    assert host(ga.relu(dev(np.zeros((0, 3), np.float32)))).shape == (0, 3)
    x = np.array(-2.0, np.float64)
    assert_close(host(ga.elu(cuda.to_device(x))), ref.forward("elu", x), np.float64)
    assert_close(host(ga.softmax(cuda.to_device(x))), np.array(1.0), np.float64)


def test_prelu_and_rrelu():
    x = sample((2, 3, 4), np.float32, seed=6)
    g = sample((2, 3, 4), np.float32, seed=7, kinks=False)
    w = np.array([0.1, -0.2, 0.3], np.float64)  # other dtype than x: cast on the device
    assert_close(host(ga.prelu(dev(x), dev(w))), ref.prelu(x, w), np.float32)
    gx, gw = ga.prelu_backward(dev(g), dev(x), dev(w))
    rgx, rgw = ref.prelu_backward(g, x, w)
    assert_close(host(gx), rgx, np.float32)
    assert host(gw).dtype == np.float64
    assert_close(host(gw), rgw, np.float32)
    r = ga.rrelu(dev(x), training=True, seed=11)
    assert_close(host(r), ref.rrelu(x, training=True, seed=11), np.float32)
    r = ga.rrelu_backward(dev(g), dev(x), training=True, seed=11)
    assert_close(host(r), ref.rrelu_backward(g, x, training=True, seed=11), np.float32)


# ---------------------------------------------------------------- softmax family
def _softmax_cases():
    # (shape, axis, dtype, expected variant) on the small device (conftest)
    return [
        ((3, 1), -1, np.float32, "warp"),
        ((5, 33), -1, np.float32, "warp"),
        ((2, 1024), -1, np.float16, "warp"),
        ((2, 1025), -1, np.float32, "block-shared"),
        ((1, 4096), -1, np.float32, "block-shared"),
        ((1, 4097), -1, np.float16, "block"),
        ((1, F64_SHARED_MAX), -1, np.float64, "block-shared"),
        ((1, F64_SHARED_MAX + 1), -1, np.float64, "block"),
        ((4, 6, 5), 1, np.float64, "warp"),  # a strided axis, too few rows for one thread each
        ((8, 6, 5), 1, np.float64, "thread"),
        ((70, 3), 0, np.float16, "warp"),
        ((70, 40), 0, np.float16, "thread"),
    ]


@pytest.mark.parametrize("shape,axis,dtype,expect", _softmax_cases(), ids=lambda v: str(v))
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_variants(small_device, shape, axis, dtype, expect, log):
    x = sample(shape, dtype, seed=8)
    assert variant("softmax", x, axis) == expect
    fwd = ga.log_softmax if log else ga.softmax
    rfwd = ref.log_softmax if log else ref.softmax
    y = fwd(dev(x), axis=axis, temperature=0.7)
    assert_close(host(y), rfwd(x, axis=axis, temperature=0.7), dtype)
    g = sample(shape, dtype, seed=9, kinks=False)
    yr = host(y)
    bwd = ga.log_softmax_backward if log else ga.softmax_backward
    rbwd = ref.log_softmax_backward if log else ref.softmax_backward
    dx = bwd(dev(g), dev(yr), axis=axis, temperature=0.7)
    assert_close(host(dx), rbwd(g, yr, axis=axis, temperature=0.7), dtype)


@pytest.mark.parametrize("axis,expect", [(0, "thread"), (1, "warp")])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_backward_row_sums_do_not_cancel(axis, expect, log):
    # g - sum(g y) cancels: the row sum is accumulated in float64 (a float32
    # sum over the 1000 terms of one thread misses atol here)
    g, y = cancelling_backward(32, 1000, np.float32, seed=5, log=log)
    if axis == 0:
        g, y = np.ascontiguousarray(g.T), np.ascontiguousarray(y.T)
    assert variant("softmax_backward", y, axis) == expect
    bwd, rbwd = (
        (ga.log_softmax_backward, ref.log_softmax_backward) if log else (ga.softmax_backward, ref.softmax_backward)
    )
    assert_close(host(bwd(dev(g), dev(y), axis=axis)), rbwd(g, y, axis=axis), np.float32)


@pytest.mark.parametrize("shape,axis", [((3, 8), -1), ((3, 2000), -1), ((8, 40), 0)], ids=["warp", "block", "thread"])
def test_huge_temperature_keeps_minus_inf_at_zero(small_device, shape, axis):
    # 1/T underflows to 0 in float32: -inf entries still get probability 0, not NaN
    x = sample(shape, np.float32, seed=3)
    x[(slice(None), slice(0, None, 3)) if axis == -1 else (slice(0, None, 3), slice(None))] = -np.inf
    for fwd, rfwd in ((ga.softmax, ref.softmax), (ga.log_softmax, ref.log_softmax)):
        assert_close(host(fwd(dev(x), axis=axis, temperature=1e46)), rfwd(x, axis=axis, temperature=1e46), np.float32)


def test_softmax_real_shared_memory_boundary(few_threads):
    # the simulator's 48 KiB device: float32 rows up to (49152 - STATIC_SHARED)/4 stay in shared memory
    longest = (48 * 1024 - _config.STATIC_SHARED) // 4
    for n, expect in ((longest, "block-shared"), (longest + 1, "block")):
        x = sample((1, n), np.float32, seed=n)
        assert variant("softmax", x) == expect
        assert_close(host(ga.softmax(dev(x))), ref.softmax(x), np.float32)


SPECIAL_ROWS = np.array(
    [
        [1.0, np.nan, 2.0, 3.0],
        [1.0, np.inf, 2.0, 3.0],
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [-np.inf, 1.0, -np.inf, 2.0],
        [np.inf, np.inf, 0.0, 0.0],
        [-1e30, 1e30, 0.0, 5.0],
    ]
)


@pytest.mark.parametrize("width", [4, 1100], ids=["warp", "block"])
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "strided"])
def test_softmax_special_values(small_device, width, axis):
    x = np.tile(SPECIAL_ROWS, (1, width // 4)).astype(np.float32)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    for fwd, rfwd in ((ga.softmax, ref.softmax), (ga.log_softmax, ref.log_softmax)):
        assert_close(host(fwd(dev(x), axis=axis)), rfwd(x, axis=axis), np.float32)


def test_softmax_special_values_online(small_device):
    xs = np.tile(SPECIAL_ROWS, (1, 5000 // 4)).astype(np.float32)  # block (online) variant
    assert variant("softmax", xs) == "block"
    assert_close(host(ga.softmax(dev(xs))), ref.softmax(xs), np.float32)


@pytest.mark.parametrize(
    "shape,axis,expect",
    [((6, 5), -1, "warp"), ((2, 1030), -1, "block"), ((5, 4, 8), 1, "thread"), ((5, 4, 3), 1, "warp")],
    ids=["warp", "block", "thread", "warp-strided"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_variants(shape, axis, expect, dtype):
    z = sample(shape, dtype, seed=12)
    assert variant("cross_entropy", z, axis) == expect
    ax = axis % len(shape)
    rows_shape = shape[:ax] + shape[ax + 1 :]
    rng = np.random.default_rng(13)
    t = rng.integers(0, shape[ax], rows_shape)
    t.flat[0] = -100
    # the kernel's row losses and gradient, unsmoothed and smoothed (the
    # reductions are test_total's kernel: here each only scales the gradient)
    for reduction, eps in (("none", 0.0), ("mean", 0.1)):
        loss, grad = ga.cross_entropy(dev(z), dev(t), axis, reduction=reduction, label_smoothing=eps, return_grad=True)
        rl, rg = ref.cross_entropy(z, t, axis, reduction=reduction, label_smoothing=eps)
        assert_close(host(loss), rl, dtype)
        assert_close(host(grad), rg, dtype)
    p = rng.random(shape)
    p /= p.sum(axis=ax, keepdims=True)
    p = p.astype(dtype)
    loss, grad = ga.cross_entropy(dev(z), dev(p), axis, label_smoothing=0.2, return_grad=True)
    rl, rg = ref.cross_entropy(z, p, axis, label_smoothing=0.2)
    assert_close(host(loss), rl, dtype)
    assert_close(host(grad), rg, dtype)


def test_cross_entropy_target_out_of_range():
    z = dev(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="target index 7 is out of range"):
        ga.cross_entropy(z, dev(np.array([0, 7, 1])))
    loss = ga.cross_entropy(z, dev(np.array([-100, -100, -100])))
    assert np.isnan(host(loss))


# ---------------------------------------------------------------- losses, through the backend itself
# (the public functions validate and reduce; here the kernels meet the reference)
be = importlib.import_module("gpu_act.backends.cuda")


def direct(primary):
    """(ctx, native, fetch) to call the CUDA backend on NumPy arrays: ``native``
    copies one to the device as a backend array (None stays None), ``fetch``
    brings a result back."""
    p = dev(primary)
    ctx = be.context(p, None)

    def native(a):
        return None if a is None else be.asarray(ctx, dev(a))

    def fetch(r):
        return None if r is None else host(be.wrap(ctx, r, p))

    return ctx, native, fetch


def _weights(C, ctype, seed):
    w = np.random.default_rng(seed).uniform(0.1, 2.0, C).astype(ctype)
    w[1] = 0.0  # a class weighted 0: its terms are skipped, even where they are infinite
    return w


# (index targets, label smoothing, class weights, z_loss, softcap, want_grad, want_lse)
CE_OPTIONS = [
    (True, 0.1, True, 1e-3, 4.0, True, True),
    (True, 0.0, True, 0.0, None, True, False),
    (True, 0.0, False, 0.0, None, False, False),
    (False, 0.2, True, 1e-3, 4.0, True, True),
    (False, 0.0, False, 0.0, None, False, True),
]


CE_CASES = [  # (shape, axis, dtype, expected variant): every variant, every dtype, kept small
    ((5, 7), -1, np.float16, "warp"),
    ((5, 7), -1, np.float64, "warp"),
    ((2, 1030), -1, np.float32, "block"),
    *(((5, 4, 8), 1, dtype, "thread") for dtype in DTYPES),
]


@pytest.mark.parametrize("shape,axis,dtype,expect", CE_CASES, ids=[f"{c[3]}-{np.dtype(c[2]).name}" for c in CE_CASES])
def test_cross_entropy_backend_options(shape, axis, dtype, expect):
    z = sample(shape, dtype, seed=21)
    assert variant("cross_entropy", z, axis) == expect
    ax = axis % z.ndim
    C = shape[ax]
    rng = np.random.default_rng(22)
    t = rng.integers(0, C, shape[:ax] + shape[ax + 1 :])
    t.flat[0] = -100
    p = rng.random(shape)
    p = (p / p.sum(axis=ax, keepdims=True)).astype(dtype)
    w = _weights(C, np.float64 if dtype == np.float64 else np.float32, seed=23)
    ctx, native, fetch = direct(z)
    Z, T, P, W = native(z), native(t), native(p), native(w)
    for index, eps, weighted, z_loss, cap, want_grad, want_lse in CE_OPTIONS:
        rows, grad, lse = be.cross_entropy(
            ctx, Z, T if index else P, ax, index, -100, eps, W if weighted else None, z_loss, cap, 0.25, want_grad,
            want_lse,
        )
        rl, rg, rlse = ref.cross_entropy(
            z, t if index else p, axis, reduction="none", label_smoothing=eps, weight=w if weighted else None,
            z_loss=z_loss, softcap=cap, return_lse=True,
        )
        assert np.dtype(rows.dtype) == (np.float64 if dtype == np.float64 else np.float32)
        assert_close(fetch(rows), rl, dtype)
        assert (grad is None) != want_grad and (lse is None) != want_lse
        if want_grad:
            assert np.dtype(grad.dtype) == np.dtype(dtype)
            assert_close(fetch(grad), rg * 0.25, dtype)
        if want_lse:
            assert_close(fetch(lse), rlse, dtype)


@pytest.mark.parametrize("cap", [None, 10.0], ids=["plain", "softcap"])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # z_loss lse^2 at lse = 1e30: inf
def test_cross_entropy_backend_special_rows(cap):
    # NaN, +inf and all -inf rows (NaN loss, unless ignored; without a softcap),
    # -inf logits under smoothing (an infinite loss where their weight is not 0),
    # +-1e30 (no cancellation); the lse of an ignored row is still written
    z = SPECIAL_ROWS.astype(np.float32)
    t = np.array([0, 2, -100, 3, 2, 1])
    w = np.array([1.0, 0.0, 2.0, 0.5], np.float32)
    ctx, native, fetch = direct(z)
    for weight in (None, w):
        rows, grad, lse = be.cross_entropy(
            ctx, native(z), native(t), 1, True, -100, 0.1, native(weight), 1e-3, cap, 1.0, True, True
        )
        rl, rg, rlse = ref.cross_entropy(
            z, t, reduction="none", label_smoothing=0.1, weight=weight, z_loss=1e-3, softcap=cap, return_lse=True
        )
        assert_close(fetch(rows), rl, np.float32)
        assert_close(fetch(lse), rlse, np.float32)
        assert_close(fetch(grad)[2], rg[2], np.float32)  # the ignored row: 0
        finite = np.isfinite(z).all(axis=1) | (cap is not None)
        assert_close(fetch(grad)[finite], rg[finite], np.float32)


def test_check_targets_count_and_weights():
    # 300 targets: two blocks' float64 partial sums of the weights
    rng = np.random.default_rng(24)
    t = rng.integers(0, 4, (2, 150))
    t[0, ::7] = -100
    w = np.array([0.5, 1.0, 2.0, 0.25], np.float32)
    ctx, native, fetch = direct(w)
    valid = t != -100
    count, denominator = be.check_targets(ctx, "f", native(t), 4, -100, native(w))
    assert (count, denominator) == (int(valid.sum()), float(w.astype(np.float64)[t[valid]].sum()))
    assert be.check_targets(ctx, "f", native(t), 4, -100, None) == (count, float(count))
    with pytest.raises(ValueError, match="f: target index 7 is out of range"):
        be.check_targets(ctx, "f", native(np.array([0, 7, 1])), 4, -100, native(w))
    assert be.check_targets(ctx, "f", native(np.zeros(0, np.int64)), 4, -100, native(w)) == (0, 0.0)
    assert be.check_targets(ctx, "f", native(np.full(3, -1)), 0, -1, native(w[:0])) == (0, 0.0)  # no classes


@pytest.mark.parametrize("shape,axis,dtype", [((4, 5), -1, np.float16), ((3, 4, 2), 1, np.float64)],
                         ids=["rows-float16", "strided-float64"])
def test_nll_loss_backend(shape, axis, dtype):
    lp = -np.abs(sample(shape, dtype, seed=31))
    ax = axis % lp.ndim
    C = shape[ax]
    t = np.random.default_rng(32).integers(0, C, shape[:ax] + shape[ax + 1 :])
    t.flat[1] = -100
    w = _weights(C, np.float64 if dtype == np.float64 else np.float32, seed=33)
    ctx, native, fetch = direct(lp)
    LP, T = native(lp), native(t)
    for weight in (None, w):
        _, denominator = be.check_targets(ctx, "f", T, C, -100, native(weight))
        rows, grad = be.nll_loss(ctx, LP, T, ax, -100, native(weight), 1.0 / denominator, True)
        assert_close(fetch(rows), ref.nll_loss(lp, t, axis, reduction="none", weight=weight)[0], dtype)
        assert_close(fetch(grad), ref.nll_loss(lp, t, axis, reduction="mean", weight=weight)[1], dtype)
    rows, grad = be.nll_loss(ctx, LP, T, ax, -100, None, 1.0, False)
    assert grad is None
    assert_close(fetch(rows), ref.nll_loss(lp, t, axis, reduction="none")[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # float16 gradients of 1e12: inf
def test_binary_cross_entropy_backend(dtype):
    # targets and weights of other dtypes than the input's; weight broadcast over
    # columns, pos_weight over rows (stride 0); infinite logits; probabilities at
    # 0 and 1 (the -100 clamp) and outside [0, 1] (NaN)
    rng = np.random.default_rng(41)
    z = sample((3, 5), dtype, seed=42)
    z[0, :2] = [np.inf, -np.inf]
    t = rng.random((3, 5)).astype(np.float32)
    t[0, 2:4] = [0.0, 1.0]
    w = rng.uniform(0.0, 2.0, (3, 1))
    pw = rng.uniform(0.0, 3.0, (1, 5)).astype(np.float32)
    prob = rng.random((3, 5)).astype(dtype)
    prob[0, :4] = [0.0, 1.0, -0.5, 1.5]
    ctx, native, fetch = direct(z)
    Z, T = native(z), native(t)
    elems, grad = be.binary_cross_entropy(ctx, Z, T, native(w), native(pw), True, 0.5, True)
    rl, rg = ref.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw, reduction="none")
    assert np.dtype(elems.dtype) == (np.float64 if dtype == np.float64 else np.float32)
    assert np.dtype(grad.dtype) == np.dtype(dtype)
    assert_close(fetch(elems), rl, dtype)
    assert_close(fetch(grad), rg * 0.5, dtype)
    elems, grad = be.binary_cross_entropy(ctx, Z, T, None, None, True, 1.0, False)
    assert grad is None
    assert_close(fetch(elems), ref.binary_cross_entropy_with_logits(z, t, reduction="none")[0], dtype)
    elems, grad = be.binary_cross_entropy(ctx, native(prob), T, native(w), None, False, 0.5, True)
    rl, rg = ref.binary_cross_entropy(prob, t, weight=w, reduction="none")
    assert_close(fetch(elems), rl, dtype)
    assert_close(fetch(grad), rg * 0.5, dtype)


def test_binary_cross_entropy_backend_strided_0d_and_pos_weight_check():
    z = sample((4, 6), np.float32, seed=43)
    t = np.random.default_rng(44).random((4, 6)).astype(np.float64)
    ctx, native, fetch = direct(z)
    elems, grad = be.binary_cross_entropy(ctx, be.asarray(ctx, dev(z).T), be.asarray(ctx, dev(t).T), None, None, True,
                                          1.0, True)
    rl, rg = ref.binary_cross_entropy_with_logits(z.T, t.T, reduction="none")
    assert_close(fetch(elems), rl, np.float32)
    assert_close(fetch(grad), rg, np.float32)
    z0, t0 = np.array(-1.5, np.float64), np.array(0.25, np.float64)
    Z0, T0 = (be.asarray(ctx, cuda.to_device(a)) for a in (z0, t0))  # 0-d (``dev`` makes them 1-d)
    elems, grad = be.binary_cross_entropy(ctx, Z0, T0, None, None, True, 1.0, True)
    rl, rg = ref.binary_cross_entropy_with_logits(z0, t0, reduction="none")
    assert_close(fetch(elems), rl, np.float64)
    assert_close(fetch(grad), rg, np.float64)
    pw = np.array([[1.0, -0.0, 2.0], [0.5, 3.0, -2.0]], np.float32)
    assert be.any_negative(ctx, be.asarray(ctx, dev(pw).T))  # strided: through a copy
    assert not be.any_negative(ctx, native(pw[:1]))  # -0.0 is not negative


def test_total():
    a = sample((7, 9), np.float32, seed=51)
    ctx, native, fetch = direct(a)
    expect = a.astype(np.float64).sum()
    for dtype in (np.float16, np.float64):
        r = fetch(be.total(ctx, native(a), 0.5, dtype))
        assert r.shape == () and r.dtype == dtype
        assert_close(r, expect * 0.5, dtype)
    r = fetch(be.total(ctx, be.asarray(ctx, cuda.to_device(np.array(2.5, np.float32))), 3.0, np.float32))
    assert_close(r, 7.5, np.float32)
    assert fetch(be.total(ctx, native(np.zeros((0, 3), np.float32)), 2.0, np.float32)) == 0.0
    assert np.isnan(fetch(be.total(ctx, native(np.zeros((0, 3), np.float32)), np.nan, np.float32)))
    a[3, 3] = np.nan
    assert np.isnan(fetch(be.total(ctx, be.asarray(ctx, dev(a).T), 1.0, np.float64)))  # strided, NaN


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_maxout(dtype, axis):
    x = sample((6, 4), dtype, seed=14)
    x[1, 1] = np.nan
    y = ga.maxout(dev(x), 2, axis)
    assert_close(host(y), ref.maxout(x, 2, axis), dtype)
    g = sample(host(y).shape, dtype, seed=15, kinks=False)
    assert_close(host(ga.maxout_backward(dev(g), dev(x), 2, axis)), ref.maxout_backward(g, x, 2, axis), dtype)


# ---------------------------------------------------------------- bfloat16
# bfloat16 reaches the CUDA path as a Numba device array of ml_dtypes' bfloat16,
# made as a user makes one: ``cuda.to_device`` of a NumPy bfloat16 array (or
# ``cuda.device_array(shape, ml_dtypes.bfloat16)``). Numba keeps the dtype; the
# kernels read and write the memory through uint16 views, computing in float32,
# and results are Numba device arrays of bfloat16 again.
BF16_SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0]


@pytest.fixture
def bf16():
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


def f64(a):
    return np.asarray(a).astype(np.float64)


def bf16_sample(shape, bf16, seed, special=True):
    x = sample(shape, np.float64, seed=seed)
    if special:
        x.flat[1 : 1 + len(BF16_SPECIAL)] = BF16_SPECIAL
    return x.astype(bf16)


@pytest.mark.parametrize("name,params", [("gelu", {"approximate": "tanh"}),
                                         ("softplus", {"beta": 2.0, "threshold": 5.0})])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator's NumPy scalars at 1e30
def test_bfloat16_elementwise(bf16, name, params):
    x = bf16_sample((4, 9), bf16, seed=61)
    g = bf16_sample((4, 9), bf16, seed=62, special=False)
    fwd, bwd = getattr(ga, name), getattr(ga, name + "_backward")
    y = fwd(dev(x), **params)
    assert np.dtype(y.dtype) == bf16
    assert_close(host(y), ref.forward(name, f64(x), **params), bf16)
    # strided views (the strided path)
    assert_close(host(bwd(dev(g).T, dev(x).T, **params)), ref.backward(name, f64(g).T, f64(x).T, **params), bf16)
    d = dev(x)
    assert fwd(d, **params, out=d) is d
    np.testing.assert_array_equal(host(d).view(np.uint16), host(y).view(np.uint16))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # float64 beyond float32's range: inf
def test_bfloat16_stores_round_as_ml_dtypes(bf16):
    # every store rounds float32 to nearest even on the upper half (ml_dtypes'
    # astype; float64 through float32, as ml_dtypes does), up to inf; NaN stays
    # NaN; loads are exact. Checked on the staging copy, which stores as every kernel does.
    rng = np.random.default_rng(63)
    bits = rng.integers(0, 2**32, 512, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2**16, 64, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000  # halfway cases
    near_max = np.array([0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7F8000, 0x7F800001, 0xFFC00000], np.uint32)
    f = np.concatenate([bits, ties, near_max]).view(np.float32)
    d = (rng.standard_normal(256) * 10.0 ** rng.integers(-40, 40, 256)).astype(np.float64)
    ctx, native, fetch = direct(f)
    for a in (f, d):
        got = fetch(be.astype(ctx, native(a), bf16))
        with np.errstate(all="ignore"):
            want = a.astype(bf16)
        nan = np.isnan(a)
        assert np.isnan(got.astype(np.float32)[nan]).all()
        np.testing.assert_array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan])
    back = fetch(be.astype(ctx, native(want), np.float32))
    np.testing.assert_array_equal(back.view(np.uint32), want.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize(
    "shape,axis,special,expect",
    [((3, 6), -1, True, "warp"), ((5, 40), 0, True, "thread"), ((1, 1025), -1, False, "block-shared")],
    ids=["warp", "thread", "block"],
)
def test_bfloat16_softmax_family(bf16, shape, axis, special, expect):
    # the long row's backward runs the "block" variant
    x = bf16_sample(shape, bf16, seed=64, special=special)
    g = bf16_sample(shape, bf16, seed=65, special=False)
    assert variant("softmax", x, axis) == expect
    for log in (False, True):
        fwd, rfwd = (ga.log_softmax, ref.log_softmax) if log else (ga.softmax, ref.softmax)
        bwd, rbwd = (
            (ga.log_softmax_backward, ref.log_softmax_backward) if log else (ga.softmax_backward, ref.softmax_backward)
        )
        y = host(fwd(dev(x), axis=axis, temperature=0.7))
        assert y.dtype == bf16
        assert_close(y, rfwd(f64(x), axis=axis, temperature=0.7), bf16)
        dx = host(bwd(dev(g), dev(y), axis=axis, temperature=0.7))
        assert_close(dx, rbwd(f64(g), f64(y), axis=axis, temperature=0.7), bf16)


def test_bfloat16_cross_entropy_and_nll(bf16):
    # one warp per row, the 3 rows in one block (the simulator runs its threads)
    z = bf16_sample((3, 7), bf16, seed=66, special=False)
    t = np.array([0, 6, -100])
    w = np.linspace(0.5, 1.5, 7).astype(bf16)
    opts = dict(label_smoothing=0.1, z_loss=1e-3, softcap=4.0)
    loss, grad, lse = ga.cross_entropy(dev(z), dev(t), weight=dev(w), return_grad=True, return_lse=True, **opts)
    rl, rg, rlse = ref.cross_entropy(f64(z), t, weight=f64(w), return_lse=True, **opts)
    assert (np.dtype(loss.dtype), np.dtype(grad.dtype), np.dtype(lse.dtype)) == (bf16, bf16, np.float32)
    assert_close(host(loss), rl, bf16)
    assert_close(host(grad), rg, bf16)
    assert_close(host(lse), rlse, np.float32)
    # probability targets in bfloat16 and in float32 (a kernel reading two codecs)
    p = np.random.default_rng(67).dirichlet(np.ones(7), 3)
    for pt, reduction in ((p.astype(bf16), "none"), (p.astype(np.float32), "sum")):
        loss, grad = ga.cross_entropy(dev(z), dev(pt), reduction=reduction, label_smoothing=0.2, return_grad=True)
        rl, rg = ref.cross_entropy(f64(z), f64(pt), reduction=reduction, label_smoothing=0.2)
        assert_close(host(loss), rl, bf16)
        assert_close(host(grad), rg, bf16)
    lp = host(ga.log_softmax(dev(z)))
    loss, grad = ga.nll_loss(dev(lp), dev(t), weight=dev(w), return_grad=True)  # gradient zero-filled in bfloat16
    rl, rg = ref.nll_loss(f64(lp), t, weight=f64(w))
    assert_close(host(loss), rl, bf16)
    assert_close(host(grad), rg, bf16)
    # an empty total is filled with one stored bfloat16 element
    ctx, native, fetch = direct(z)
    assert fetch(be.total(ctx, native(np.zeros((0, 3), np.float32)), 2.0, bf16)).view(np.uint16) == 0
    assert np.isnan(fetch(be.total(ctx, native(np.zeros((0, 3), np.float32)), np.nan, bf16)).astype(np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_bfloat16_binary_cross_entropy(bf16):
    rng = np.random.default_rng(68)
    z = bf16_sample((3, 5), bf16, seed=69, special=False)
    z[0, :2] = [np.inf, -np.inf]
    t = rng.random((3, 5)).astype(bf16)
    w = rng.uniform(0.0, 2.0, (3, 1)).astype(np.float32)  # another codec than z's
    pw = rng.uniform(0.0, 3.0, (1, 5)).astype(bf16)
    for reduction in ("none", "mean"):
        loss, grad = ga.binary_cross_entropy_with_logits(dev(z), dev(t), weight=dev(w), pos_weight=dev(pw),
                                                         reduction=reduction, return_grad=True)
        rl, rg = ref.binary_cross_entropy_with_logits(f64(z), f64(t), weight=w, pos_weight=f64(pw), reduction=reduction)
        assert np.dtype(loss.dtype) == np.dtype(grad.dtype) == bf16
        assert_close(host(loss), rl, bf16)
        assert_close(host(grad), rg, bf16)
    probs = rng.random((3, 5)).astype(bf16)
    probs[0, :2] = [0.0, 1.0]
    loss, grad = ga.binary_cross_entropy(dev(probs), dev(t.astype(np.float32)), reduction="sum", return_grad=True)
    rl, rg = ref.binary_cross_entropy(f64(probs), f64(t), reduction="sum")
    assert_close(host(loss), rl, bf16)
    assert_close(host(grad), rg, bf16)
    with pytest.raises(ValueError, match="pos_weight has a negative entry"):  # read back as bfloat16
        ga.binary_cross_entropy_with_logits(dev(z), dev(t), pos_weight=dev(np.array([1.0, -0.5, 0, 0, 0], bf16)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the slopes' hash wraps around
def test_bfloat16_maxout_prelu_rrelu(bf16):
    x = bf16_sample((4, 6), bf16, seed=70, special=False)
    x[1, 1] = np.nan
    for axis in (-1, 0):
        y = host(ga.maxout(dev(x), 2, axis))
        assert_close(y, ref.maxout(f64(x), 2, axis), bf16)
        g = bf16_sample(y.shape, bf16, seed=71, special=False)
        r = ga.maxout_backward(dev(g), dev(x), 2, axis)
        assert_close(host(r), ref.maxout_backward(f64(g), f64(x), 2, axis), bf16)
    x = bf16_sample((2, 3, 4), bf16, seed=72)
    g = bf16_sample((2, 3, 4), bf16, seed=73, special=False)
    w = np.array([0.1, -0.2, 0.3], bf16)
    assert_close(host(ga.prelu(dev(x), dev(w))), ref.prelu(f64(x), f64(w)), bf16)
    gx, gw = ga.prelu_backward(dev(g), dev(x), dev(w))  # the weight's gradient: a float32 sum stored as bfloat16
    rgx, rgw = ref.prelu_backward(f64(g), f64(x), f64(w))
    assert np.dtype(gw.dtype) == bf16
    assert_close(host(gx), rgx, bf16)
    assert_close(host(gw), rgw, bf16)
    # float32 slopes beside bfloat16 operands
    assert_close(host(ga.rrelu(dev(x), training=True, seed=11)), ref.rrelu(f64(x), training=True, seed=11), bf16)
    r = ga.rrelu_backward(dev(g), dev(x), training=True, seed=11)
    assert_close(host(r), ref.rrelu_backward(f64(g), f64(x), training=True, seed=11), bf16)
