"""Streamed (non-temporal) stores of large CPU outputs (gpu_act/backends/cpu/_nontemporal.py).

Outputs of at least ``_nontemporal.MIN_BYTES`` are computed into an aligned L1
buffer and written with non-temporal vector stores after a plain head up to the
first cache-line boundary. Here the threshold is lowered so small arrays take
that path, and every way a destination can sit (any offset from a cache line,
lengths around the vector width and the stage size, strided, element-misaligned)
is checked against the reference, with the memory around it untouched.
"""

import re

import numba
import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from gpu_act import _compile
from gpu_act.backends.cpu import _nontemporal, elementwise
from tolerances import assert_close

STAGE = _nontemporal.STAGE
LENGTHS = (1, 15, 16, 17, STAGE - 1, STAGE, STAGE + 1, 3 * STAGE + 5, elementwise.STREAM_CHUNK + 37)


@pytest.fixture
def streamed(monkeypatch):
    monkeypatch.setattr(_nontemporal, "MIN_BYTES", 0)
    assert _nontemporal.wanted(4) == _nontemporal.ENABLED


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("op", ["hardswish", "sigmoid"])  # no exp, and one: both stream
def test_streamed_output_at_every_offset(streamed, op, n, dtype):
    from gpu_act import formulas

    assert _nontemporal.transcendental_cost(getattr(formulas, op + "_fwd")) <= _nontemporal.MAX_COST
    x = np.random.default_rng(n).standard_normal(n).astype(dtype) * 4
    want = ref.forward(op, x)
    width = _nontemporal.VECTOR_BYTES // np.dtype(dtype).itemsize
    for offset in range(0, width, 3):
        backing = np.full(n + 2 * width, -7.0, dtype)
        out = backing[offset : offset + n]
        assert getattr(ga, op)(x, out=out) is out
        assert_close(out, want, dtype)
        assert (backing[:offset] == -7.0).all() and (backing[offset + n :] == -7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streamed_strided_and_misaligned_outputs(streamed, dtype):
    n = 2 * STAGE + 3
    x = np.linspace(-6, 6, n).astype(dtype)
    want = ref.forward("relu6", x)
    backing = np.full(2 * n, -7.0, dtype)
    assert_close(ga.relu6(x, out=backing[::2]), want, dtype)
    assert (backing[1::2] == -7.0).all()
    # an element that does not start on a multiple of its size: written plainly
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    odd = raw[1:].view(dtype)
    assert not odd.flags.aligned
    assert_close(ga.relu6(x, out=odd), want, dtype)


def test_streamed_2d_rows_and_broadcast_inputs(streamed):
    # rows of a strided 2-D view: every row restarts the head before a cache line
    g = np.random.default_rng(3).standard_normal((7, 3 * STAGE + 9)).astype(np.float32)
    x = np.random.default_rng(4).standard_normal((7, 3 * STAGE + 9)).astype(np.float32)
    out = np.full((7, 4 * STAGE), -7.0, np.float32)[:, 5 : 5 + x.shape[1]]
    ga.hardtanh_backward(g, x, out=out)
    assert_close(out, ref.backward("hardtanh", g, x), np.float32)


def test_transcendental_cost_decides_streaming():
    from gpu_act import formulas

    cost = _nontemporal.transcendental_cost
    assert cost(formulas.hardswish_fwd) == cost(formulas.relu_der) == 0
    # through other formulas: silu_fwd -> swish_fwd -> sigmoid_fwd -> exp
    assert cost(formulas.silu_fwd) == cost(formulas.mish_fwd) == 1
    assert cost(formulas.gelu_fwd) == 2  # gelu_cdf -> erfc
    assert cost(formulas.softplus_fwd) == 2  # exp and log1p
    assert cost(formulas.mish_der) == 3  # exp, mish_tsp -> exp, sigmoid_fwd -> exp
    assert cost(formulas.silu_fwd) <= _nontemporal.MAX_COST < cost(formulas.silu_der)


@pytest.mark.skipif(not _nontemporal.ENABLED, reason="non-temporal stores are used on x86-64 only")
def test_streamed_kernel_uses_vector_non_temporal_stores():
    w = _compile.instantiate(
        elementwise.WRAPPERS["unary"], {"_g": elementwise.formulas(np.dtype(np.float32))["relu_fwd"]}, "t", numba.njit
    )
    seg = _compile.instantiate(elementwise._segment, {"_w": w}, "t", numba.njit)
    bound = {"_segment": seg, "_whole": seg, "_STREAM": True, "_CHUNK": elementwise.STREAM_CHUNK}
    k = _compile.instantiate(elementwise._template, bound, "t", lambda f: numba.njit(f, error_model="numpy"))
    x = np.ones((1, 1, 100), np.float32)  # the (P, R, n) views of _views.flat
    k(x, x, x, np.empty_like(x), ())
    asm = k.inspect_asm(k.signatures[0])
    assert re.search(r"\bv?movnt(p[sd]|dq)\s+%[xyz]mm", asm), "no packed non-temporal store in the streamed kernel"
    assert "sfence" in asm
