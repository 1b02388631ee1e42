"""glu's backward kernels of the CUDA backend (gpu_act/backends/cuda/gated.py,
one per gate) compile to PTX without a driver and fit the launches
``_config`` gives them (ptxas -v, ``resources.py``): registers x the
elementwise block <= 65,536, no spills, no local memory left by the bfloat16
bit casts. Every gate of the registry: float64 on the strided path for sm_90
(the heaviest build, resources checked), float32 on the flat path for sm_80;
bfloat16 operands on both paths for one gate. The forward is the elementwise
``scaled`` kernel, which tests/toolchain/test_nvvm_ptx.py compiles.
"""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402
from gpu_act.registry import ACTIVATIONS, PLAIN  # noqa: E402

import resources  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

T = _cuda.types
gt = importlib.import_module("gpu_act.backends.cuda.gated")
cd = importlib.import_module("gpu_act.backends.cuda._codecs")
_config = importlib.import_module("gpu_act.backends.cuda._config")
I64 = T.int64
TUP = T.UniTuple(I64, 2)


def arr(dtype):
    return T.Array(_cuda.from_dtype(np.dtype(dtype)), 1, "C")


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


def assert_fits(ptx, ctype):
    if not resources.ptxas_path():
        return
    threads = _config.max_threads("elementwise", np.dtype(ctype).itemsize)
    ((_, r),) = resources.ptx_resources(ptx, "90").items()
    assert resources.registers_for_block(r.registers, threads) <= resources.REGISTERS_PER_SM, r
    assert r.spill_stores == r.spill_loads == 0 and r.stack == 0, r


@pytest.mark.parametrize("label,f,d,n", gates(), ids=[g[0] for g in gates()])
def test_every_gate_compiles_and_fits(label, f, d, n):
    f64, f32 = np.dtype(np.float64), np.dtype(np.float32)
    ptx = _cuda.compile_ptx(gt.kernel(f, d, f64, "strided"), sig(f64, f64, "strided", n), (9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    assert_fits(ptx, f64)
    ptx = _cuda.compile_ptx(gt.kernel(f, d, f32, "flat"), sig(np.float16, f32, "flat", n), (8, 0))
    assert ".target sm_80" in ptx and ".entry" in ptx


def test_bfloat16_operands():
    act = ACTIVATIONS["softplus"]
    f32 = np.dtype(np.float32)
    for path in ("flat", "strided"):
        k = gt.kernel(act.forward, act.derivative, f32, path, (cd.BF16,) * 5)
        ptx = _cuda.compile_ptx(k, sig(np.uint16, f32, path, 2), (9, 0))
        assert ".local" not in ptx and "ld.global.u16" in ptx and "st.global.u16" in ptx
        assert_fits(ptx, f32)
