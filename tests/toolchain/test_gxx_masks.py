"""The CuPy backend's masked kernels run on the CPU: kernels/softmax.cu (softmax,
log_softmax, their backward passes, logsumexp and its backward) and
kernels/cross_entropy.cu with a mask (bool, read through its own strides,
stride 0 where broadcast), built with g++ against the CUDA emulation of
tests/toolchain/hostcuda.py and launched through the backend's own launchers
for every team, under several thread schedules (a race fails), every output
element checked written, nothing written outside the arrays; the backend's
live_rows and check_targets on the NumPy stand-in for CuPy. Against the
float64 reference at the shared tolerances."""

import numpy as np
import pytest
import reference as R
from tolerances import assert_close

import hostcuda as H
from test_gxx_kernels import LAYOUTS, TEAMS, WITH_BF16, Rig, annotated, check_written, compute_dtype, special_rows
from test_gxx_kernels import cache_dir, module  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(H.GXX is None, reason="g++ is not on PATH: the host build of kernels/ needs it")


def mask_for(shape, seed, kind):
    """A mask of ``kind``: "full", "row" (one row's mask broadcast to all rows) or
    "column" (whole rows on or off); row 1 has no unmasked entry where it can."""
    rng = np.random.default_rng(seed)
    if kind == "row":
        return rng.random((1, shape[1])) > 0.35
    if kind == "column":
        m = rng.random((shape[0], 1)) > 0.3
        m[0] = True
        m[1] = False
        return m
    m = rng.random(shape) > 0.35
    m[0, 0] = True
    m[1] = False
    return m


def run_masked(rig, op, dtype, x, mask, layout, t=0.7):
    lin, lout = LAYOUTS[layout]
    what = f"{op} {dtype} {x.shape} mask {mask.shape} {layout}"
    with np.errstate(all="ignore"):
        xq = x.astype(dtype)
    xin, m = H.place(xq, **lin), H.device(mask)
    if op in ("softmax", "log_softmax"):
        log = op == "log_softmax"
        fwd = R.masked_log_softmax if log else R.masked_softmax
        out = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
        with annotated(what):
            rig.rowwise.softmax(xin, 1, t, log, m, out)
        check_written(out, what)
        assert_close(np.asarray(out), fwd(xq, mask, 1, t), dtype, msg=what)
        with np.errstate(all="ignore"):
            y = fwd(xq, mask, 1, t).astype(dtype)
            g = np.random.default_rng(x.size).standard_normal(x.shape).astype(dtype)
        bwd = R.masked_log_softmax_backward if log else R.masked_softmax_backward
        dout = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
        with annotated("bwd " + what):
            rig.rowwise.softmax_backward(H.place(g, **lin), H.place(y, **lin), 1, t, log, m, dout)
        check_written(dout, "bwd " + what)
        assert_close(np.asarray(dout), bwd(g, y, mask, 1, t), dtype, msg="bwd " + what)
    else:
        r = R.logsumexp(xq, 1, True, t, mask)
        out = H.place(np.zeros(r.shape), dtype, poison=True, **lout)
        with annotated(what):
            rig.rowwise.logsumexp(xin, 1, t, m, out)
        check_written(out, what)
        assert_close(np.asarray(out), r, dtype, msg=what)
        with np.errstate(all="ignore"):
            rq = r.astype(dtype)
            g = np.random.default_rng(x.size).standard_normal(r.shape).astype(dtype)
        dout = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
        with annotated("bwd " + what):
            rig.rowwise.logsumexp_backward(H.place(g, **lin), xin, H.place(rq, **lin), 1, t, m, dout)
        check_written(dout, "bwd " + what)
        assert_close(np.asarray(dout), R.logsumexp_backward(g, xq, rq, 1, True, t, mask), dtype, msg="bwd " + what)


@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_masked_row_ops_every_team(module, team, dtype):
    for n, layout in ((7, "misaligned"), (33, "aligned"), (1025, "flip"), (40, "F")):
        x = special_rows(n, dtype)
        for kind in ("full", "row", "column"):
            mask = mask_for(x.shape, n, kind)
            for op in ("softmax", "log_softmax", "logsumexp"):
                run_masked(Rig(module, team=team, grid_cap=2), op, dtype, x, mask, layout)


def test_masked_row_ops_with_the_planned_team(module):
    """No team forced: _config.plan's own choice for each layout (a strided axis of
    enough rows: thread; short rows: warp; long ones: block)."""
    rng = np.random.default_rng(1)
    seen = set()
    for shape, layout in (((40, 6), "F"), ((5, 33), "aligned"), ((3, 1100), "aligned")):
        x = rng.standard_normal(shape) * 2
        for kind in ("full", "row"):
            rig = Rig(module, sms=1)
            run_masked(rig, "log_softmax", "float32", x, mask_for(shape, 3, kind), layout)
            seen |= {e.split(",")[1].strip() for e, *_ in rig.launches}
    assert seen == {"0", "1", "2"}, f"teams planned: {seen}"


CE_KINDS = ("index", "prob")


@pytest.mark.parametrize("kind", CE_KINDS)
@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_masked_cross_entropy_every_team(module, team, dtype, kind):
    rng = np.random.default_rng(2)
    for n, layout, opts in ((7, "misaligned", {}), (33, "aligned", {"eps": 0.1, "weighted": True, "z_loss": 1e-3}),
                            (1025, "flip", {"eps": 0.2, "softcap": 4.0}), (40, "F", {"weighted": True})):
        z = rng.standard_normal((9, n)) * 3
        for mkind in ("full", "row", "column"):
            mask = mask_for(z.shape, n + len(mkind), mkind)
            z = np.where(np.broadcast_to(mask, z.shape), z, np.nan)  # masked logits are never read
            run_masked_xent(Rig(module, team=team, grid_cap=2), kind, dtype, z, mask, layout, **opts)


def run_masked_xent(rig, kind, dtype, z, mask, layout, eps=0.0, weighted=False, z_loss=0.0, softcap=None):
    lin, _ = LAYOUTS[layout]
    what = f"masked cross_entropy {kind} {dtype} {z.shape} mask {mask.shape} {layout} eps={eps} w={weighted}"
    with np.errstate(all="ignore"):
        zq = z.astype(dtype)
    full = np.broadcast_to(mask, z.shape)
    rng = np.random.default_rng(z.shape[1])
    if kind == "index":
        t = np.argmax(full, axis=1)
        t[2] = -100
        t[3] = (t[3] + 1) % z.shape[1]  # maybe on a masked class: +inf
    else:
        t = (rng.random(z.shape) * np.where(full, 1.0, rng.random(z.shape) < 0.1)).astype(dtype)
    w = rng.uniform(0.25, 2.0, z.shape[1]).astype(compute_dtype(dtype)) if weighted else None
    kw = dict(label_smoothing=eps, weight=w, z_loss=z_loss, softcap=softcap)
    loss_ref, grad_ref, lse_ref = R.masked_cross_entropy(zq, t, mask, 1, reduction="none", **kw)
    api, ctx = rig.api, rig.ctx
    live, count = api.live_rows(ctx, H.device(mask), zq.shape, 1)
    np.testing.assert_array_equal(np.asarray(live), full.any(axis=1))
    assert count == int(full.any(axis=1).sum())
    if kind == "index":
        valid = (t != -100) & full.any(axis=1)
        counted, _ = api.check_targets(ctx, "t", H.device(t), z.shape[1], -100, None if w is None else H.place(w),
                                       live)
        assert counted == int(valid.sum())
    with annotated(what):
        loss, grad, lse = api.cross_entropy(ctx, H.place(zq, **lin), t if kind == "index" else H.place(t, **lin), 1,
                                            kind == "index", -100, eps, None if w is None else H.place(w), z_loss,
                                            softcap, 1.0, True, True, H.device(mask))
    for got, want, name in ((loss, loss_ref, "loss"), (lse, lse_ref, "lse"), (grad, grad_ref, "grad")):
        check_written(got, f"{what} {name}")
        assert_close(np.asarray(got), want, dtype, msg=f"{what} {name}")
