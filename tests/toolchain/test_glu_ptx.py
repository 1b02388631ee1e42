"""glu's backward kernels of the CUDA backend (gpu_act/backends/cuda/gated.py,
one per gate) compile to PTX without a driver and fit the launches
``_config`` gives them (``ptx.assert_ptx``), with no local memory left by
the 16-bit bit casts. Every gate of the registry: float64 on the strided
path, float32 (float16 operands) on the flat path; bfloat16 operands on both
paths for one gate. The forward is the elementwise
``scaled`` kernel, which tests/toolchain/test_nvvm_ptx.py compiles.
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402
from gpu_act.registry import ACTIVATIONS, PLAIN  # noqa: E402

from ptx import I64, T, TUP, arr, assert_ptx  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

gt = importlib.import_module("gpu_act.backends.cuda.gated")
cd = importlib.import_module("gpu_act.backends.cuda._codecs")


def sig(stored, ctype, path, nparams):
    p = T.UniTuple(_cuda.from_dtype(np.dtype(ctype)), nparams) if nparams else T.Tuple(())
    if path == "flat":
        return (arr(stored),) * 5 + (p,)
    return (arr(stored), I64, TUP) * 5 + (TUP, p)


def gates():
    """(label, forward, derivative, kernel parameters) of every gate and choice."""
    out = []
    for name in PLAIN:
        act = ACTIVATIONS[name]
        n = len([p for p in act.params if not p.choices])
        for label, (f, d) in (act.variants.items() if act.variants else [(None, (act.forward, act.derivative))]):
            out.append((name if label is None else f"{name}-{label}", f, d, n))
    return out


def assert_gate(kernel, signature, ctype):
    """The kernel's PTX (``ptx.assert_ptx``), with no stack frame: the bit casts
    of 16-bit operands leave no local memory."""
    ptx, r = assert_ptx(kernel, signature, "elementwise", ctype)
    assert r is None or r.stack == 0, r
    return ptx


@pytest.mark.parametrize("label,f,d,n", gates(), ids=[g[0] for g in gates()])
def test_every_gate_compiles_and_fits(label, f, d, n):
    f64, f32 = np.dtype(np.float64), np.dtype(np.float32)
    assert_gate(gt.kernel(f, d, f64, "strided"), sig(f64, f64, "strided", n), f64)
    assert_gate(gt.kernel(f, d, f32, "flat"), sig(np.float16, f32, "flat", n), f32)


def test_bfloat16_operands():
    act = ACTIVATIONS["softplus"]
    f32 = np.dtype(np.float32)
    for path in ("flat", "strided"):
        k = gt.kernel(act.forward, act.derivative, f32, path, (cd.BF16,) * 5)
        ptx = assert_gate(k, sig(np.uint16, f32, path, 2), f32)
        assert ".local" not in ptx and "ld.global.u16" in ptx and "st.global.u16" in ptx
