"""mask= (JAX's where=) on softmax, log_softmax, their backward passes, logsumexp
(and its backward) and cross_entropy, against the float64 reference.

The rule, for every op: only the True entries of the mask (a bool array that
broadcasts to x) take part in a row; masked entries get probability 0
(log-probability -inf) and gradient 0 whatever the row holds; a row with no
unmasked entry is all 0 (all -inf), its logsumexp -inf, its gradient 0, and
cross_entropy ignores it as ignore_index (not counted by "mean")."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import grad_fd, sample, to_backend, to_numpy
from tolerances import DTYPES, FD_ATOL, FD_RTOL, assert_close

FWD = {"softmax": ref.masked_softmax, "log_softmax": ref.masked_log_softmax}
BWD = {"softmax": ref.masked_softmax_backward, "log_softmax": ref.masked_log_softmax_backward}


def _call(fn, backend, *arrays, mask=None, **kw):
    args = [to_backend(a, backend) for a in arrays]
    m = None if mask is None else to_backend(np.asarray(mask), backend)
    return to_numpy(fn(*args, mask=m, backend=backend, **kw))


def masks(shape, axis, seed):
    """(name, mask) of every kind: full, broadcast along the rows (one row's mask
    for all), broadcast along the axis (whole rows on or off), a scalar; each with
    a row of no unmasked entry where it can have one."""
    rng = np.random.default_rng(seed)
    full = rng.random(shape) > 0.35
    rows = [slice(None)] * len(shape)
    rows[axis] = 0
    full[tuple(rows)] = True
    other = [slice(None)] * len(shape)
    other[(axis + 1) % len(shape)] = 1
    full[tuple(other)] = False  # a row with no unmasked entry
    along = np.ones(shape[axis], bool)
    along[1::3] = False
    per_row = list(shape)
    per_row[axis] = 1
    row_mask = rng.random(per_row) > 0.3
    row_mask.reshape(-1)[0] = False
    lead = [1] * len(shape)
    lead[axis] = shape[axis]
    return [("full", full), ("along", along.reshape(lead)), ("per_row", row_mask), ("scalar", np.array(True))]


def layouts(dtype, cases=(((6, 40), -1), ((40, 6), 0), ((3, 5, 7), 1))):
    """(shape, axis) of rows of unit stride, then strided ones: all in float32, the
    first alone in the other dtypes. A row's layout and its storage dtype are
    independent parts of a kernel (rows are cast to contiguous or not before any
    load through the codec): each compiled combination is another kernel, and the
    full product adds compiles, not cases."""
    return cases if np.dtype(dtype) == np.float32 else cases[:1]


def with_specials(x, mask):
    """NaN and +-inf at masked entries (they must not matter), and a row of only
    -inf among its unmasked entries (all NaN, as without a mask)."""
    x = x.copy()
    off = ~np.broadcast_to(mask, x.shape)
    flat, offf = x.reshape(-1), off.reshape(-1)
    spots = np.flatnonzero(offf)[:3]
    flat[spots] = [np.nan, np.inf, -np.inf][: spots.size]
    return x


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family(backend, op, dtype):
    for shape, axis in layouts(dtype):
        for name, mask in masks(shape, axis % len(shape), seed=len(shape) + axis):
            x = with_specials(sample(shape, dtype, seed=1), mask)
            what = f"{op} {shape} axis={axis} mask={name}"
            y = _call(getattr(ga, op), backend, x, mask=mask, axis=axis, temperature=0.7)
            assert_close(y, FWD[op](x, mask, axis, 0.7), dtype, msg=what)
            g = sample(shape, dtype, seed=2, scale=1.0, kinks=False)
            g[np.broadcast_to(~np.asarray(mask), shape)] = np.inf  # never read
            d = _call(getattr(ga, op + "_backward"), backend, g, y, mask=mask, axis=axis, temperature=0.7)
            assert_close(d, BWD[op](g, y, mask, axis, 0.7), dtype, msg="bwd " + what)
            assert np.isfinite(d[np.broadcast_to(~np.asarray(mask), shape)]).all()


def test_rows_with_no_unmasked_entry_and_masked_specials(backend):
    x = np.array([[1.0, np.nan, 2.0, np.inf], [-np.inf, 3.0, np.nan, 0.0], [-np.inf, -np.inf, 1.0, 2.0]])
    m = np.array([[True, False, True, False], [False, False, False, False], [True, True, False, False]])
    assert_close(_call(ga.softmax, backend, x, mask=m), [[1 / (1 + np.e), 0, np.e / (1 + np.e), 0], [0] * 4,
                                                          [np.nan, np.nan, 0, 0]], np.float64)
    ly = _call(ga.log_softmax, backend, x, mask=m)
    assert (ly[1] == -np.inf).all() and (ly[0, [1, 3]] == -np.inf).all() and np.isnan(ly[2, :2]).all()
    lse = _call(ga.logsumexp, backend, x, mask=m)
    assert_close(lse, [np.log(np.e + np.e ** 2), -np.inf, -np.inf], np.float64)
    d = _call(ga.logsumexp_backward, backend, np.ones(3), x, lse, mask=m)
    assert (d[1] == 0).all() and (d[0, [1, 3]] == 0).all()  # finite where masked, never NaN
    assert np.isnan(d[2, :2]).all()  # an unmasked row of only -inf: its softmax is NaN


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp(backend, dtype):
    for shape, axis in layouts(dtype):
        for name, mask in masks(shape, axis % len(shape), seed=3):
            x = with_specials(sample(shape, dtype, seed=4), mask)
            what = f"{shape} axis={axis} mask={name}"
            r = _call(ga.logsumexp, backend, x, mask=mask, axis=axis, keepdims=True, temperature=0.8)
            assert_close(r, ref.logsumexp(x, axis, True, 0.8, mask), dtype, msg=what)
            g = sample(r.shape, dtype, seed=5, kinks=False)
            d = _call(ga.logsumexp_backward, backend, g, x, r, mask=mask, axis=axis, keepdims=True, temperature=0.8)
            assert_close(d, ref.logsumexp_backward(g, x, r, axis, True, 0.8, mask), dtype, msg="bwd " + what)


def test_bfloat16(backend):
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    x = sample((5, 30), np.float64, seed=6).astype(bf16)
    xf = x.astype(np.float64)
    m = np.random.default_rng(7).random((5, 30)) > 0.4
    y = _call(ga.softmax, backend, x, mask=m)
    assert y.dtype == bf16
    assert_close(y, ref.masked_softmax(xf, m), bf16)
    assert_close(_call(ga.logsumexp, backend, x, mask=m[:1]), ref.logsumexp(xf, mask=m[:1]), bf16)
    loss = _call(ga.cross_entropy, backend, x, np.array([int(np.flatnonzero(r)[0]) for r in m]), mask=m)
    assert_close(loss, ref.masked_cross_entropy(xf, [int(np.flatnonzero(r)[0]) for r in m], m)[0], bf16)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_backward_finite_differences(backend, op):
    x = sample((3, 5, 4), np.float64, seed=8, kinks=False)
    m = np.random.default_rng(9).random((3, 1, 4)) > 0.3
    m[0, 0, 0] = True
    fwd = getattr(ga, op)
    y = _call(fwd, backend, x, mask=m, axis=1)
    g = sample(y.shape, np.float64, seed=10, kinks=False)
    if op == "logsumexp":
        d = _call(ga.logsumexp_backward, backend, g, x, y, mask=m, axis=1)
    else:
        d = _call(getattr(ga, op + "_backward"), backend, g, y, mask=m, axis=1)
    # the masked entries of y, and the logsumexp of a row with none unmasked, are
    # constants (0 or -inf): keep them out of the sum
    live = np.broadcast_to(m, x.shape) if op != "logsumexp" else np.isfinite(y)

    def loss(v):
        out = _call(fwd, backend, v, mask=m, axis=1)
        return np.sum(np.where(live, g * out, 0.0))

    assert_close(d, grad_fd(loss, x), np.float64, rtol=FD_RTOL, atol=FD_ATOL)


def test_out_in_place_and_0d(backend):
    x = sample((4, 9), np.float64, seed=11)
    m = np.random.default_rng(12).random((1, 9)) > 0.3
    expected = ref.masked_log_softmax(x, m)
    assert ga.log_softmax(x, mask=m, out=x) is x
    assert_close(x, expected, np.float64)
    assert float(_call(ga.softmax, backend, np.array(2.0), mask=np.array(False))) == 0.0
    assert float(_call(ga.logsumexp, backend, np.array(2.0), mask=np.array(False))) == -np.inf
    assert float(_call(ga.logsumexp, backend, np.array(2.0), mask=np.array(True))) == 2.0


def test_broadcast_masks_are_not_copied(monkeypatch):
    # (1, n) and (rows, 1) masks reach the kernels through stride 0: no contiguous copy is made
    from gpu_act.backends.cpu import _kernels

    def refuse(*a, **k):
        raise AssertionError("a contiguous copy was made")

    monkeypatch.setattr(_kernels.np, "ascontiguousarray", refuse)
    x = sample((6, 40), np.float32, seed=13)
    for m in (np.random.default_rng(14).random((1, 40)) > 0.3, np.array([[True], [False]] * 3)):
        assert_close(ga.softmax(x, mask=m), ref.masked_softmax(x, m), np.float32)
        assert_close(ga.logsumexp(x, mask=m), ref.logsumexp(x, mask=m), np.float32)


# ---------------------------------------------------------------- cross entropy
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(backend, dtype):
    rng = np.random.default_rng(15)
    for shape, axis in layouts(dtype, (((6, 23), -1), ((7, 4, 5), 1))):
        ax = axis % len(shape)
        for name, mask in masks(shape, ax, seed=16):
            z = sample(shape, dtype, seed=17)
            full = np.broadcast_to(mask, shape)
            z[~full] = np.nan  # masked logits are never read
            rows_shape = shape[:ax] + shape[ax + 1 :]
            # class indices on unmasked classes where the row has one; one ignored
            t = np.argmax(np.moveaxis(full, ax, -1), axis=-1)
            t.reshape(-1)[-1] = -100
            p = rng.random(shape) * full
            p = (p / np.maximum(p.sum(axis=ax, keepdims=True), 1e-30)).astype(dtype)
            w = rng.uniform(0.5, 1.5, shape[ax])
            for target in (t, p):
                for kw in ({"reduction": "mean"}, {"reduction": "none", "label_smoothing": 0.1, "weight": w,
                                                  "z_loss": 1e-3, "softcap": 4.0}):
                    what = f"{shape} axis={axis} mask={name} {target.dtype} {kw}"
                    wk = {**kw, "weight": to_backend(np.asarray(w, dtype), backend)} if "weight" in kw else kw
                    loss, grad, lse = (to_numpy(a) for a in ga.cross_entropy(
                        to_backend(z, backend), to_backend(target, backend), axis, mask=to_backend(mask, backend),
                        return_grad=True, return_lse=True, backend=backend, **wk))
                    rk = {**kw, "weight": np.asarray(w, dtype).astype(np.float64)} if "weight" in kw else kw
                    rl, rg, rlse = ref.masked_cross_entropy(z, target, mask, axis, **rk)
                    assert rows_shape == rlse.shape
                    assert_close(loss, rl, dtype, msg=what)
                    assert_close(grad, rg, dtype, msg=what)
                    assert_close(lse, rlse, np.float64 if dtype == np.float64 else np.float32, msg=what)


def test_cross_entropy_rules(backend):
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [1.0, -1.0, 2.0]])
    m = np.array([[True, True, False], [False, False, False], [True, True, True]])
    t = np.array([1, 0, 2])

    def ce(*a, **k):
        return _call(ga.cross_entropy, backend, *a, **k)

    # the row with no class is ignored: not counted by the mean, gradient 0
    rows = ce(z, t, mask=m, reduction="none")
    assert rows[1] == 0.0
    assert_close(ce(z, t, mask=m), rows[[0, 2]].mean(), np.float64)
    assert_close(rows[0], np.log(np.e + np.e ** 2) - 2.0, np.float64)  # the masked class is not there
    # a target on a masked class: its log-probability is -inf
    assert ce(z, np.array([2, 0, 2]), mask=m, reduction="none")[0] == np.inf
    # label smoothing spreads over the row's classes: 2 in row 0
    l0 = ce(z, t, mask=m, label_smoothing=0.2, reduction="none")[0]
    lp = np.array([1.0, 2.0]) - np.log(np.e + np.e ** 2)
    assert_close(l0, -(0.8 * lp[1] + 0.1 * lp.sum()), np.float64)
    # all rows without a class: the mean is NaN (nothing counted), the gradient 0
    loss, grad = ga.cross_entropy(to_backend(z, backend), to_backend(t, backend),
                                  mask=to_backend(np.zeros(3, bool), backend), return_grad=True, backend=backend)
    assert np.isnan(to_numpy(loss)) and (to_numpy(grad) == 0).all()


def test_cross_entropy_matches_torch_on_filled_logits():
    torch = pytest.importorskip("torch")
    # without smoothing, a mask is the logits filled with -inf at masked classes
    rng = np.random.default_rng(18)
    z = rng.standard_normal((6, 9))
    m = rng.random((6, 9)) > 0.3
    m[:, 0] = True
    t = np.zeros(6, np.int64)
    zt = torch.tensor(np.where(m, z, -np.inf), requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(t))
    lt.backward()
    loss, grad = ga.cross_entropy(z, t, mask=m, return_grad=True)
    assert_close(loss, lt.item(), np.float64)
    assert_close(grad, zt.grad.numpy(), np.float64)
    st = torch.softmax(torch.tensor(np.where(m, z, -np.inf)), -1).numpy()
    assert_close(ga.softmax(z, mask=m), st, np.float64)
