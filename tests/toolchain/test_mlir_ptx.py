"""Every CUDA kernel compiles to PTX under numba-cuda-mlir, with its launch
bound, and without a GPU: each once, float64 kernels for sm_80, the others
for sm_90 (as ``tests/toolchain/test_nvvm_ptx.py`` and the softmax family's
PTX tests compile them under numba-cuda).

The kernels (``kernels``) are built with the argument types the backend
launches them with (from the target's own types, ``_cuda.types``). Each PTX
must name its target (``.target sm_80`` / ``sm_90``), carry the launch bound
``gpu_act._cuda.kernel`` gives it (``.maxntid N, 1, 1`` and ``.minnctapersm
1`` where N threads could run out of registers, none otherwise), and call no
function (device functions inlined, as numba-cuda's forceinline makes them);
the warp and block reductions must use shuffles and shared memory. The row
kernels must also fit their launch configuration (ptxas -v: registers,
static shared memory within ``_config.STATIC_SHARED``, no spills): this
front end inlines device functions before lowering, so each call of a block
reduction gets its own shared slots.

How it works without a GPU: numba-cuda-mlir 0.6 lowers through MLIR to NVVM
(the libnvvm of its cu12 extra), which needs no driver, but it asks the
current device's compute capability on every compile, even one given ``cc=``.
``gpu_act._cuda.compile_ptx`` answers that question by setting
``numba_cuda_mlir.tools._cached_cc`` (the cache of that query) to the target's
compute capability for the compile. If a release changes that, compile_ptx
raises, or the driver error surfaces, and this test fails: it never skips
under CI (``CI`` set) for want of numba-cuda-mlir or of a way to compile.

The target is chosen once per process (``GPU_ACT_CUDA_TARGET``, read by
``gpu_act._cuda`` at import), so the compiles run in fresh processes, two at
once (this file, run as a script, compiles one shard). The other PTX tests
and the simulator stay on numba-cuda.
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT

CCS = ((8, 0), (9, 0))
TARGET = "numba-cuda-mlir"
SHARDS = 2

# Kernels numba-cuda-mlir cannot compile, with the error they must still raise
# (so this list shrinks as soon as one compiles). Empty: every kernel compiles.
KNOWN_FAILURES = {}


# ---------------------------------------------------------------- the worker (a fresh process)
def kernels():
    """(label, kernel, signature, variant, compute dtype, compute capabilities)
    for the kernels the CUDA backend builds, each compiled once by ``main``
    (float64 ones for sm_80, the others for sm_90). The elementwise kernels
    of the registry's formulas (40 of the 206: each formula once, in turn
    float32 on the flat path and float64 on the strided one) cover every
    formula and every path in both compute types (the templates do not depend
    on the formula; test_nvvm_ptx compiles every formula in both types under
    numba-cuda); the gated kernels likewise, with one gate. Then every row
    kernel of the softmax family (with and without a mask, logsumexp,
    sparsemax, cross-entropy), the losses', and those with bfloat16 operands
    (every kind in every variant)."""
    from gpu_act import _cuda
    from gpu_act import formulas as F
    from gpu_act.registry import ACTIVATIONS

    T, from_dtype = _cuda.types, _cuda.from_dtype
    mp = importlib.import_module("gpu_act.backends.cuda._map")
    ew = importlib.import_module("gpu_act.backends.cuda.elementwise")
    sm = importlib.import_module("gpu_act.backends.cuda.softmax")
    ce = importlib.import_module("gpu_act.backends.cuda.cross_entropy")
    nll = importlib.import_module("gpu_act.backends.cuda.nll_loss")
    bce = importlib.import_module("gpu_act.backends.cuda.binary_cross_entropy")
    mo = importlib.import_module("gpu_act.backends.cuda.maxout")
    rd = importlib.import_module("gpu_act.backends.cuda.reduce")
    spx = importlib.import_module("gpu_act.backends.cuda.sparsemax")
    gt = importlib.import_module("gpu_act.backends.cuda.gated")

    I64 = T.int64
    TUP = T.UniTuple(I64, 2)  # outer strides and shapes of rank 2

    def arr(dtype):
        return T.Array(from_dtype(np.dtype(dtype)), 1, "C")

    def row_op(dtype):
        return (arr(dtype), I64, TUP, I64)

    def ew_sig(dtype, path, nparams):
        p = T.UniTuple(from_dtype(np.dtype(dtype)), nparams) if nparams else T.Tuple(())
        if path == "flat":
            return (arr(dtype),) * 4 + (p,)
        return (arr(dtype), I64, TUP) * 4 + (TUP, p)

    out = []
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    ctypes = (f32, f64)
    nparams = {}  # formula -> its parameters (those of the first activation using it)
    for act in ACTIVATIONS.values():
        n = len([p for p in act.params if not p.choices])
        for pair in [(act.forward, act.derivative), *act.variants.values()]:
            for f in pair:
                nparams.setdefault(f, n)
    for i, f in enumerate(sorted(nparams, key=lambda f: f.__name__)):
        wrapper = "unary" if f.__name__.endswith("_fwd") else "scaled"
        c, path, cc = ((f32, "flat", (9, 0)), (f64, "strided", (8, 0)))[i % 2]
        out.append((f"ew.{f.__name__}.{path}.{c}", mp.kernel(wrapper, f, c, path), ew_sig(c, path, nparams[f]),
                    "elementwise", c, (cc,)))
    slope = [("unary_slope", F.leaky_relu_fwd), ("scaled_slope", F.leaky_relu_der),
             ("scaled_slope", F.leaky_relu_slope_der)]
    for wrapper, f in slope:
        for c in ctypes:
            for path in ("flat", "strided"):
                out.append((f"ew.{wrapper}.{path}.{c}", mp.kernel(wrapper, f, c, path), ew_sig(c, path, 0),
                            "elementwise", c, CCS))
    for c in (np.dtype(np.float16), *ctypes):  # staging copies: in the destination's dtype
        for path in ("flat", "strided"):
            out.append((f"ew.copy.{path}.{c}", mp.kernel("copy", None, c, path), ew_sig(c, path, 0), "elementwise",
                        c, CCS))
    softplus = ACTIVATIONS["softplus"]
    for c, path, cc in ((f32, "flat", (9, 0)), (f64, "strided", (8, 0))):
        p = T.UniTuple(from_dtype(c), 2)
        sig = (arr(c),) * 5 + (p,) if path == "flat" else (arr(c), I64, TUP) * 5 + (TUP, p)
        out.append((f"glu.softplus.{path}.{c}", gt.kernel(softplus.forward, softplus.derivative, c, path), sig,
                    "elementwise", c, (cc,)))
    for c in ctypes:
        ct = from_dtype(c)
        out.append((f"rrelu_slopes.{c}", ew.slopes_kernel(c), (arr(c), T.uint64, ct, ct), "elementwise", c, CCS))
        for variant in ("thread", "warp", "block", "block-shared"):
            sig = row_op(c) * 2 + (TUP, I64, I64, ct, T.boolean)
            out.append((f"softmax.forward.{variant}.{c}", sm.kernel("forward", c, variant), sig, variant, c, CCS))
            if variant != "block-shared":
                sig = row_op(c) * 3 + (TUP, I64, I64, ct, T.boolean)
                out.append((f"softmax.backward.{variant}.{c}", sm.kernel("backward", c, variant), sig, variant, c, CCS))
        x, m, b = row_op(c), row_op(np.bool_), T.boolean
        for variant in ("thread", "warp", "block"):
            # the softmax family's row kernels: with a mask (read as bools), and
            # logsumexp without one (x's operand stands in for the mask)
            for name, sig in (("forward", x + m + x + (TUP, I64, I64, ct, b)),
                              ("backward", x * 2 + m + x + (TUP, I64, I64, ct, b)),
                              ("logsumexp", x + m + x + (TUP, I64, I64, ct, ct)),
                              ("logsumexp-backward", x * 3 + m + x + (TUP, I64, I64, ct))):
                out.append((f"softmax.{name}.masked.{variant}.{c}", sm.kernel(name, c, variant, masked=True), sig,
                            variant, c, CCS))
            if variant == "block":
                out.append((f"softmax.forward.masked.block-shared.{c}", sm.kernel("forward", c, "block-shared",
                            masked=True), x + m + x + (TUP, I64, I64, ct, b), "block-shared", c, CCS))
            out.append((f"logsumexp.{variant}.{c}", sm.kernel("logsumexp", c, variant), x * 3 + (TUP, I64, I64, ct, ct),
                        variant, c, CCS))
            out.append((f"logsumexp-backward.{variant}.{c}", sm.kernel("logsumexp-backward", c, variant),
                        x * 5 + (TUP, I64, I64, ct), variant, c, CCS))
            for target, t in (("index", (arr(np.int64), I64, TUP, I64)), ("prob", x)):
                sig = x * 2 + t + m + (arr(c),) * 3 + (TUP, I64, I64, I64) + (ct,) * 5 + (b,) * 3
                out.append((f"ce.{target}.masked.{variant}.{c}", ce.kernel(target, c, variant, masked=True), sig,
                            variant, c, CCS))
        for variant in ("thread", "warp", "block", "block-shared"):
            sig = row_op(c) * 2 + (TUP, I64, I64)
            out.append((f"sparsemax.forward.{variant}.{c}", spx.kernel("forward", c, variant), sig, variant, c, CCS))
            if variant != "block-shared":
                sig = row_op(c) * 3 + (TUP, I64, I64)
                out.append((f"sparsemax.backward.{variant}.{c}", spx.kernel("backward", c, variant), sig, variant, c,
                            CCS))
        for variant in ("thread", "warp", "block"):
            for target, t in (("index", (arr(np.int64), I64, TUP, I64)), ("prob", row_op(c))):
                sig = row_op(c) * 2 + t + (arr(c),) * 3 + (TUP, I64, I64, I64) + (ct,) * 5 + (T.boolean,) * 3
                out.append((f"ce.{target}.{variant}.{c}", ce.kernel(target, c, variant), sig, variant, c, CCS))
        sig = row_op(c) * 2 + (arr(np.int64), I64, TUP, I64, arr(c), arr(c), TUP, I64, I64, ct, T.boolean, T.boolean)
        out.append((f"nll.{c}", nll.kernel(c), sig, "elementwise", c, CCS))
        for logits in (True, False):
            name = "logits" if logits else "probs"
            tail = (ct, T.boolean, T.boolean, T.boolean)
            out.append((f"bce.{name}.flat.{c}", bce.kernel(logits, c, "flat"), (arr(c),) * 6 + tail, "elementwise",
                        c, CCS))
            out.append((f"bce.{name}.strided.{c}", bce.kernel(logits, c, "strided"),
                        (arr(c), I64, TUP) * 6 + (TUP,) + tail, "elementwise", c, CCS))
        for name, ops in (("forward", 2), ("backward", 3)):
            sig = row_op(c) * ops + (TUP, I64, I64, I64)
            out.append((f"maxout.{name}.{c}", mo.kernel(name, c), sig, "elementwise", c, CCS))
        out.append((f"group_sum.{c}", rd.kernel(c), row_op(c) + (TUP, I64, arr(c), ct), "reduce", c, CCS))
    # bfloat16 operands: uint16 views, each kernel built per combination of its
    # operands' codecs (``_codecs``); every kind once, in every variant
    cd = importlib.import_module("gpu_act.backends.cuda._codecs")
    B, N = cd.BF16, cd.NATIVE
    u16, f32t = np.dtype(np.uint16), T.float32

    def stored(codec, native=f32):
        return u16 if codec == B else native

    def ew_sig_of(dtypes, path):
        if path == "flat":
            return tuple(arr(d) for d in dtypes) + (T.Tuple(()),)
        return sum(((arr(d), I64, TUP) for d in dtypes), ()) + (TUP, T.Tuple(()))

    for wrapper, f, codecs, native in (("unary", F.gelu_fwd, (B, B, B, B), f32),
                                       ("unary_slope", F.leaky_relu_fwd, (B, N, N, B), f32),
                                       ("scaled_slope", F.leaky_relu_slope_der, (B, B, B, N), f32),
                                       ("copy", None, (B, B, B, N), f32), ("copy", None, (N, N, N, B), f64)):
        for path in ("flat", "strided"):
            out.append((f"ew.{wrapper}.{path}.{cd.tag(codecs)}", mp.kernel(wrapper, f, f32, path, codecs),
                        ew_sig_of([stored(c, native) for c in codecs], path), "elementwise", f32, CCS))
    for variant in ("thread", "warp", "block", "block-shared"):
        sig = row_op(u16) * 2 + (TUP, I64, I64, f32t, T.boolean)
        out.append((f"softmax.forward.{variant}.bf16", sm.kernel("forward", f32, variant, B), sig, variant, f32, CCS))
        if variant == "block-shared":
            continue
        sig = row_op(u16) * 3 + (TUP, I64, I64, f32t, T.boolean)
        out.append((f"softmax.backward.{variant}.bf16", sm.kernel("backward", f32, variant, B), sig, variant, f32,
                    CCS))
        for target, t, codecs in (("index", (arr(np.int64), I64, TUP, I64), (B, N)), ("prob", row_op(u16), (B, B))):
            sig = row_op(u16) * 2 + t + (arr(f32),) * 3 + (TUP, I64, I64, I64) + (f32t,) * 5 + (T.boolean,) * 3
            out.append((f"ce.{target}.{variant}.{cd.tag(codecs)}", ce.kernel(target, f32, variant, codecs), sig,
                        variant, f32, CCS))
    sig = row_op(u16) * 2 + (arr(np.int64), I64, TUP, I64, arr(f32), arr(f32), TUP, I64, I64, f32t, T.boolean,
                             T.boolean)
    out.append(("nll.bf16", nll.kernel(f32, B), sig, "elementwise", f32, CCS))
    for logits in (True, False):
        name = "logits" if logits else "probs"
        tail = (f32t, T.boolean, T.boolean, T.boolean)
        ops = (u16,) * 4 + (f32, u16)
        out.append((f"bce.{name}.flat.bf16", bce.kernel(logits, f32, "flat", (B,) * 4), tuple(arr(d) for d in ops)
                    + tail, "elementwise", f32, CCS))
        out.append((f"bce.{name}.strided.bf16", bce.kernel(logits, f32, "strided", (B,) * 4),
                    sum(((arr(d), I64, TUP) for d in ops), ()) + (TUP,) + tail, "elementwise", f32, CCS))
    for name, ops in (("forward", 2), ("backward", 3)):
        out.append((f"maxout.{name}.bf16", mo.kernel(name, f32, B), row_op(u16) * ops + (TUP, I64, I64, I64),
                    "elementwise", f32, CCS))
    for c in ctypes:  # float32 sums stored as bfloat16
        out.append((f"group_sum.{c}-to-bf16", rd.kernel(c, (N, B)), row_op(f32) + (TUP, I64, arr(u16), from_dtype(c)),
                    "reduce", c, CCS))
    out.append(("fill.bf16", rd.fill_kernel(), (arr(u16), T.uint16), "elementwise", f32, CCS))
    # the losses' total: float32 elements summed in float64
    out.append(("group_sum.float32-in-float64", rd.kernel(f64), row_op(f32) + (TUP, I64, arr(f32), T.float64),
                "reduce", f64, CCS))
    out.append(("check_targets", ce.check_kernel(),
                (arr(np.int64), I64, TUP, TUP, I64, I64, I64, arr(f32), arr(f64), T.Array(T.int64, 1, "C"),
                 T.boolean), "elementwise", f64, CCS))
    out.append(("fill", rd.fill_kernel(), (arr(np.float32), T.float32), "elementwise", f32, CCS))
    # the rows of a mask: any entry unmasked; the live rows' class indices
    mask = (arr(np.bool_), I64, TUP, I64)
    out.append(("mask_rows.any", ce.rows_kernel("any"), mask + (arr(np.bool_), TUP, I64, I64), "elementwise", f64,
                CCS))
    out.append(("mask_rows.live", ce.rows_kernel("live"), (arr(np.int64), I64, TUP, arr(np.bool_), I64, TUP, TUP, I64,
                I64, arr(np.int64)), "elementwise", f64, CCS))
    return out


def expected_bound(variant, ctype):
    """The launch bound ``_cuda.kernel`` must give: the most threads the
    variant launches with, where that many could run out of registers."""
    from gpu_act import _cuda

    config = importlib.import_module("gpu_act.backends.cuda._config")
    threads = config.max_threads(variant, np.dtype(ctype).itemsize)
    return threads if threads * _cuda.MAX_REGISTERS_PER_THREAD > _cuda.REGISTERS_PER_SM else None


def check(label, ptx, cc, bound, variant):
    """What is wrong with ``ptx`` (empty: nothing)."""
    lines = [line.strip() for line in ptx.splitlines()]
    problems = []
    if f".target sm_{cc[0]}{cc[1]}" not in lines:
        problems.append(f"no .target sm_{cc[0]}{cc[1]}")
    if not any(line.startswith(".visible .entry") for line in lines):
        problems.append("no kernel entry")
    maxntid = [line for line in lines if line.startswith(".maxntid")]
    if bound is None and maxntid:
        problems.append(f"unexpected launch bound {maxntid}")
    if bound is not None and (maxntid != [f".maxntid {bound}, 1, 1"] or ".minnctapersm 1" not in lines):
        problems.append(f"launch bound {maxntid}, expected .maxntid {bound}, 1, 1 and .minnctapersm 1")
    reduces = "logsumexp-backward" not in label  # g e^{(x - r)/T}: one row's elements, no sum
    if reduces and variant in ("warp", "block", "block-shared") and "shfl.sync.bfly" not in ptx:
        problems.append("no warp shuffle")
    if reduces and variant in ("block", "block-shared") and not (".shared" in ptx and "bar.sync" in ptx):
        problems.append("no shared memory or barrier")
    entry = next((i for i, line in enumerate(lines) if ".entry" in line), len(lines))
    calls = [line for line in lines[entry:] if line.startswith("call")]
    if calls:  # device functions are inlined, as numba-cuda's forceinline makes them
        problems.append(f"the kernel calls a function: {calls[0]}")
    return [f"{label} sm_{cc[0]}{cc[1]}: {p}" for p in problems]


ROW_VARIANTS = ("thread", "warp", "block", "block-shared", "reduce")


def fits(label, ptx, variant, ctype, cc):
    """What keeps a row kernel's build for ``cc`` from its launch configuration
    (as tests/toolchain/test_nvvm_ptx.py asks of numba-cuda's): registers x the most
    threads ``_config`` launches it with, static shared memory within
    ``_config.STATIC_SHARED``, no spills (ptxas -v)."""
    import resources

    config = importlib.import_module("gpu_act.backends.cuda._config")
    if resources.ptxas_path() is None:
        return [f"{label}: no ptxas to check its resources"] if os.environ.get("CI") else []
    threads = config.max_threads(variant, np.dtype(ctype).itemsize)
    arch = f"{cc[0]}{cc[1]}"
    ((_, r),) = resources.ptx_resources(ptx, arch).items()
    problems = []
    if resources.registers_for_block(r.registers, threads) > resources.REGISTERS_PER_SM:
        problems.append(f"{r.registers} registers for {threads} threads")
    if r.static_shared > config.STATIC_SHARED:
        problems.append(f"{r.static_shared} bytes of static shared memory, over {config.STATIC_SHARED}")
    if r.spill_stores or r.spill_loads:
        problems.append(f"spills ({r})")
    return [f"{label} sm_{arch}: {p}" for p in problems]


def main(shard, shards):
    from gpu_act import _cuda

    # the shim picked numba-cuda-mlir and its own types, and never loaded numba-cuda's target
    assert _cuda.TARGET == TARGET and _cuda.MLIR, _cuda.TARGET
    assert type(_cuda.types.float64).__module__.startswith("numba_cuda_mlir."), type(_cuda.types.float64)
    assert _cuda.from_dtype.__module__.startswith("numba_cuda_mlir."), _cuda.from_dtype.__module__
    # (on a machine with a GPU, compile_ptx needs no stand-in for the device)
    start = time.perf_counter()
    # each kernel once: float64 ones for sm_80, the others for sm_90, so both
    # targets and every kernel are compiled (numba-cuda's PTX tests build both
    # targets of every kernel)
    todo = [(*t[:-1], ((8, 0),) if np.dtype(t[4]) == np.float64 else ((9, 0),)) for t in kernels()]
    assert not [m for m in sys.modules if m == "numba_cuda" or m.startswith("numba.cuda")], "numba-cuda loaded"
    problems, compiled, total = [], 0, len(todo)
    todo = todo[shard::shards]
    for label, k, sig, variant, ctype, ccs in todo:
        bound = expected_bound(variant, ctype)
        got = k.targetoptions.get("launch_bounds")
        if got != (None if bound is None else (bound, 1)):
            problems.append(f"{label}: kernel made with launch_bounds={got}, expected {bound}")
        for cc in ccs:
            known = KNOWN_FAILURES.get(label)
            try:
                ptx = _cuda.compile_ptx(k, sig, cc)
            except Exception as e:  # the report names every kernel that fails, not only the first
                if known is None or known not in str(e):
                    problems.append(f"{label} sm_{cc[0]}{cc[1]}: {type(e).__name__}: {str(e)[:2000]}")
                compiled += known is not None and known in str(e)
                continue
            if known is not None:
                problems.append(f"{label} sm_{cc[0]}{cc[1]}: compiles now: take it out of KNOWN_FAILURES")
            compiled += 1
            problems += check(label, ptx, cc, bound, variant)
            if variant in ROW_VARIANTS:
                problems += fits(label, ptx, variant, ctype, cc)
    print(json.dumps({"total": total, "kernels": len(todo), "compiles": sum(len(t[-1]) for t in todo),
                      "compiled": compiled, "problems": problems, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))


# ---------------------------------------------------------------- the test (pytest's process)
def _required():
    """numba-cuda-mlir must be here: in CI (tests/run.sh installs it there, on
    Python >= 3.11, which numba-cuda-mlir needs)."""
    return bool(os.environ.get("CI")) and sys.version_info >= (3, 11)


@pytest.fixture(scope="module")
def mlir_env():
    if importlib.util.find_spec("numba_cuda_mlir") is None:
        if _required():
            pytest.fail("numba-cuda-mlir is not installed: tests/run.sh installs gpu_act[mlir-cu12] for this test")
        pytest.skip("numba-cuda-mlir is not installed (pip install -e '.[mlir-cu12]')")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "PYTEST_XDIST_WORKER")}
    env["GPU_ACT_CUDA_TARGET"] = TARGET
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH")]))
    return env


def test_every_kernel_compiles_to_ptx_under_numba_cuda_mlir(mlir_env):
    procs = [subprocess.Popen([sys.executable, __file__, str(i), str(SHARDS)], env=mlir_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(SHARDS)]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, f"worker exited {p.returncode}\n{stdout[-4000:]}\n{stderr[-4000:]}"
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    problems = [q for r in results for q in r["problems"]]
    assert not problems, "\n".join(problems[:40]) + (f"\n... {len(problems)} in all" if len(problems) > 40 else "")
    # every kernel (206 entries: 40 formula kernels, 133 others, 33 with bfloat16 operands), each in one shard
    assert sum(r["kernels"] for r in results) == results[0]["total"] >= 206
    assert sum(r["compiled"] for r in results) == sum(r["compiles"] for r in results)


def _target_chosen(env, prelude=""):
    env = {k: v for k, v in env.items() if k != "GPU_ACT_CUDA_TARGET"}
    code = prelude + "import sys\nfrom gpu_act import _cuda\nprint(_cuda.TARGET, 'numba.cuda' in sys.modules)\n"
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_numba_cuda_stays_the_default_beside_numba_cuda_mlir_but_not_on_numpy_2_5(mlir_env):
    if np.lib.NumpyVersion(np.__version__) < "2.5.0":
        assert _target_chosen(mlir_env) == ["numba-cuda", "True"]
    # NumPy 2.5 (as a GPU machine of ours ships it), where numba-cuda 0.30 cannot compile:
    # numba-cuda-mlir, without a warning, and without loading numba-cuda at all
    assert _target_chosen(mlir_env, "import numpy\nnumpy.__version__ = '2.5.0'\n") == ["numba-cuda-mlir", "False"]


def test_no_module_but_the_shim_names_a_cuda_target():
    # kernels reach both targets through gpu_act._cuda: none imports numba_cuda_mlir,
    # numba.cuda, or Numba's types (numba-cuda-mlir takes only its own)
    import pathlib

    import gpu_act

    root = pathlib.Path(gpu_act.__file__).parent
    for p in root.rglob("*.py"):
        if p.name == "_cuda.py" and p.parent == root:
            continue
        text = p.read_text(encoding="utf-8")
        assert "numba_cuda_mlir" not in text, p
        if p.parent.name == "cuda":
            imports = [line for line in text.splitlines() if line.lstrip().startswith(("import ", "from "))]
            assert not [line for line in imports if "numba" in line], (p, imports)
