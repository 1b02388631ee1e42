"""Gated linear units on the CUDA backend under the Numba CUDA simulator.

Runs only in its own process with the simulator switched on:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator

The forward is the elementwise ``scaled`` kernel over the two half views; the
backward's own kernel runs on its flat path (a 1-D x: both halves dense) and
its strided path, every dtype, a gate with parameters and a choice one, in
place and into an out that overlaps grad_output (through temporaries).
"""

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
]

import reference as ref  # noqa: E402
from helpers import sample  # noqa: E402
from tolerances import DTYPES, assert_close  # noqa: E402

cuda = _cuda.cuda


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    assert type(r).__module__.startswith("numba"), type(r)
    return r.copy_to_host()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((12,), 0), ((3, 10), -1), ((6, 4), 0)], ids=["flat", "rows", "axis0"])
def test_glu_paths_and_dtypes(shape, axis, dtype):
    x = sample(shape, dtype, seed=1)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    half = list(shape)
    half[axis] //= 2
    g = sample(tuple(half), dtype, seed=2, kinks=False)
    for gate, params in (("sigmoid", {}), ("softplus", {"beta": 2.0, "threshold": 5.0})):
        y = host(ga.glu(dev(x), axis, activation=gate, **params))
        assert y.dtype == dtype
        assert_close(y, ref.glu(x, axis, gate, **params), dtype, msg=gate)
        d = host(ga.glu_backward(dev(g), dev(x), axis, activation=gate, **params))
        assert_close(d, ref.glu_backward(g, x, axis, gate, **params), dtype, msg=gate)


def test_shortcuts_in_place_and_overlap():
    x = sample((4, 10), np.float64, seed=3)
    g = sample((4, 5), np.float64, seed=4)
    assert_close(host(ga.geglu(dev(x), approximate="tanh")), ref.glu(x, activation="gelu", approximate="tanh"),
                 np.float64)
    want = ref.glu_backward(g, x, activation="silu")
    d = dev(x)
    assert ga.swiglu_backward(dev(g), d, out=d) is d
    assert_close(host(d), want, np.float64)
    buf = np.zeros((4, 15))
    buf[:, 10:] = g
    b = dev(buf)
    ga.swiglu_backward(b[:, 10:], dev(x), out=b[:, 5:])  # out overlaps grad_output
    assert_close(host(b)[:, 5:], want, np.float64)


def test_bfloat16():
    bf16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    x = sample((3, 8), np.float64, seed=5).astype(bf16)
    g = sample((3, 4), np.float64, seed=6).astype(bf16)
    y = host(ga.reglu(dev(x)))
    assert y.dtype == bf16
    assert_close(y, ref.glu(x.astype(np.float64), activation="relu"), bf16)
    d = host(ga.glu_backward(dev(g), dev(x), activation="gelu"))
    assert_close(d, ref.glu_backward(g.astype(np.float64), x.astype(np.float64), activation="gelu"), bf16)
