"""The CuPy backend's gated linear units run on the CPU: its ElementwiseKernels
(the forward, ``scaled`` over the two half views; the backward, the body of
``kernels.gated_operation``) built with g++ against the CUDA emulation of
tests/toolchain/hostcuda.py and called through the backend itself
(``halves``, ``scaled``, ``gated_backward``) on half views of every layout,
in place and into outputs that overlap grad_output; every output element
checked written, against the float64 reference."""

import numpy as np
import pytest
import reference as R
from tolerances import assert_close

import hostcuda as H
from gpu_act.registry import ACTIVATIONS
from test_gxx_kernels import LAYOUTS, WITH_BF16, Rig, check_written
from test_gxx_kernels import cache_dir, module  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(H.GXX is None, reason="g++ is not on PATH: the host build of kernels/ needs it")


def run_glu(rig, dtype, x, axis, gate, params, layout):
    """forward and backward of glu along ``axis`` through the backend, checked."""
    api, ctx = rig.api, rig.ctx
    act = ACTIVATIONS[gate]
    f, d, p = act.kernels(act.bind("test", (), params, np.float32))
    lin, lout = LAYOUTS[layout]
    with np.errstate(all="ignore"):
        xq = x.astype(dtype)
    xin = H.place(xq, **lin)
    b, a = api.halves(ctx, xin, axis)
    half = b.shape
    what = f"glu {gate} {dtype} {x.shape} axis={axis} {layout}"
    y = H.place(np.zeros(half), dtype, poison=True, **lout)
    api.scaled(ctx, f, b, a, p, y)
    check_written(y, what)
    assert_close(np.asarray(y), R.glu(xq, axis, gate, **params), dtype, msg=what)
    g = np.random.default_rng(x.size).standard_normal(half).astype(dtype)
    out = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
    db, da = api.halves(ctx, out, axis)
    api.gated_backward(ctx, f, d, H.place(g, **lin), a, b, p, da, db)
    check_written(out, what)
    assert_close(np.asarray(out), R.glu_backward(g, xq, axis, gate, **params), dtype, msg=f"bwd {what}")


@pytest.mark.parametrize("dtype", WITH_BF16)
def test_glu_every_dtype_and_layout(module, cache_dir, dtype):
    rig = Rig(module, cache_dir=cache_dir)
    x = np.random.default_rng(1).standard_normal((5, 12)) * 3
    x[0, :3], x[1, 6:9] = [np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf]
    for layout in ("aligned", "F", "step2", "flip", "C-in-F-out"):
        for axis in (1, 0) if layout == "aligned" else (1,):
            xx = x if axis == 1 else x[:4]
            run_glu(rig, dtype, xx, axis, "softplus", {"beta": 2.0, "threshold": 5.0}, layout)


def test_glu_gates(module, cache_dir):
    rig = Rig(module, cache_dir=cache_dir)
    x = np.random.default_rng(2).standard_normal((3, 8)) * 3
    for gate, params in (("sigmoid", {}), ("gelu", {"approximate": "tanh"}), ("relu", {})):
        run_glu(rig, "float32", x, 1, gate, params, "aligned")


def test_glu_backward_in_place_and_overlapping(module, cache_dir):
    rig = Rig(module, cache_dir=cache_dir)
    api, ctx = rig.api, rig.ctx
    act = ACTIVATIONS["silu"]
    x = np.random.default_rng(3).standard_normal((4, 10))
    g = np.random.default_rng(4).standard_normal((4, 5))
    want = R.glu_backward(g, x, 1, "silu")
    xin = H.place(x)
    b, a = api.halves(ctx, xin, 1)
    api.gated_backward(ctx, act.forward, act.derivative, H.place(g), a, b, (), a, b)  # in place
    assert_close(np.asarray(xin), want, np.float64)
    buf = np.zeros((4, 15))
    buf[:, 10:] = g
    bufd = H.place(buf)
    db, da = api.halves(ctx, bufd[:, 5:], 1)  # overlaps grad_output, read from bufd[:, 10:]
    xin = H.place(x)
    b, a = api.halves(ctx, xin, 1)
    api.gated_backward(ctx, act.forward, act.derivative, bufd[:, 10:], a, b, (), da, db)
    assert_close(np.asarray(bufd)[:, 5:], want, np.float64)
