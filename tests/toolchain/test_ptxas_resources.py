"""CI, no GPU: every row-wise kernel of the CuPy backend compiles as CuPy
compiles it and fits the launch it gets.

Every RawModule (``kernels.INSTANCES``) is compiled by CuPy's own NVRTC path
(``RawModule``'s call: ``kernels.source``, ``_modules.OPTIONS``, the name
expressions) to PTX and assembled by ptxas -v (tests/toolchain/resources.py),
every module for sm_90 and for sm_80 the float64 and bfloat16 ones. Each name
expression must have a lowered name that is a kernel of the PTX, and each
kernel, at the largest block ``_config.plan`` can choose for its team:
- registers (allocated per warp, 8 per thread at a time) x block <= 65,536,
  the register file a block may use on sm_80/sm_90;
- a ``__launch_bounds__`` (PTX .maxntid) admits that block;
- static shared memory + the dynamic shared memory of the launch <= 48 KiB;
- no spills, a small stack frame.
``test_nvrtc_cubin_matches_ptxas_on_ptx`` checks that ptxas on NVRTC's PTX
measures the cubin CuPy loads (NVRTC's own -v log of that compile).
"""

import importlib
import inspect
import re
import types

import pytest

pytest.importorskip("cupy")

import resources as R  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        R.cupy_nvrtc_version() is None, reason="CuPy cannot load NVRTC (install the cu12 or cu13 extra)"
    ),
    pytest.mark.skipif(R.ptxas_path() is None, reason="no ptxas (nvidia-cuda-nvcc wheel or a CUDA toolkit on PATH)"),
]

from gpu_act import kernels  # noqa: E402
from gpu_act.backends.cupy import _config, rowwise  # noqa: E402

sparsemax = importlib.import_module("gpu_act.backends.cupy.sparsemax")  # the module, not the backend's function

ARCHS = (80, 90)
STACK_MAX = 256  # bytes per thread; every kernel has none today

# largest block plan() gives each team, by compute size; maxout and nll run one thread per item (plan("items", ...))
def LARGEST_BLOCK(compute_size):
    return {"thread": _config.THREADS, "warp": _config.THREADS, "block": _config.BLOCK_MAX[compute_size]}


ELEMENTWISE_BLOCK = _config.THREADS


def _largest_blocks(dtype):
    """{name expression: the largest block it is launched with}, from the same
    name functions the launchers use."""
    out = {}
    compute_size = 8 if kernels.COMPUTE[dtype] == "double" else 4
    for team in kernels.TEAMS:
        block = LARGEST_BLOCK(compute_size)[team]
        for direction in ("fwd", "bwd"):
            for log in (False, True):
                out[kernels.softmax_name(direction, dtype, team, log)] = block
            out[kernels.logsumexp_name(direction, dtype, team)] = block
            out[kernels.sparsemax_name(direction, dtype, team)] = block
        out[kernels.xent_index_name(dtype, team)] = block
        for u in kernels.target_types(dtype):
            out[kernels.xent_prob_name(dtype, u, team)] = block
    for direction in ("fwd", "bwd"):
        out[kernels.maxout_name(direction, dtype)] = ELEMENTWISE_BLOCK
    out[kernels.nll_name(dtype)] = ELEMENTWISE_BLOCK  # one thread per row: plan("items", ...)
    return out


def _dynamic_shared(dtype):
    """{name expression: dynamic shared bytes of its largest launch} where not 0:
    the softmax and sparsemax forwards of a block team keep their row there
    (``_config.SHARED_ROW_MAX`` bytes at most, ``_config.shared_row``); every
    other launch passes none."""
    fwd = [kernels.softmax_name("fwd", dtype, "block", log) for log in (False, True)]
    return {e: _config.SHARED_ROW_MAX for e in fwd + [kernels.sparsemax_name("fwd", dtype, "block")]}


def _violations(expr, r, block, dynamic=0):
    bad = []
    if r.max_threads is not None and block > r.max_threads:
        bad.append(f"launched with {block} threads, __launch_bounds__ allows {r.max_threads}")
    need = R.registers_for_block(r.registers, block)
    if need > R.REGISTERS_PER_SM:
        bad.append(f"{r.registers} registers x {block} threads = {need} > {R.REGISTERS_PER_SM}")
    if r.static_shared + dynamic > R.STATIC_SHARED_MAX:
        bad.append(f"{r.static_shared} + {dynamic} bytes of shared memory > {R.STATIC_SHARED_MAX}")
    if r.spill_stores or r.spill_loads:
        bad.append(f"spills {r.spill_stores} bytes stored, {r.spill_loads} loaded")
    if r.stack > STACK_MAX:
        bad.append(f"{r.stack} bytes of stack > {STACK_MAX}")
    return bad


# (name expression, arch) -> why it is over budget; each is a strict xfail below
# and left out of the main test. Empty: every kernel fits.
OVER_BUDGET = {}

# every module for sm_90; for sm_80 the float64 ones (the most registers) and the
# bfloat16 ones (its conversions are sm_80 instructions): each source is compiled
# for both, and the float32 and float16 instances differ from those only in types
MODULES = [(name, dtype, arch) for (name, dtype) in sorted(kernels.INSTANCES) for arch in ARCHS
           if arch == 90 or dtype in ("float64", "bfloat16")]


@pytest.mark.parametrize("name,dtype,arch", MODULES, ids=[f"{n}-{d}-sm{a}" for n, d, a in MODULES])
def test_kernel_resources_fit_the_largest_launch(name, dtype, arch):
    res = R.cupy_module_resources(name, dtype, arch)
    blocks = _largest_blocks(dtype)
    assert set(res) == set(kernels.INSTANCES[(name, dtype)])
    problems = []
    for expr, r in sorted(res.items()):
        assert expr in blocks, f"{expr}: no launch rule here for this kernel; add it to _largest_blocks"
        if (expr, arch) in OVER_BUDGET:
            continue
        dynamic = _dynamic_shared(dtype).get(expr, 0)
        problems += [f"{expr} sm_{arch}: {b}  [{r}]" for b in _violations(expr, r, blocks[expr], dynamic)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "expr,arch",
    [pytest.param(*k, marks=pytest.mark.xfail(strict=True, reason=v)) for k, v in OVER_BUDGET.items()]
    or [pytest.param(None, None, marks=pytest.mark.skip(reason="no kernel is known to be over budget"))],
)
def test_known_over_budget(expr, arch):
    # strict: passes (and so fails the suite) once the kernel fits; then drop the entry
    dtype = next(d for (f, d), v in kernels.INSTANCES.items() if expr in v)
    name = next(f for (f, d), v in kernels.INSTANCES.items() if expr in v)
    r = R.cupy_module_resources(name, dtype, arch)[expr]
    assert not _violations(expr, r, _largest_blocks(dtype)[expr], _dynamic_shared(dtype).get(expr, 0)), r


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_warp_forwards_hold_their_row_in_registers(dtype):
    # a warp team computing in float keeps each lane's WARP_HELD elements of a row
    # in registers (x read once; sparsemax's bisection steps over them): no stack
    # frame, no spills; its rows are those of the launcher's warp team, at most
    # 32 * WARP_HELD long
    held = int(re.search(r"WARP_HELD = (\d+)", kernels.source("softmax.cu")).group(1))
    assert 32 * held == _config.WARP_MAX
    soft = R.cupy_module_resources("softmax.cu", dtype, 90)
    simplex = R.cupy_module_resources("sparsemax.cu", dtype, 90)
    for r in [soft[kernels.softmax_name("fwd", dtype, "warp", log)] for log in (False, True)] + \
             [simplex[kernels.sparsemax_name("fwd", dtype, "warp")]]:
        assert r.stack == 0 and r.spill_stores == r.spill_loads == 0, r


def test_every_instance_has_a_launch_rule():
    for (name, dtype), exprs in kernels.INSTANCES.items():
        assert set(exprs) <= set(_largest_blocks(dtype)), name


def test_plan_stays_within_the_team_limits(monkeypatch):
    # plan() asks the device for its SM count: stand in an H100's
    monkeypatch.setattr(_config, "_sms", lambda device_id: 132)
    device = types.SimpleNamespace(Device=lambda *a: types.SimpleNamespace(id=0))
    monkeypatch.setattr(_config, "cupy", types.SimpleNamespace(cuda=device))
    for size in (4, 8):
        seen = {}
        for rows in (1, 31, 32, 1000, 10**6):
            for n in [1, 2, 31, 32, 33, 1023, 1024, 1025, 4096, 8191, 65536, 10**6, 10**9]:
                for elem_stride, row_stride in ((1, n), (rows, 1), (3, 7)):
                    team, grid, block = _config.plan("rows", rows, n, elem_stride, row_stride, size)
                    assert 32 <= block <= LARGEST_BLOCK(size)[team] and block % 32 == 0, (rows, n, team, block)
                    seen[team] = max(seen.get(team, 0), block)
        assert seen == LARGEST_BLOCK(size), "LARGEST_BLOCK is not the largest block plan() chooses"
    for total in (1, 255, 10**9):
        assert _config.plan("items", total, 1)[2] <= ELEMENTWISE_BLOCK


def test_dynamic_shared_memory_is_the_row_of_a_forward():
    # _dynamic_shared above: the launches that pass shared_mem are the forwards',
    # sized by _config.shared_row; revisit it when another launch starts passing some
    for mod, launches in ((rowwise, "_softmax"), (sparsemax, "_launch")):
        src = inspect.getsource(mod)
        assert src.count("shared_mem=") == 1, mod.__name__
        assert "shared_row(" in src, mod.__name__
        assert "shared_mem=" in inspect.getsource(getattr(mod, launches)), mod.__name__


@pytest.mark.parametrize("arch", [90])
def test_nvrtc_cubin_matches_ptxas_on_ptx(arch):
    # the resources above come from ptxas on NVRTC's PTX; CuPy loads NVRTC's cubin
    name, dtype = "cross_entropy.cu", "float64"  # holds the kernels closest to the register budget
    via_ptx = {e: r._replace(max_threads=None) for e, r in R.cupy_module_resources(name, dtype, arch).items()}
    assert R.cubin_resources(name, dtype, arch) == via_ptx
