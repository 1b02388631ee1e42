"""mask= on the CUDA backend under the Numba CUDA simulator: the masked kernels
of softmax, log_softmax, their backward passes, logsumexp and cross_entropy
in every variant ``_config.plan`` gives them (thread, warp, block, and
block-shared for the forward), masks broadcast through stride 0, rows with no
unmasked entry or with NaN, +inf or only -inf among the unmasked ones, and the
backend's live_rows / check_targets.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator
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
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
]

import cuda_sim  # noqa: E402
import reference as ref  # noqa: E402
from helpers import sample  # noqa: E402
from tolerances import assert_close  # noqa: E402

cuda = _cuda.cuda
_config = importlib.import_module("gpu_act.backends.cuda._config")
be = importlib.import_module("gpu_act.backends.cuda")
cuda_sim.install()


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    return r.copy_to_host()


def variant(op, x, axis=-1):
    n = x.shape[axis]
    c = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    return _config.plan(op, x.size // n, n, _config.row_layout(x, axis), c.itemsize, _cuda.limits(0)).variant


def mask_of(shape, axis, seed):
    m = np.random.default_rng(seed).random(shape) > 0.35
    rows = [slice(None)] * len(shape)
    rows[(axis + 1) % len(shape)] = 0
    m[tuple(rows)] = False  # a row with no unmasked entry
    return m


CASES = [  # (shape, axis, dtype, expected variant of the forward)
    ((5, 33), -1, np.float16, "warp"),
    ((2, 1100), -1, np.float32, "block-shared"),  # the backward: "block" (test_special_rows: the forward's)
    ((6, 40), 0, np.float64, "thread"),
]


@pytest.mark.parametrize("shape,axis,dtype,expect", CASES, ids=[c[3] for c in CASES])
def test_softmax_family_and_logsumexp(shape, axis, dtype, expect):
    x = sample(shape, dtype, seed=1)
    m = mask_of(shape, axis % 2, seed=2)
    x[~m] = np.nan  # masked entries are never read
    assert variant("softmax_masked", x, axis) == expect
    for log, fwd, bwd in ((False, ref.masked_softmax, ref.masked_softmax_backward),
                          (True, ref.masked_log_softmax, ref.masked_log_softmax_backward)):
        f = ga.log_softmax if log else ga.softmax
        y = host(f(dev(x), axis=axis, temperature=0.7, mask=dev(m)))
        assert_close(y, fwd(x, m, axis, 0.7), dtype)
        g = sample(shape, dtype, seed=3, kinks=False)
        b = ga.log_softmax_backward if log else ga.softmax_backward
        assert_close(host(b(dev(g), dev(y), axis=axis, temperature=0.7, mask=dev(m))), bwd(g, y, m, axis, 0.7), dtype)
    r = host(ga.logsumexp(dev(x), axis=axis, mask=dev(m), keepdims=True))
    assert_close(r, ref.logsumexp(x, axis, True, mask=m), dtype)
    gr = sample(r.shape, dtype, seed=4, kinks=False)
    d = host(ga.logsumexp_backward(dev(gr), dev(x), dev(r), axis=axis, mask=dev(m), keepdims=True))
    assert_close(d, ref.logsumexp_backward(gr, x, r, axis, True, mask=m), dtype)


@pytest.mark.parametrize("n,dtype,expect", [(1100, np.float32, "block-shared"), (2100, np.float64, "block")],
                         ids=["block-shared", "block"])
def test_special_rows(small_device, n, dtype, expect):
    # unmasked entries: normal, with a NaN, with +inf, all -inf; then a row with none
    x = sample((5, n), dtype, seed=10)
    assert variant("softmax_masked", x) == expect
    m = np.random.default_rng(11).random((5, n)) > 0.3
    x[~m] = np.nan  # never read
    x[1, np.flatnonzero(m[1])[3]] = np.nan
    x[2, np.flatnonzero(m[2])[5]] = np.inf
    x[3, m[3]] = -np.inf
    m[4] = False
    for f, want in ((ga.softmax, ref.masked_softmax), (ga.log_softmax, ref.masked_log_softmax)):
        y = host(f(dev(x), mask=dev(m), temperature=0.7))
        assert_close(y, want(x, m, -1, 0.7), dtype)
        assert ((y[~m] == 0) if f is ga.softmax else (y[~m] == -np.inf)).all()


def test_broadcast_masks():
    x = sample((6, 40), np.float32, seed=5)
    for m in (np.random.default_rng(6).random((1, 40)) > 0.3, np.array([[True], [False], [True]] * 2)):
        assert_close(host(ga.softmax(dev(x), mask=dev(m))), ref.masked_softmax(x, m), np.float32)
        assert_close(host(ga.logsumexp(dev(x), mask=dev(m))), ref.logsumexp(x, mask=m), np.float32)


CE_CASES = [  # (shape, axis, dtype, expected variant)
    ((5, 7), -1, np.float16, "warp"),
    ((2, 1030), -1, np.float32, "block"),
    ((5, 4, 8), 1, np.float64, "thread"),
]


@pytest.mark.parametrize("shape,axis,dtype,expect", CE_CASES, ids=[c[3] for c in CE_CASES])
def test_cross_entropy(shape, axis, dtype, expect):
    ax = axis % len(shape)
    z = sample(shape, dtype, seed=7)
    assert variant("cross_entropy_masked", z, axis) == expect
    m = mask_of(shape, ax, seed=8)
    z[~m] = np.nan
    t = np.argmax(np.moveaxis(m, ax, -1), axis=-1)
    t.reshape(-1)[-1] = -100
    p = (np.random.default_rng(9).random(shape) * m).astype(dtype)
    w = np.linspace(0.5, 1.5, shape[ax]).astype(np.float64 if dtype == np.float64 else np.float32)
    # the weighted mean (its denominator counts the live rows' target weights), and
    # every other option on per-row losses
    options = (({"reduction": "mean"}, True),
               ({"reduction": "none", "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 4.0}, False))
    for target in (t, p):
        for kw, weighted in options:
            loss, grad, lse = ga.cross_entropy(dev(z), dev(target), axis, mask=dev(m), return_grad=True,
                                               return_lse=True, weight=dev(w) if weighted else None, **kw)
            rl, rg, rlse = ref.masked_cross_entropy(z, target, m, axis, weight=w if weighted else None, **kw)
            assert_close(host(loss), rl, dtype)
            assert_close(host(grad), rg, dtype)
            assert_close(host(lse), rlse, dtype)


def test_live_rows_and_check_targets():
    m = np.random.default_rng(10).random((3, 1, 5)) > 0.5
    m[1] = False
    p = dev(np.zeros(1))
    ctx = be.context(p, None)
    native = be.asarray(ctx, dev(m))
    live, count = be.live_rows(ctx, native, (3, 4, 5), 2)
    want = np.broadcast_to(m.any(axis=2), (3, 4))
    assert count == int(want.sum())
    np.testing.assert_array_equal(host(be.wrap(ctx, live, p)), want)
    t = np.array([[0, 1, 2, 3]] * 3)
    t[2, 3] = 7  # out of range, but only an error where its row is live
    w = be.asarray(ctx, dev(np.arange(1.0, 6.0)))
    if want[2, 3]:
        with pytest.raises(ValueError, match="target index 7"):
            be.check_targets(ctx, "f", be.asarray(ctx, dev(t)), 5, -100, w, live)
        t[2, 3] = 4
    counted, den = be.check_targets(ctx, "f", be.asarray(ctx, dev(t)), 5, -100, w, live)
    assert counted == int(want.sum()) and den == float(np.where(want, t + 1.0, 0).sum())
