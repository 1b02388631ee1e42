"""The CuPy backend's logsumexp kernels and softmin (softmax at a negative
temperature, kernels/softmax.cu) run on the CPU: the real sources built with
g++ against the CUDA emulation of tests/toolchain/hostcuda.py, launched
through the backend's own launchers (gpu_act/backends/cupy/rowwise.py) for
every team, layout and special row, under several thread schedules (a race
fails), every output element checked written, nothing written outside the
arrays; results against the float64 reference at the shared tolerances."""

import numpy as np
import pytest
import reference as R
from tolerances import assert_close

import hostcuda as H
from test_gxx_kernels import LAYOUTS, TEAMS, WITH_BF16, Rig, annotated, check_written, special_rows
from test_gxx_kernels import cache_dir, module  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(H.GXX is None, reason="g++ is not on PATH: the host build of kernels/ needs it")

ROWS = {1: 40, 7: 37, 33: 34, 1025: 3}


def _kept(shape, axis):
    return tuple(1 if k == axis else n for k, n in enumerate(shape))


def run_logsumexp(rig, direction, dtype, x, axis, t=1.0, layout="aligned", msg=""):
    lin, lout = LAYOUTS[layout]
    what = f"logsumexp {direction} {dtype} {x.shape} axis={axis} T={t} {layout} {msg}"
    with np.errstate(all="ignore"):
        xq = x.astype(dtype)
        r = R.logsumexp(xq, axis, True, t)
    xin = H.place(xq, **lin)
    if direction == "fwd":
        out = H.place(np.zeros(r.shape), dtype, poison=True, **lout)
        with annotated(what):
            rig.rowwise.logsumexp(xin, axis, t, None, out)
        want = r
    else:
        with np.errstate(all="ignore"):
            rq = r.astype(dtype)
            gq = np.random.default_rng(x.size).standard_normal(r.shape).astype(dtype)
        out = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
        with annotated(what):
            rig.rowwise.logsumexp_backward(H.place(gq, **lin), xin, H.place(rq, **lin), axis, t, None, out)
        want = R.logsumexp_backward(gq, xq, rq, axis, True, t)
    check_written(out, what)
    assert_close(np.asarray(out), want, dtype, msg=what)


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_logsumexp_every_team_row_length_and_layout(module, team, dtype, direction):
    rng = np.random.default_rng(1)
    for n in ROWS:
        for layout in ("aligned", "misaligned", "F", "flip", "C-in-F-out"):
            rig = Rig(module, team=team, grid_cap=3)
            run_logsumexp(rig, direction, dtype, rng.standard_normal((ROWS[n], n)) * 3, 1, 0.7 if n == 33 else 1.0,
                          layout)
            assert rig.launches and all(f"logsumexp_{direction}" in e for e, *_ in rig.launches)


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("dtype", WITH_BF16)
def test_logsumexp_special_rows(module, dtype, direction):
    # NaN, +-inf, all -inf, one finite entry, huge values; the special value first, in the
    # middle and last (the tail after 16-byte packs)
    for team in TEAMS:
        for n, layout in ((1, "aligned"), (7, "misaligned"), (33, "aligned"), (1025, "flip")):
            run_logsumexp(Rig(module, team=team, grid_cap=2), direction, dtype, special_rows(n, dtype), 1,
                          layout=layout, msg=f"team={team}")


def test_logsumexp_planned_team_any_axis_and_empty_rows(module):
    rng = np.random.default_rng(2)
    for shape in ((40, 4, 10), (3, 5, 1100)):
        x = rng.standard_normal(shape)
        for axis in range(3):
            for direction in ("fwd", "bwd"):
                run_logsumexp(Rig(module, sms=1), direction, "float32", x, axis, layout="F")
    rig = Rig(module)
    out = H.place(np.zeros((3, 1)), "float64", poison=True)
    rig.rowwise.logsumexp(H.place(np.zeros((3, 0))), 1, 1.0, None, out)  # rows with no element: -inf
    assert (np.asarray(out) == -np.inf).all()


@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_softmin_is_softmax_at_a_negative_temperature(module, team, dtype):
    # the forward negates its loads by the sign of 1/T (-0.0's too, T = -1e300: 1/T rounds
    # to -0.0 in float); the backward scales by the signed 1/T
    rng = np.random.default_rng(3)
    for n, layout in ((7, "misaligned"), (33, "aligned"), (1025, "flip"), (33, "F")):
        x = special_rows(n, dtype) if n != 33 else rng.standard_normal((ROWS[n], n)) * 3
        for t in (0.7, 1e300):
            if dtype == "float64" and t > 1:
                continue  # 1/T is a normal double: no rounding to -0.0 to test there
            with np.errstate(all="ignore"):
                xq = x.astype(dtype)
            for direction in ("fwd", "bwd"):
                rig = Rig(module, team=team, grid_cap=2)
                what = f"softmin {direction} {dtype} n={n} T={t} {layout} team={team}"
                lin, lout = LAYOUTS[layout]
                out = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
                if direction == "fwd":
                    with annotated(what):
                        rig.rowwise.softmax(H.place(xq, **lin), 1, -t, False, None, out)
                    want = R.softmin(xq, 1, t)
                else:
                    with np.errstate(all="ignore"):
                        y = R.softmin(xq, 1, 0.7).astype(dtype)
                        g = rng.standard_normal(x.shape).astype(dtype)
                    with annotated(what):
                        rig.rowwise.softmax_backward(H.place(g, **lin), H.place(y, **lin), 1, -t, False, None, out)
                    want = R.softmin_backward(g, y, 1, t)
                check_written(out, what)
                assert_close(np.asarray(out), want, dtype, msg=what)
