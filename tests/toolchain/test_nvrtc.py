"""CI, no GPU: every kernel of the CuPy backend compiles with NVRTC exactly as
CuPy compiles it at run time, for sm_90 and sm_80. The RawModules are
compiled in test_ptxas_resources.py, as NVRTC's PTX assembled by ptxas (the
two steps of CuPy's compile to a cubin; test_nvrtc_cubin_matches_ptxas_on_ptx
checks that they measure the cubin CuPy loads): every module for sm_90, and
for sm_80 each source in float64 and bfloat16. The ElementwiseKernels are
compiled here.

Unlike tests/toolchain/test_nvcc.py (nvcc on a hand-built translation unit), the
sources, options and include paths here are CuPy's own:
- elementwise kernels: the backend's own ``cupy.ElementwiseKernel`` objects
  (``elementwise._kernel``, ``elementwise._bce_kernel``); CuPy resolves their
  type placeholders from the dtypes of each call the public API makes
  (``ElementwiseKernel._decide_params_type``), writes
  the CUDA source (``cupy._core._kernel._get_elementwise_kernel_code``, the
  CArray/CIndexer signature, typedefs, the CUDA preamble) and compiles it
  with its headers prepended (``compile_with_cache(code, options)``).
CuPy adds (CuPy 14.2): its bundled CCCL, its include dir and the CUDA
runtime headers (found by cuda-pathfinder), --std=c++17 when none is given,
-ftz=true, --device-as-default-execution-space and -arch=sm_XX (a cubin).
What is replaced to run without a device is listed in tests/toolchain/resources.py:
the per-device memo of the arch option (an explicit arch is passed), the
module load into a context, and the on-disk kernel cache.
"""

from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

import resources as R  # noqa: E402

pytestmark = pytest.mark.skipif(
    R.cupy_nvrtc_version() is None, reason="CuPy cannot load NVRTC (install the cu12 or cu13 extra)"
)

from cupy._core import _carray, _kernel, _scalar  # noqa: E402
from cupy.cuda.compiler import CompileException  # noqa: E402

from gpu_act import formulas as F  # noqa: E402
from gpu_act.backends.cupy import elementwise as ew  # noqa: E402
from test_nvcc import BF16_FORMULAS, _bce_requests, _elementwise_requests, _gated_requests, with_bfloat16  # noqa: E402

ARCHS = ("80", "90")
F16, BF16, F32, F64 = (np.dtype(t) for t in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64))
COMPUTE = {F16: F32, BF16: F32, F32: F32, F64: F64}


def _map(fn, items):
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(fn, items))


def _symbol_in(image, name):
    """``name`` is a symbol of the cubin (NUL-delimited in its string table) with its own code section."""
    return b"\0" + name.encode() + b"\0" in image and b".text." + name.encode() + b"\0" in image


# ---------------------------------------------------------------- ElementwiseKernels
def _calls():
    """(wrapper, formula, nparams, compute dtype, input array dtypes, output dtype)
    of every ElementwiseKernel call the public API makes (gpu_act/elementwise.py):
    - unary/scaled: x (and grad_output) and out of the input dtype;
    - unary_slope (prelu, rrelu training): the slope is prelu's weight cast to
      x's dtype, or rrelu's slopes in the compute type;
    - scaled_slope leaky_relu_der: likewise, out of x's dtype;
    - scaled_slope leaky_relu_slope_der (prelu_backward's weight terms): slope of
      x's dtype, out in the compute type;
    - slopes (rrelu training): no arrays in, out in the compute type.
    bfloat16 (CuPy's ``bfloat16`` class) for the requests of ``with_bfloat16``."""
    calls = []
    for wrapper, fname, nparams in _elementwise_requests():
        for T in (F16, BF16, F32, F64):
            C = COMPUTE[T]
            if T == BF16 and not with_bfloat16(wrapper, fname):
                continue
            if wrapper == "unary":
                calls.append((wrapper, fname, nparams, C, (T,), T))
            elif wrapper == "scaled":
                calls.append((wrapper, fname, nparams, C, (T, T), T))
            elif wrapper == "unary_slope":
                calls += [(wrapper, fname, nparams, C, (T, S), T) for S in sorted({T, C}, key=str)]
            elif fname == F.leaky_relu_slope_der.__name__:
                calls.append((wrapper, fname, nparams, C, (T, T, T), C))
            elif wrapper == "scaled_slope":
                calls += [(wrapper, fname, nparams, C, (T, T, S), T) for S in sorted({T, C}, key=str)]
            elif wrapper == "slopes" and T == C:
                calls.append((wrapper, fname, nparams, C, (), C))
            elif wrapper not in ("slopes",):
                raise AssertionError(f"no dtype rule for elementwise wrapper {wrapper!r} ({fname})")
    return calls


# Calls CuPy refuses before compiling (reason -> strict xfail below). Empty:
# every call the public API makes compiles. (PReLU's float16 weight gradient,
# whose float32 output once bound T against float16 inputs, was one.)
KNOWN_TYPE_ERRORS = {}

# CArray layouts compiled for each call: (ndim, c_contiguous, 32-bit indexing).
# Contiguous operands always reduce to 1-D; the slope wrappers also run with
# the weight broadcast along axis 1 (2-D, strided, any size).
CONTIGUOUS = (1, True, True)
STRIDED = (2, False, False)


def _elementwise_source(call, layout):
    """(kernel name, CUDA source, compile options) CuPy generates for ``call``."""
    wrapper, fname, nparams, ctype, arrays, out = call
    k = ew._kernel(wrapper, fname, nparams, ctype)  # the backend's own ElementwiseKernel
    return _kernel_source(k, arrays, (out,), layout)


def _kernel_source(k, arrays, outs, layout):
    """(kernel name, CUDA source, compile options) CuPy generates for the
    ElementwiseKernel ``k`` called with input arrays of the dtypes ``arrays``
    (its typed parameters, in order; the others scalars) and outputs ``outs``."""
    ndim, contig, idx32 = layout
    n_typed = sum(1 for p in k.in_params if p.dtype is None)
    assert n_typed == len(arrays), f"{k.name}: {n_typed} array inputs, the call passes {len(arrays)}"
    it = iter(arrays)
    in_nd = tuple(next(it) if p.dtype is None else None for p in k.in_params)
    in_types, out_types, type_map = k._decide_params_type(in_nd, tuple(outs))
    infos = []
    for p, t, nd in zip(k.in_params, in_types, in_nd):
        if nd is None:  # a scalar parameter, converted to its declared dtype
            infos.append(_kernel._ArgInfo(3, _scalar.CScalar, np.dtype(t), 0, True, True))
        else:
            infos.append(_kernel._ArgInfo(1, cupy.ndarray, np.dtype(t), ndim, contig, idx32))
    infos += [_kernel._ArgInfo(1, cupy.ndarray, np.dtype(t), ndim, contig, idx32) for t in out_types]
    infos.append(_kernel._ArgInfo(2, _carray.Indexer, None, ndim, True, idx32))
    code = _kernel._get_elementwise_kernel_code(
        tuple(infos), type_map, k.params, k.operation, k.name, k.preamble, **k.kwargs
    )
    return k.name, code, tuple(k.kwargs.get("options", ()))


def _label(call, layout):
    wrapper, fname, _, ctype, arrays, out = call
    ins = ",".join(a.name for a in arrays) or "-"
    return f"{wrapper}/{fname} in {ins} -> {out.name} (compute {ctype.name}, layout {layout})"


WRAPPER_GROUPS = ("unary", "scaled", "slope")


def _group(call):
    return "slope" if call[0] not in ("unary", "scaled") else call[0]


@pytest.mark.parametrize("group", WRAPPER_GROUPS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_elementwise_kernel_compiles_with_cupy_nvrtc(arch, group):
    jobs = []
    for call in _calls():
        if _group(call) != group or call in KNOWN_TYPE_ERRORS:
            continue
        for layout in (CONTIGUOUS, STRIDED) if group == "slope" else (CONTIGUOUS,):
            jobs.append((call, layout))
    assert jobs

    def build(job):
        call, layout = job
        try:
            name, code, options = _elementwise_source(call, layout)
            got = R.cupy_compile(code, options, arch, prepend_cupy_headers=True)
        except (CompileException, TypeError) as e:
            return f"{_label(call, layout)}: {type(e).__name__}: {str(e)[-3000:]}"
        if not _symbol_in(got.image, name):
            return f"{_label(call, layout)}: kernel {name} not in the cubin"
        return None

    problems = [p for p in _map(build, jobs) if p]
    assert not problems, f"{len(problems)} of {len(jobs)} elementwise kernels failed:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, raises=TypeError, reason=r))
        for c, r in KNOWN_TYPE_ERRORS.items()
    ]
    or [pytest.param(None, marks=pytest.mark.skip(reason="no elementwise call is known to fail"))],
    ids=lambda c: f"{c[0]}-{c[1]}-{'-'.join(a.name for a in c[4])}-to-{c[5].name}" if c else "none",
)
def test_known_elementwise_type_errors(call):
    # strict: passes (and so fails the suite) once the backend is fixed; then drop the entry
    assert call in _calls(), "the known failure is no longer a call the public API makes"
    _elementwise_source(call, CONTIGUOUS)


def _bce_calls():
    """(variant of elementwise._bce_kernel, compute dtype, input array dtypes, output dtypes,
    fully weighted) of the binary cross-entropy kernels: every variant for float32 z and
    operands; the fully weighted variants (every operand, the gradient) for z of each dtype,
    with target and weights of z's dtype and of another one (the public API passes any
    accepted float dtype), contiguous and broadcast (strided)."""
    calls = []
    for _, _, logits, weighted, pos_weighted, want_grad in _bce_requests():
        variant = (logits, weighted, pos_weighted, want_grad)
        n_arrays = 2 + weighted + pos_weighted
        full = weighted and (pos_weighted or not logits) and want_grad
        for T in (F16, BF16, F32, F64) if full else (F32,):
            C = COMPUTE[T]
            outs = (C, T) if want_grad else (C,)
            for O in [T] + ([F64 if T != F64 else F16] if full else []):
                calls.append((variant, C, (T,) + (O,) * (n_arrays - 1), outs, full))
    return calls


@pytest.mark.parametrize("arch", ARCHS)
def test_every_bce_kernel_compiles_with_cupy_nvrtc(arch):
    jobs = [(c, layout) for c in _bce_calls() for layout in ((CONTIGUOUS, STRIDED) if c[4] else (CONTIGUOUS,))]

    def build(job):
        (variant, ctype, arrays, outs, _), layout = job
        label = f"bce {variant} in {','.join(a.name for a in arrays)} -> {','.join(o.name for o in outs)} {layout}"
        try:
            name, code, options = _kernel_source(ew._bce_kernel(*variant, ctype), arrays, outs, layout)
            got = R.cupy_compile(code, options, arch, prepend_cupy_headers=True)
        except (CompileException, TypeError) as e:
            return f"{label}: {type(e).__name__}: {str(e)[-3000:]}"
        if not _symbol_in(got.image, name):
            return f"{label}: kernel {name} not in the cubin"
        return None

    problems = [p for p in _map(build, jobs) if p]
    assert not problems, f"{len(problems)} of {len(jobs)} binary cross-entropy kernels failed:\n" + "\n".join(problems)


def _gated_calls():
    """(gate, derivative, parameter count, compute dtype, input dtypes, output dtypes, layouts) of glu's
    backward kernels: every gate in float32, the halves strided; the gates of ``BF16_FORMULAS``
    (with parameters) in every dtype, contiguous too."""
    calls = []
    for fwd, der, nparams in _gated_requests():
        for T in (F16, BF16, F32, F64) if fwd in BF16_FORMULAS else (F32,):
            layouts = (CONTIGUOUS, STRIDED) if fwd in BF16_FORMULAS else (STRIDED,)
            calls += [(fwd, der, nparams, COMPUTE[T], (T, T, T), (T, T), layout) for layout in layouts]
    return calls


@pytest.mark.parametrize("arch", ARCHS)
def test_every_gated_kernel_compiles_with_cupy_nvrtc(arch):
    def build(call):
        fwd, der, nparams, ctype, arrays, outs, layout = call
        label = f"glu backward {fwd} in {arrays[0].name} {layout}"
        try:
            name, code, options = _kernel_source(ew._gated_kernel(fwd, der, nparams, ctype), arrays, outs, layout)
            got = R.cupy_compile(code, options, arch, prepend_cupy_headers=True)
        except (CompileException, TypeError) as e:
            return f"{label}: {type(e).__name__}: {str(e)[-3000:]}"
        if not _symbol_in(got.image, name):
            return f"{label}: kernel {name} not in the cubin"
        return None

    calls = _gated_calls()
    problems = [p for p in _map(build, calls) if p]
    assert not problems, f"{len(problems)} of {len(calls)} glu kernels failed:\n" + "\n".join(problems)


def test_elementwise_calls_cover_every_request_and_dtype():
    calls = _calls()
    assert {c[:3] for c in calls} == set(_elementwise_requests())
    for T in (F16, BF16, F32, F64):
        assert any(c[4] == (T,) for c in calls if c[0] == "unary")
        assert any(c[4] == (T, COMPUTE[T]) for c in calls if c[0] == "unary_slope")


# ---------------------------------------------------------------- CUDA headers
HEADERS = {
    "cuda_fp16.h": "__global__ void k(__half* y, const __half* x) { y[0] = __hadd(x[0], __float2half(1.0f)); }",
    "cuda_bf16.h": "__global__ void k(__nv_bfloat16* y) { y[0] = __float2bfloat16(1.0f); }",
}


def _header_dir():
    try:
        from cuda.pathfinder import locate_nvidia_header_directory

        return locate_nvidia_header_directory("cudart")
    except Exception as e:  # an older cuda-pathfinder, or none
        return f"(cuda.pathfinder could not tell: {e})"


@pytest.mark.parametrize("header", sorted(HEADERS))
def test_cuda_headers_are_found_by_cupy_nvrtc(header):
    # NVRTC has no built-in cuda_fp16.h/cuda_bf16.h and CuPy bundles neither: CuPy
    # adds -I<cuda.pathfinder.find_nvidia_header_directory("cudart")>, the CUDA
    # runtime headers (site-packages wheel nvidia-cuda-runtime[-cu12], then
    # $CONDA_PREFIX, $CUDA_PATH/$CUDA_HOME, a system CUDA toolkit)
    src = f"#include <{header}>\n{HEADERS[header]}\n"
    hint = (
        f"CuPy's NVRTC path cannot compile #include <{header}>. CuPy takes the CUDA runtime headers from "
        f"cuda-pathfinder, which located: {_header_dir()}. Install them with the project's CUDA extra "
        "(cu12: cuda-toolkit[cudart,nvrtc]==12.*, i.e. nvidia-cuda-runtime-cu12; cu13: "
        "cuda-toolkit[cudart,nvrtc]==13.*, i.e. nvidia-cuda-runtime) or set CUDA_PATH to a CUDA toolkit."
    )
    for arch in ARCHS:
        try:
            got = R.cupy_compile(src, ("--std=c++17",), arch, name_expressions=["k"])
        except (CompileException, RuntimeError) as e:
            pytest.fail(f"{hint}\n{type(e).__name__}: {str(e)[-2000:]}")
        assert _symbol_in(got.image, got.mapping["k"])
