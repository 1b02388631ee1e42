"""In place on the CPU (``out=`` the input itself) gives the out-of-place bits.

With ``out`` and an input as two kernel arguments LLVM cannot tell that a load
and a store of the same index touch the same address: its vectorized loops run
behind a run-time check that the two pointers lie a vector block apart, which
identical pointers fail, and the scalar loop sums a softmax row one term after
another (less accurate, and several times slower). In place the kernels write
through the input's own argument (gpu_act/backends/cpu/_kernels.py), so they
vectorize as out of place and give the same bits.
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

import gpu_act as ga
import reference as ref
from helpers import sample
from tolerances import assert_close

softmax_mod = importlib.import_module("gpu_act.backends.cpu.softmax")
elementwise_mod = importlib.import_module("gpu_act.backends.cpu.elementwise")
codecs = importlib.import_module("gpu_act.backends.cpu._codecs")
launch_mod = importlib.import_module("gpu_act.backends.cpu._kernels")
numba_mod = importlib.import_module("gpu_act.backends.cpu._numba")


def _same_bits(actual, expected, msg=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, msg
    it = np.dtype(f"u{actual.dtype.itemsize}")
    a, e = np.ascontiguousarray(actual).view(it), np.ascontiguousarray(expected).view(it)
    bad = (a != e) & ~(np.isnan(actual) & np.isnan(expected))
    assert not bad.any(), f"{msg}: {int(bad.sum())} of {bad.size} differ, e.g. {actual[bad][:4]} vs {expected[bad][:4]}"


DTYPES = (np.float16, np.float32, np.float64)
# a contiguous row, a strided one, a middle axis, a row longer than a task's buffer
# (each below _kernels.PARALLEL_MIN elements: the serial kernels; the parallel ones
# run in place in test_in_place_rows_sum_to_one, the same row code in a prange)
SHAPES = [((37, 1025), -1), ((37, 1025), 0), ((3, 5, 2049), 1), ((1, 40000), -1)]
# float32 on every shape, and with 1/T on a contiguous and a strided row; float64
# (the same kernels, wider) and float16 (through a buffer) on a contiguous, a
# strided and a long row
ROW_CASES = (
    [(np.float32, shape, axis, 1.0) for shape, axis in SHAPES]
    + [(np.float32, shape, axis, 0.7) for shape, axis in SHAPES[:2]]
    + [(np.float64, *SHAPES[0], 1.0), (np.float64, *SHAPES[2], 0.7), (np.float64, *SHAPES[3], 1.0)]
    + [(np.float16, *SHAPES[0], 0.7), (np.float16, *SHAPES[1], 1.0), (np.float16, *SHAPES[3], 1.0)]
)


@pytest.mark.parametrize("dtype,shape,axis,temperature", ROW_CASES,
                         ids=[f"{np.dtype(d).name}-{s}-{a}-{t}" for d, s, a, t in ROW_CASES])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_in_place_is_bitwise(op, dtype, shape, axis, temperature):
    x = sample(shape, dtype, seed=len(shape) + shape[-1], scale=4.0)
    kw = {"axis": axis, "temperature": temperature}
    want = getattr(ga, op)(x, **kw)
    xi = x.copy()
    assert getattr(ga, op)(xi, out=xi, **kw) is xi
    _same_bits(xi, want, f"{op} in place")
    # the backward passes in place, into grad_output and into output
    g = sample(shape, dtype, seed=5, scale=1.0, kinks=False)
    bwd = getattr(ga, op + "_backward")
    gb = bwd(g, want, **kw)
    gi = g.copy()
    assert bwd(gi, want, out=gi, **kw) is gi
    _same_bits(gi, gb, "backward, out=grad_output")
    yi = want.copy()
    assert bwd(g, yi, out=yi, **kw) is yi
    _same_bits(yi, gb, "backward, out=output")


VIEWS = {
    "transposed": lambda a: a.T,
    "strided": lambda a: a[::2, 1::3],
    "negative": lambda a: a[::-1, ::-1],
    "3d_swapped": lambda a: a.reshape(6, 10, 64).transpose(2, 0, 1)[:, ::-1],
}


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_views_are_bitwise(dtype, view):
    """In place into a view gives the bits of out of place into an output of the
    same layout (a softmax row's sum runs as its layout lets it: an output row of
    another layout may round the last bit differently), and is within the tolerance
    of the reference whatever the layout."""
    base = sample((60, 64), dtype, seed=3)
    g = sample((60, 64), dtype, seed=4, scale=1.0, kinks=False)
    v = VIEWS[view]

    def like(a):  # an output of the view's layout
        return v(np.empty_like(a))

    for op in ("softmax", "log_softmax"):
        for axis in (0, -1):
            want = getattr(ga, op)(v(base), axis=axis, out=like(base))
            b = base.copy()
            getattr(ga, op)(v(b), axis=axis, out=v(b))
            _same_bits(v(b), want, f"{op} axis={axis}")
            assert_close(v(b), getattr(ref, op)(v(base), axis=axis), dtype)
            gb = g.copy()
            getattr(ga, op + "_backward")(v(gb), want, axis=axis, out=v(gb))
            _same_bits(v(gb), getattr(ga, op + "_backward")(v(g), want, axis=axis), f"{op}_backward axis={axis}")
    with np.errstate(all="ignore"):
        for name in ("sigmoid",):  # the in-place path is one template for every formula
            b = base.copy()
            getattr(ga, name)(v(b), out=v(b))
            _same_bits(v(b), getattr(ga, name)(v(base)), name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "relu"])  # a transcendental loop, a memory-bound (streamed) one
def test_elementwise_in_place_is_bitwise(dtype, name):
    x = sample((200, 301), dtype, seed=6)  # rows across the kernel's chunks, below PARALLEL_MIN elements
    g = sample((200, 301), dtype, seed=7, scale=1.0, kinks=False)
    with np.errstate(all="ignore"):
        want = getattr(ga, name)(x)
        xi = x.copy()
        assert getattr(ga, name)(xi, out=xi) is xi
        _same_bits(xi, want, name)
        bwd = getattr(ga, name + "_backward")
        gb = bwd(g, x)
        gi, xi = g.copy(), x.copy()
        _same_bits(bwd(gi, x, out=gi), gb, "out=grad_output")
        _same_bits(bwd(g, xi, out=xi), gb, "out=x")
        # prelu's slope and rrelu's slopes as a third operand
        w = np.linspace(-0.5, 0.5, 301).astype(dtype)
        xi = x.copy()
        _same_bits(ga.prelu(xi, w, out=xi), ga.prelu(x, w), "prelu")
        xi = x.copy()
        _same_bits(ga.rrelu(xi, training=True, seed=3, out=xi), ga.rrelu(x, training=True, seed=3), "rrelu")


@pytest.mark.parametrize("c", [-8.99, -5.0, -12.0])
def test_in_place_long_row_sum_is_accurate(c):
    # one large term and 1023 small ones: summed one after another in float32 the
    # small terms lose their low bits against the running sum
    x = np.full((2, 1024), c, np.float32)
    x[:, 0] = 0.0
    for op in ("softmax", "log_softmax"):
        want = getattr(ref, op)(x)
        xi = x.copy()
        getattr(ga, op)(xi, out=xi)
        assert_close(xi, want, np.float32)
        _same_bits(xi, getattr(ga, op)(x), op)


def test_in_place_rows_sum_to_one():
    x = np.random.default_rng(0).standard_normal((512, 4096)).astype(np.float32)
    xi = x.copy()
    ga.softmax(xi, out=xi)
    assert np.abs(xi.sum(axis=1, dtype=np.float64) - 1.0).max() < 1e-6
    _same_bits(xi, ga.softmax(x))


def _alias_checks(ir):
    # LLVM's run-time checks that two pointers do not overlap (vectorized loop or scalar)
    return len(re.findall(r"vector\.memcheck|diff\.check|found\.conflict", ir))


def _vector_loops(ir):
    return len(re.findall(r"^vector\.body[.\w]*:", ir, re.M))


def _uncached(fn):
    return numba_mod.jit(fn, cache=False)  # compiled here, so its LLVM IR can be read


def _uncached_kernel(fn):
    return numba_mod.Kernel(_uncached, fn)  # typed any-layout, as the backend's kernels


_uncached.__name__ = _uncached_kernel.__name__ = "uncached"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_softmax_kernel_drops_the_alias_checks(dtype):
    c = codecs.codec(dtype)
    x = np.random.default_rng(1).standard_normal((1, 4, 1024)).astype(dtype)
    irs = {}
    for dst in (1, 0):  # out of place (out), in place (x)
        k = softmax_mod._kernel(softmax_mod._forward, np.dtype(dtype), 10, (c, c), dst, (True, True),
                                how=_uncached_kernel)
        k(x.copy(), softmax_mod._ANY, x.copy(), None, False, 1)  # _ANY: the unmasked kernel's stand-in mask
        (sig,) = k.dispatcher.signatures  # any-layout arrays, rows cast contiguous
        irs[dst] = k.dispatcher.inspect_llvm(sig)
    assert _vector_loops(irs[0]) == _vector_loops(irs[1]) > 0
    # out of place LLVM checks at run time that x and out do not overlap; in place
    # there is nothing to check between them (the task's buffer is checked in both)
    assert _alias_checks(irs[0]) < _alias_checks(irs[1])


def test_in_place_elementwise_segment_has_no_alias_checks():
    ctype = np.dtype(np.float32)
    w = launch_mod._compile.instantiate(
        elementwise_mod.WRAPPERS["unary"], {"_g": elementwise_mod.formulas(ctype)["gelu_fwd"]}, "t", launch_mod.ijit
    )
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    irs = {}
    for dst in (3, 0):
        seg = launch_mod._compile.instantiate(elementwise_mod._segment, {"_w": w, "_dst": launch_mod.pick(dst)}, "t", _uncached)
        seg(x, x, x, x.copy(), ())
        irs[dst] = seg.inspect_llvm(seg.signatures[0])
    assert _vector_loops(irs[0]) == _vector_loops(irs[3]) > 0
    assert _alias_checks(irs[3]) > 0 and _alias_checks(irs[0]) == 0
