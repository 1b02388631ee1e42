"""Every CUDA kernel, for every dtype and variant, compiles to PTX (no driver
needed: numba-cuda[cu12] brings NVVM) once, and fits the launch configuration
it is given (``ptx.assert_ptx``: the compute capability each kernel is built
for, the argument types, the resource checks).
"""

import importlib

import numpy as np
import pytest

numba_cuda = pytest.importorskip("numba.cuda")

from gpu_act import _cuda  # noqa: E402
from gpu_act import formulas as F  # noqa: E402
from gpu_act.registry import ACTIVATIONS  # noqa: E402

import resources  # noqa: E402
from ptx import I64, T, TUP, arr, assert_ptx, compute, from_dtype, row_op, scalar  # noqa: E402

pytestmark = pytest.mark.skipif(_cuda.SIMULATOR, reason="PTX needs the real CUDA target, not the simulator")

ew = importlib.import_module("gpu_act.backends.cuda.elementwise")
mp = importlib.import_module("gpu_act.backends.cuda._map")
sm = importlib.import_module("gpu_act.backends.cuda.softmax")
spx = importlib.import_module("gpu_act.backends.cuda.sparsemax")
ce = importlib.import_module("gpu_act.backends.cuda.cross_entropy")
nll = importlib.import_module("gpu_act.backends.cuda.nll_loss")
bce = importlib.import_module("gpu_act.backends.cuda.binary_cross_entropy")
mo = importlib.import_module("gpu_act.backends.cuda.maxout")
rd = importlib.import_module("gpu_act.backends.cuda.reduce")
_config = importlib.import_module("gpu_act.backends.cuda._config")

DTYPES = (np.float16, np.float32, np.float64)


# ---------------------------------------------------------------- elementwise
def _nparams(f):
    for act in ACTIVATIONS.values():
        for fwd, der in [(act.forward, act.derivative), *act.variants.values()]:
            if f in (fwd, der):
                return len([p for p in act.params if not p.choices])
    return 0


FORMULAS = sorted(
    {f for a in ACTIVATIONS.values() for pair in [(a.forward, a.derivative), *a.variants.values()] for f in pair},
    key=lambda f: f.__name__,
)


def _ew_sig(dtype, path, nparams, slope=False):
    p = T.UniTuple(scalar(dtype), nparams) if nparams else T.Tuple(())
    if path == "flat":
        return (arr(dtype),) * 4 + (p,)
    op = (arr(dtype), I64, TUP)
    return op * 4 + (TUP, p)


def _wrapper(formula):
    return "unary" if formula.__name__.endswith("_fwd") else "scaled"


# The formula and the path (flat or strided, with float16 loads and stores or
# not) are independent parts of a kernel: every formula compiles in both compute
# types, float32 on the flat path and float64 on the strided one (the most
# registers); every path in every dtype with a few formulas (no parameter, two;
# exp, erf, a branch).
@pytest.mark.parametrize("formula", FORMULAS, ids=lambda f: f.__name__)
def test_elementwise_kernels_compile(formula):
    n = _nparams(formula)
    for dtype, path in ((np.float32, "flat"), (np.float64, "strided")):
        k = mp.kernel(_wrapper(formula), formula, compute(dtype), path)
        assert_ptx(k, _ew_sig(dtype, path, n), "elementwise", compute(dtype))


@pytest.mark.parametrize("formula", [F.relu_fwd, F.gelu_der, F.softplus_fwd], ids=lambda f: f.__name__)
def test_elementwise_paths_compile_in_every_dtype(formula):
    for dtype in DTYPES:
        for path in ("flat", "strided"):
            k = mp.kernel(_wrapper(formula), formula, compute(dtype), path)
            assert_ptx(k, _ew_sig(dtype, path, _nparams(formula)), "elementwise", compute(dtype))


@pytest.mark.parametrize(
    "wrapper,formula",
    [("unary_slope", F.leaky_relu_fwd), ("scaled_slope", F.leaky_relu_der), ("scaled_slope", F.leaky_relu_slope_der), ("copy", None)],
    ids=["prelu", "prelu_backward", "prelu_weight", "copy"],
)
def test_slope_and_copy_kernels_compile(wrapper, formula):
    for dtype in DTYPES:
        for path in ("flat", "strided"):
            ctype = np.dtype(dtype) if formula is None else compute(dtype)
            assert_ptx(mp.kernel(wrapper, formula, ctype, path), _ew_sig(dtype, path, 0), "elementwise", ctype)


def test_rrelu_slopes_kernel_compiles():
    for ctype in (np.float32, np.float64):
        c = from_dtype(np.dtype(ctype))
        assert_ptx(ew.slopes_kernel(ctype), (arr(ctype), T.uint64, c, c), "elementwise", ctype)


# ---------------------------------------------------------------- row-wise
VARIANTS = ("thread", "warp", "block")


@pytest.mark.parametrize("variant", VARIANTS + ("block-shared",))
def test_softmax_kernels_compile(variant):
    for dtype in DTYPES:
        k = sm.kernel("forward", compute(dtype), variant)
        assert_ptx(k, row_op(dtype) * 2 + (TUP, I64, I64, scalar(dtype), T.boolean), variant, compute(dtype))
        if variant != "block-shared":
            k = sm.kernel("backward", compute(dtype), variant)
            assert_ptx(k, row_op(dtype) * 3 + (TUP, I64, I64, scalar(dtype), T.boolean), variant, compute(dtype))


def test_block_variants_use_shared_memory_and_warp_variant_shuffles():
    sig = row_op(np.float32) * 2 + (TUP, I64, I64, T.float32, T.boolean)
    warp = _cuda.compile_ptx(sm.kernel("forward", np.float32, "warp"), sig, (9, 0))
    assert "shfl.sync.bfly" in warp
    shared = _cuda.compile_ptx(sm.kernel("forward", np.float32, "block-shared"), sig, (9, 0))
    assert ".shared" in shared and "bar.sync" in shared
    # block kernels carry their launch bound; warp kernels leave ptxas free
    assert ".maxntid 1024" in shared and ".maxntid" not in warp


@pytest.mark.skipif(resources.ptxas_path() is None, reason="no ptxas")
@pytest.mark.parametrize("op,masked", [("softmax", False), ("softmax", True), ("sparsemax", False)])
@pytest.mark.parametrize("name", ["forward", "backward"])
def test_warp_rows_are_held_in_registers(op, name, masked):
    # float32 compute (float16 and float32 storage; sparsemax, whose loops have no
    # exp, in float64 too): each lane's 32 elements of a row of up to 1,024 (x; g
    # and y) stay in registers between the passes (and sparsemax's bisection
    # steps), each read once: the loops over them unrolled (at least 32 loads per
    # operand in the PTX, where a loop over the row has one or two; NVVM may copy
    # the unrolled loop per branch of log), no local memory
    load = {np.float16: "ld.global.u16", np.float32: "ld.global.f32", np.float64: "ld.global.f64"}
    bool_op = (arr(np.bool_), I64, TUP, I64)
    values = 1 if name == "forward" else 2
    for dtype in (np.float16, np.float32) + ((np.float64,) if op == "sparsemax" else ()):
        codec = sm._codecs.of(np.dtype(dtype))
        cc = (8, 0) if dtype == np.float64 else (9, 0)
        if op == "softmax":
            sig = row_op(dtype) * values + (bool_op if masked else ()) + row_op(dtype) + (TUP, I64, I64,
                                                                                          scalar(dtype), T.boolean)
            k = sm.kernel(name, np.float32, "warp", codec, masked)
        else:
            sig = row_op(dtype) * (values + 1) + (TUP, I64, I64)
            k = spx.kernel(name, compute(dtype), "warp", codec)
        ptx = _cuda.compile_ptx(k, sig, cc)
        ((_, r),) = resources.ptx_resources(ptx, f"{cc[0]}{cc[1]}").items()
        assert r.stack == 0 and ".local" not in ptx, (dtype, r)
        assert ptx.count(load[dtype]) >= 32 * values, (dtype, ptx.count(load[dtype]))


INDEX_DTYPES = (np.int64, np.int32, np.uint8)


def index_op(dtype):
    """A row operand of class indices (no class axis)."""
    return (arr(dtype), I64, TUP, I64)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", ["index", "prob"])
def test_cross_entropy_kernels_compile(variant, target):
    # index targets of any integer dtype, probability targets of any float dtype
    # (with float32 logits: a target's load is one instruction of the kernel);
    # class weights, per-row losses and lse in the compute dtype
    for dtype in DTYPES:
        c = scalar(dtype)
        if target == "index":
            targets = [index_op(t) for t in (INDEX_DTYPES if dtype == np.float32 else INDEX_DTYPES[:1])]
        else:
            targets = [row_op(t) for t in (DTYPES if dtype == np.float32 else (dtype,))]
        for t in targets:
            sig = (row_op(dtype) * 2 + t + (arr(compute(dtype)),) * 3 + (TUP, I64, I64, I64) + (c,) * 5
                   + (T.boolean,) * 3)
            assert_ptx(ce.kernel(target, compute(dtype), variant), sig, variant, compute(dtype))


def test_check_targets_kernel_compiles():
    k = ce.check_kernel()
    for tdt in (np.int64, np.int32):
        for wdt in (np.float32, np.float64):  # class weights in the compute dtype
            sig = (arr(tdt), I64, TUP, TUP, I64, I64, I64, arr(wdt), arr(np.float64), arr(np.int64), T.boolean)
            assert_ptx(k, sig, "elementwise", np.float64)


def test_nll_loss_kernel_compiles():
    for dtype in DTYPES:
        c = compute(dtype)
        for tdt in INDEX_DTYPES if dtype == np.float32 else INDEX_DTYPES[:1]:
            sig = row_op(dtype) * 2 + index_op(tdt) + (arr(c), arr(c), TUP, I64, I64, from_dtype(c)) + (T.boolean,) * 2
            assert_ptx(nll.kernel(c), sig, "elementwise", c)


@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probs"])
def test_binary_cross_entropy_kernels_compile(logits):
    # targets and weights of another float dtype than the input's too
    for dtype in DTYPES:
        c = compute(dtype)
        for other in (dtype, np.float64 if dtype != np.float64 else np.float16):
            ops = (dtype, other, other, other, c, dtype)
            tail = (from_dtype(c),) + (T.boolean,) * 3
            for path in ("flat", "strided"):
                if path == "flat":
                    sig = tuple(arr(d) for d in ops)
                else:
                    sig = sum(((arr(d), I64, TUP) for d in ops), ()) + (TUP,)
                assert_ptx(bce.kernel(logits, c, path), sig + tail, "elementwise", c)


@pytest.mark.parametrize("name", ["forward", "backward"])
def test_maxout_kernels_compile(name):
    for dtype in DTYPES:
        ops = 2 if name == "forward" else 3
        assert_ptx(mo.kernel(name, compute(dtype)), row_op(dtype) * ops + (TUP, I64, I64, I64), "elementwise", compute(dtype))


def test_group_sum_kernel_compiles():
    # channel sums accumulate in the input's compute dtype, ``total`` in float64 from any input
    for dtype in DTYPES:
        for c in {compute(dtype), np.dtype(np.float64)}:
            for out in DTYPES:
                assert_ptx(rd.kernel(c), row_op(dtype) + (TUP, I64, arr(out), from_dtype(c)), "reduce", c)


@pytest.mark.skipif(resources.ptxas_path() is None, reason="no ptxas")
@pytest.mark.parametrize("dtype", DTYPES)
def test_block_shared_rows_fit_the_shared_memory_they_are_given(dtype):
    # the longest row the configuration keeps in shared memory, plus the kernel's
    # own static shared memory as ptxas counts it, fits a 48 KiB block
    lim = _cuda.Limits(sm_count=132, max_threads=1024, shared_per_block=48 * 1024)
    c = compute(dtype).itemsize
    n = lim.shared_per_block // c
    while _config.plan("softmax", 1, n, "unit", c, lim).variant != "block-shared":
        n -= 1
    config = _config.plan("softmax", 1, n, "unit", c, lim)
    sig = row_op(dtype) * 2 + (TUP, I64, I64, scalar(dtype), T.boolean)
    ptx = _cuda.compile_ptx(sm.kernel("forward", compute(dtype), "block-shared"), sig, (9, 0))
    ((_, r),) = resources.ptx_resources(ptx, "90").items()
    assert config.shared + r.static_shared <= lim.shared_per_block, (n, config, r)


def test_fill_kernel_compiles():
    for dtype in (*DTYPES, np.int64):
        assert_ptx(rd.fill_kernel(), (arr(dtype), from_dtype(np.dtype(dtype))), "elementwise", np.float32)


# ---------------------------------------------------------------- bfloat16
# bfloat16 operands reach the kernels as uint16 views (``_codecs``), and each
# kernel is built once per combination of its operands' codecs: every kernel
# kind with a bfloat16 operand, in every variant, with the other operands'
# dtypes it meets (float32 slopes, weights, targets, sums).
cd = importlib.import_module("gpu_act.backends.cuda._codecs")
B, N = cd.BF16, cd.NATIVE
U16 = np.uint16
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def _stored(codec, native=F32):
    return U16 if codec == B else native


def _ew_sig_of(dtypes, path, nparams):
    p = T.UniTuple(T.float32, nparams) if nparams else T.Tuple(())
    if path == "flat":
        return tuple(arr(d) for d in dtypes) + (p,)
    return sum(((arr(d), I64, TUP) for d in dtypes), ()) + (TUP, p)


BF16_EW = [  # (wrapper, formula, parameters, codecs of a, b, c, out, native dtype of the others, ctype)
    ("unary", F.softplus_fwd, 2, (B, B, B, B), F32, F32),
    ("scaled", F.gelu_tanh_der, 0, (B, B, B, B), F32, F32),
    ("unary_slope", F.leaky_relu_fwd, 0, (B, N, N, B), F32, F32),  # RReLU: float32 slopes
    ("scaled_slope", F.leaky_relu_der, 0, (B, B, N, B), F32, F32),
    ("scaled_slope", F.leaky_relu_slope_der, 0, (B, B, B, N), F32, F32),  # PReLU's float32 weight terms
    ("copy", None, 0, (B, B, B, N), F32, F32),  # astype from bfloat16
    ("copy", None, 0, (N, N, N, B), F64, F32),  # astype to bfloat16 (through float32)
]


@pytest.mark.parametrize("wrapper,formula,nparams,codecs,native,ctype", BF16_EW,
                         ids=[f"{c[0]}-{'-'.join(c[3])}" for c in BF16_EW])
def test_bfloat16_elementwise_kernels_compile(wrapper, formula, nparams, codecs, native, ctype):
    dtypes = [_stored(c, native) for c in codecs]
    for path in ("flat", "strided"):
        k = mp.kernel(wrapper, formula, ctype, path, codecs)
        assert_ptx(k, _ew_sig_of(dtypes, path, nparams), "elementwise", ctype)


@pytest.mark.parametrize("variant", VARIANTS + ("block-shared",))
def test_bfloat16_row_kernels_compile(variant):
    f32 = T.float32
    sig = row_op(U16) * 2 + (TUP, I64, I64, f32, T.boolean)
    assert_ptx(sm.kernel("forward", F32, variant, B), sig, variant, F32)
    if variant == "block-shared":
        return
    assert_ptx(sm.kernel("backward", F32, variant, B), row_op(U16) * 3 + (TUP, I64, I64, f32, T.boolean), variant, F32)
    # cross-entropy: bfloat16 logits and gradient; index targets, or bfloat16 or float32 probabilities
    tail = (arr(F32),) * 3 + (TUP, I64, I64, I64) + (f32,) * 5 + (T.boolean,) * 3
    for name, t, codecs in (("index", index_op(np.int64), (B, N)), ("prob", row_op(U16), (B, B)),
                            ("prob", row_op(F32), (B, N))):
        assert_ptx(ce.kernel(name, F32, variant, codecs), row_op(U16) * 2 + t + tail, variant, F32)


def test_bfloat16_thread_kernels_compile():
    f32 = T.float32
    sig = row_op(U16) * 2 + index_op(np.int64) + (arr(F32), arr(F32), TUP, I64, I64, f32) + (T.boolean,) * 2
    assert_ptx(nll.kernel(F32, B), sig, "elementwise", F32)
    for name, ops in (("forward", 2), ("backward", 3)):
        assert_ptx(mo.kernel(name, F32, B), row_op(U16) * ops + (TUP, I64, I64, I64), "elementwise", F32)
    # float32 sums stored as bfloat16: channel sums (float32) and totals (float64)
    for c in (F32, F64):
        assert_ptx(rd.kernel(c, (N, B)), row_op(F32) + (TUP, I64, arr(U16), from_dtype(c)), "reduce", c)
    assert_ptx(rd.fill_kernel(), (arr(U16), T.uint16), "elementwise", F32)


@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probs"])
def test_bfloat16_binary_cross_entropy_kernels_compile(logits):
    tail = (T.float32,) + (T.boolean,) * 3
    for codecs in ((B, B, B, B), (B, N, N, N)):  # t, w, pw in bfloat16, or float32
        dtypes = [_stored(c) for c in codecs] + [F32, U16]  # + losses, gradient
        for path in ("flat", "strided"):
            if path == "flat":
                sig = tuple(arr(d) for d in dtypes)
            else:
                sig = sum(((arr(d), I64, TUP) for d in dtypes), ()) + (TUP,)
            assert_ptx(bce.kernel(logits, F32, path, codecs), sig + tail, "elementwise", F32)


def test_bfloat16_conversions_are_register_moves():
    # the bit casts leave no local memory behind, and a bfloat16 store rounds with integer operations
    sig = (arr(U16),) * 4 + (T.Tuple(()),)
    ptx = _cuda.compile_ptx(mp.kernel("unary", F.relu_fwd, F32, "flat", (B, B, B, B)), sig, (9, 0))
    assert ".local" not in ptx and "ld.global.u16" in ptx and "st.global.u16" in ptx
    if resources.ptxas_path():
        ((_, r),) = resources.ptx_resources(ptx, "90").items()
        assert r.stack == 0, r
