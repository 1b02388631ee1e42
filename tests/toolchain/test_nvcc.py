"""CI, no GPU: every CUDA C source of the CuPy backend compiles with nvcc (for
sm_90; NVRTC, as CuPy compiles, covers sm_80 and sm_90 in
tests/toolchain/test_nvrtc.py and test_ptxas_resources.py) with warnings as
errors, for every template instance the backend asks for.

The translation units are built from what CuPy compiles at run time:
``gpu_act.kernels.source`` (headers inlined) and the instance lists
``gpu_act.kernels.INSTANCES``; the elementwise kernels are the C bodies of
``gpu_act.kernels.operation`` for every formula the public API can request
(on bfloat16 operands for those of ``with_bfloat16``), and of
``gpu_act.kernels.bce_operation`` for every binary cross-entropy variant and
of ``gpu_act.kernels.gated_operation`` for every gate of glu's backward,
wrapped as CuPy's ElementwiseKernel wraps them. nvcc runs with warnings as
errors; the entries are counted (in the PTX of the RawModules' sources, which
test_ptxas_resources.py assembles; in ptxas's report for the elementwise unit).
"""

import pathlib
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from gpu_act import formulas as F
from gpu_act import kernels
from gpu_act.registry import ACTIVATIONS, PLAIN

NVCC = shutil.which("nvcc")
ARCHS = ("90",)  # warnings do not depend on the arch; NVRTC compiles both

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: the CUDA C compile check needs the CUDA toolkit")


def _entries_tu(source, exprs):
    """The source plus a host table taking the address of each instance (which instantiates it)."""
    table = ",\n".join(f"        (void*)&{e}" for e in exprs)
    return (
        source
        + "\nvoid* ga_instance(int k) {\n    static void* const all[] = {\n"
        + table
        + "\n    };\n    return all[k];\n}\n"
    )


def _nvcc(tmp_path, name, tu, sass):
    """Compile ``tu`` for every arch, to SASS (``sass``) or to PTX; return {arch:
    the entries ptxas compiled, or the PTX holds}. The RawModules' sources go to
    PTX only: test_ptxas_resources.py assembles every one of them with ptxas,
    whose warnings fail there."""
    src = tmp_path / name
    src.write_text(tu)
    found = []
    for a in ARCHS:
        out = f"{src}.{a}.{'fatbin' if sass else 'ptx'}"
        target = ["--fatbin", f"-gencode=arch=compute_{a},code=sm_{a}", "-Xptxas", "-v"] if sass else \
            ["-ptx", f"-arch=compute_{a}"]
        r = subprocess.run([NVCC, *target, "--std=c++17", "-Werror", "all-warnings", "-o", out, str(src)],
                           capture_output=True, text=True)
        log = r.stdout + r.stderr
        assert r.returncode == 0, f"nvcc failed on {name}:\n{log[-6000:]}"
        if sass:
            found += re.findall(r"Compiling entry function '[^']+' for 'sm_(\d+)'", log)
        else:
            found += [a] * len(re.findall(r"^\.visible \.entry ", pathlib.Path(out).read_text(), re.M))
    return {a: found.count(a) for a in ARCHS}


# ---------------------------------------------------------------- elementwise kernels
_C = {"float32": "float", "float64": "double", "uint64": "unsigned long long"}

# bfloat16 operands run float16's bodies (both are computed in float) with another
# operand type: compiled for the slope wrappers (operands of mixed types) and for one
# activation with scalar parameters
BF16_FORMULAS = (F.softplus_fwd.__name__, F.softplus_der.__name__)


def with_bfloat16(wrapper, fname):
    """Whether the elementwise request (wrapper, formula) is compiled for bfloat16 operands."""
    return wrapper not in ("unary", "scaled") or fname in BF16_FORMULAS


def _elementwise_requests():
    """Every (wrapper, formula name, parameter count) the public API can send the backend."""
    reqs = set()
    for act in ACTIVATIONS.values():
        if act.name == "prelu":
            continue
        n = sum(1 for p in act.params if not p.choices)
        pairs = list(act.variants.values()) or [(act.forward, act.derivative)]
        for fwd, der in pairs:
            reqs.add(("unary", fwd.__name__, n))
            reqs.add(("scaled", der.__name__, n))
    # prelu, and rrelu in training: a slope array
    reqs.add(("unary_slope", F.leaky_relu_fwd.__name__, 0))
    reqs.add(("scaled_slope", F.leaky_relu_der.__name__, 0))
    reqs.add(("scaled_slope", F.leaky_relu_slope_der.__name__, 0))
    reqs.add(("slopes", F.rrelu_slope.__name__, 0))
    return sorted(reqs)


def _elementwise_tu():
    """One templated kernel per (request, compute type), in ElementwiseKernel's
    shape: each parameter a local of its declared type, ``i`` the index."""
    kern, exprs = [], []
    for k, (wrapper, fname, nparams) in enumerate(_elementwise_requests()):
        for ctype, storage in (("float32", ("__half", "__nv_bfloat16", "float")), ("float64", ("double",))):
            ins, out, body = kernels.operation(wrapper, fname, nparams, ctype)
            args, loads = [], []
            for decl in [d.strip() for d in ins.split(",")]:
                typ, name = decl.split()
                if typ in ("T", "S"):
                    args.append(f"const {typ}* {name}_")
                    loads.append(f"{typ} {name} = {name}_[i];")
                else:
                    args.append(f"{_C[typ]} {name}")
            otyp = out.split()[0]
            # an output type of its own (O) is compiled as T here: test_nvrtc
            # compiles every dtype combination the backend calls
            body = body.replace("(O)", "(T)")
            otyp = "T" if otyp in ("T", "O") else _C[otyp]
            kname = f"ew_{k}_{ctype}"
            kern.append(
                f"template <typename T, typename S>\n__global__ void {kname}({', '.join(args)}, {otyp}* y_, long long n) {{\n"
                f"    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"    if (i >= n) return;\n    {' '.join(loads)}\n    {otyp} y;\n    {body}\n    y_[i] = y;\n}}\n"
            )
            cname = kernels.COMPUTE[{"__half": "float16", "float": "float32", "double": "float64"}[storage[0]]]
            for T in storage:
                if T == "__nv_bfloat16" and not with_bfloat16(wrapper, fname):
                    continue
                for S in sorted({T, cname}):
                    exprs.append(f"{kname}<{T}, {S}>")
    bce, bce_exprs = _bce_kernels()
    gated, gated_exprs = _gated_kernels()
    # activations.cuh inlined
    head = "#include <cuda_bf16.h>\n#include <cuda_fp16.h>\n" + kernels.source(kernels.LOSSES)
    exprs += bce_exprs + gated_exprs
    return _entries_tu(head + "\n" + "\n".join(kern + bce + gated), exprs), len(exprs)


def _gated_requests():
    """Every (gate formula, its derivative, parameter count) glu's backward can build."""
    reqs = set()
    for name in PLAIN:
        act = ACTIVATIONS[name]
        n = sum(1 for p in act.params if not p.choices)
        for fwd, der in list(act.variants.values()) or [(act.forward, act.derivative)]:
            reqs.add((fwd.__name__, der.__name__, n))
    return sorted(reqs)


def _gated_kernels():
    """glu's backward bodies of ``kernels.gated_operation`` in ElementwiseKernel's
    shape, templated on T; instances: every storage type of the compute type
    (bfloat16 for the gates of ``BF16_FORMULAS``)."""
    kern, exprs = [], []
    for k, (fwd, der, nparams) in enumerate(_gated_requests()):
        for ctype, storage in (("float32", ("__half", "__nv_bfloat16", "float")), ("float64", ("double",))):
            ins, outs, body = kernels.gated_operation(fwd, der, nparams, ctype)
            args, loads = [], []
            for decl in [d.strip() for d in ins.split(",")]:
                typ, name = decl.split()
                if typ == "T":
                    args.append(f"const T* {name}_")
                    loads.append(f"T {name} = {name}_[i];")
                else:
                    args.append(f"{_C[typ]} {name}")
            kname = f"gated_{k}_{ctype}"
            kern.append(
                f"template <typename T>\n__global__ void {kname}({', '.join(args)}, T* da_, T* db_, long long n) {{\n"
                f"    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"    if (i >= n) return;\n    {' '.join(loads)}\n    T da, db;\n    {body}\n"
                f"    da_[i] = da; db_[i] = db;\n}}\n"
            )
            exprs += [f"{kname}<{T}>" for T in storage if T != "__nv_bfloat16" or fwd in BF16_FORMULAS]
    return kern, exprs


def _bce_requests():
    """Every binary cross-entropy variant the backend builds:
    (fwd, der, logits, weighted, pos_weighted, want_grad)."""
    reqs = []
    for logits, fwd, der in ((True, F.bce_logits_fwd, F.bce_logits_der), (False, F.bce_fwd, F.bce_der)):
        for weighted in (False, True):
            for pos_weighted in (False, True) if logits else (False,):
                for want_grad in (False, True):
                    reqs.append((fwd.__name__, der.__name__, logits, weighted, pos_weighted, want_grad))
    return reqs


def _bce_kernels():
    """The binary cross-entropy bodies of ``kernels.bce_operation`` in ElementwiseKernel's
    shape, templated on the placeholders; instances: every variant with every operand of z's
    type, and the fully weighted ones with target and weights of the other float type."""
    kern, exprs = [], []
    for k, req in enumerate(_bce_requests()):
        for ctype, storage in (("float32", ("__half", "__nv_bfloat16", "float")), ("float64", ("double",))):
            ins, outs, body = kernels.bce_operation(*req, ctype)
            holders = sorted({d.split()[0] for d in ins.split(",") if len(d.split()[0]) == 1} | {"T"})
            args, loads, stores = [], [], []
            for decl in [d.strip() for d in ins.split(",")]:
                typ, name = decl.split()
                if len(typ) == 1:
                    args.append(f"const {typ}* _raw_{name}")
                    loads.append(f"{typ} {name} = _raw_{name}[i];")
                else:
                    args.append(f"{_C[typ]} {name}")
            for decl in [d.strip() for d in outs.split(",")]:
                typ, name = decl.split()
                typ = typ if len(typ) == 1 else _C[typ]
                args.append(f"{typ}* _raw_{name}")
                loads.append(f"{typ} {name};")
                stores.append(f"_raw_{name}[i] = {name};")
            kname = f"bce_{k}_{ctype}"
            kern.append(
                f"template <{', '.join(f'typename {h}' for h in holders)}>\n"
                f"__global__ void {kname}({', '.join(args)}, long long n) {{\n"
                f"    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"    if (i >= n) return;\n    {' '.join(loads)}\n    {body}\n    {' '.join(stores)}\n}}\n"
            )
            full = req[3] and (req[4] or not req[2]) and req[5]
            for T in storage:
                others = [T] + ([{"double": "float"}.get(T, "double")] if full else [])
                for O in others:
                    exprs.append(f"{kname}<{', '.join(T if h == 'T' else O for h in holders)}>")
    return kern, exprs


def _units():
    units = []
    for name in kernels.ROW_FILES:
        exprs = [e for (f, _), v in kernels.INSTANCES.items() if f == name for e in v]
        units.append((name, _entries_tu(kernels.source(name), exprs), len(exprs), False))
    tu, n = _elementwise_tu()
    units.append(("elementwise.cu", tu, n, True))
    return units


def test_every_kernel_instance_compiles_without_warnings(tmp_path):
    units = _units()
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda u: _nvcc(tmp_path, u[0], u[1], u[3]), units))
    for (name, _, expected, _), got in zip(units, counts):
        assert got == {a: expected for a in ARCHS}, f"{name}: {got} entries compiled, expected {expected} per arch"


def test_instance_lists_cover_every_dtype_and_team():
    # the lists the modules are compiled with hold what rowwise.py launches
    for dtype in kernels.TYPES:
        soft = kernels.INSTANCES[("softmax.cu", dtype)]
        assert len(soft) == len(set(soft)) == 2 * len(kernels.TEAMS) * 2 + 2 * len(kernels.TEAMS)
        for team in kernels.TEAMS:
            for log in (False, True):
                assert kernels.softmax_name("fwd", dtype, team, log) in soft
                assert kernels.softmax_name("bwd", dtype, team, log) in soft
            assert kernels.logsumexp_name("fwd", dtype, team) in soft
            assert kernels.logsumexp_name("bwd", dtype, team) in soft
            xent = kernels.INSTANCES[("cross_entropy.cu", dtype)]
            assert kernels.xent_index_name(dtype, team) in xent
            for u in kernels.target_types(dtype):
                assert kernels.xent_prob_name(dtype, u, team) in xent
        assert kernels.nll_name(dtype) in kernels.INSTANCES[("cross_entropy.cu", dtype)]
        assert kernels.maxout_name("fwd", dtype) in kernels.INSTANCES[("maxout.cu", dtype)]
        assert kernels.maxout_name("bwd", dtype) in kernels.INSTANCES[("maxout.cu", dtype)]
