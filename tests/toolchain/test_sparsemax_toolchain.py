"""sparsemax's GPU kernels through the compilers, without a GPU.

- kernels/sparsemax.cu run on the host: built with g++ against the CUDA
  emulation of hostcuda.py (three thread schedules that must agree bitwise,
  no write outside the arrays, every output written) and launched by the CuPy
  backend's own launcher (gpu_act/backends/cupy/sparsemax.py, loaded against
  hostcuda's NumPy stand-in for CuPy), for every team, dtype, layout, special
  row, in place, with the row in shared memory and streamed, and with blocks
  looping over rows; results against the float64 reference;
- (the same source through NVRTC as CuPy compiles it, every instance a
  kernel of the PTX and fitting its largest launch with the launcher's dynamic
  shared memory: tests/toolchain/test_ptxas_resources.py, with every other
  module);
- the Numba kernels (gpu_act/backends/cuda/sparsemax.py) compiled to PTX with
  NVVM, every variant and dtype (each once: float64 for sm_80, the others for
  sm_90), ptxas resources fitting the launch ``_config`` gives them (under
  numba-cuda-mlir: tests/toolchain/test_mlir_ptx.py, with every other kernel).
"""

import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import hostcuda as H
import reference as ref
import resources as R
from gpu_act import _cuda, kernels
from tolerances import assert_close

DTYPES = ("float16", "bfloat16", "float32", "float64")
TEAMS = kernels.TEAMS
i64 = np.int64
inf, nan = np.inf, np.nan


def _f64(a):
    return np.asarray(a).astype(np.float64)


def _storage(dtype):
    return H.BFLOAT16 if dtype == "bfloat16" else np.dtype(dtype)


# ---------------------------------------------------------------- host runs (g++)
gxx = pytest.mark.skipif(H.GXX is None, reason="g++ is not on PATH: the host build of kernels/ needs it")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """(the CuPy backend's sparsemax module on host kernels, its _config) for a device of one SM."""
    cache = Path(os.environ.get("GA_HOSTCUDA_CACHE") or tmp_path_factory.mktemp("hostcuda"))
    built = {}

    def function(name, dtype, expr):
        if (name, dtype) not in built:
            built[(name, dtype)] = H.build(kernels.source(name), kernels.INSTANCES[(name, dtype)], cache)
        return built[(name, dtype)].get_function(expr)

    b = H.backend(function, sms=1, cache_dir=cache)
    # the module as hostcuda loads the backend's own: through the package importer it
    # installs (relative imports resolve to the stand-in CuPy and these host kernels)
    importer = b.rowwise.__builtins__["__import__"]
    return importer("sparsemax", b.rowwise.__dict__, None, ("sparsemax",), 1), b.launch


class forced_team:
    """Within: ``_config.team_for`` answers ``team`` (every row length and layout), as
    tests/toolchain/test_gxx_kernels.py forces teams."""

    def __init__(self, config, team):
        self.config, self.team = config, team

    def __enter__(self):
        self.saved = self.config.team_for
        if self.team is not None:
            self.config.team_for = lambda *a: self.team

    def __exit__(self, *exc):
        self.config.team_for = self.saved


LAYOUTS = {  # input and output layouts of H.place
    "aligned": ({}, {}),
    "misaligned": ({"misalign": True}, {"misalign": True}),
    "F": ({"order": "F"}, {"order": "F"}),
    "flip": ({"flip": True}, {"flip": True}),
    "step2": ({"step": 2}, {"step": 2}),
    "shifted": ({}, {"misalign": True}),  # x aligned, out not: their lanes take other elements
}


def special_rows(n, seed):
    """Normal rows, then rows with a NaN, +inf or -inf first / in the middle / last,
    all -inf, all equal, ties at the threshold, +inf entries, huge values."""
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(n) * 3 for _ in range(3)]
    for pos in sorted({0, n // 2, n - 1}):
        for v in (nan, inf, -inf):
            r = rng.standard_normal(n)
            r[pos] = v
            rows.append(r)
    rows += [np.full(n, -inf), np.full(n, 2.0), np.resize([1.0, 1.0, 0.5, 0.5], n)]
    r = np.full(n, -1.0)
    r[:: max(1, n // 3)] = inf
    rows += [r, np.resize([1e30, -1e30, 0.0, 1e30], n)]
    return np.array(rows)


def run_rows(sm, dtype, x, axis, layout="aligned", in_place=False, what=""):
    """Forward on ``x`` then backward from its (rounded) output, both against the
    reference; every output element written. Returns the forward's output."""
    lin, lout = LAYOUTS[layout]
    with np.errstate(all="ignore"):
        xq = x.astype(_storage(dtype))
    xin = H.place(xq, **lin)
    out = xin if in_place else H.place(xq, poison=True, **lout)
    sm.sparsemax(None, xin, axis, out)
    y = np.asarray(out)
    assert H.unwritten(out).size == 0, what
    assert_close(y, ref.sparsemax(_f64(xq), axis=axis), _storage(dtype), msg=f"forward {what}")
    g = np.random.default_rng(x.size).standard_normal(x.shape).astype(_storage(dtype))
    gin, yin = H.place(g, **lin), H.place(y, **lin)
    dx = gin if in_place else H.place(g, poison=True, **lout)
    sm.sparsemax_backward(None, gin, yin, axis, dx)
    assert H.unwritten(dx).size == 0, what
    assert_close(np.asarray(dx), ref.sparsemax_backward(_f64(g), _f64(y), axis=axis), _storage(dtype),
                 msg=f"backward {what}")
    return y


@gxx
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("team", TEAMS)
def test_host_every_team_layout_and_special_row(host, team, dtype):
    sm, config = host
    for n, layouts in ((1, ("aligned",)), (7, ("misaligned", "flip")), (33, ("aligned", "F")),
                       (1030, ("aligned", "step2"))):
        for layout in layouts:
            what = f"{team} {dtype} n={n} {layout}"
            with forced_team(config, team):
                run_rows(sm, dtype, special_rows(n, n), 1, layout, what=what)
    with forced_team(config, team):
        run_rows(sm, dtype, special_rows(40, 1), 1, "aligned", in_place=True, what=f"{team} {dtype} in place")


@gxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_host_planned_launches(host, dtype):
    """No team forced: the launcher's own plan, any axis; the forward's block team keeps
    the row in shared memory where it fits (SHARED_ROW_MAX) and streams it beyond, its
    blocks looping over more rows than the grid has (the shared row reused)."""
    sm, config = host
    csize = np.dtype(dtype).itemsize
    fits = config.SHARED_ROW_MAX // csize
    # (shape, axis, the axis' stride and the rows' in elements, team, dynamic shared bytes)
    cases = (((6, 40), 0, 40, 1, "thread", 0), ((5, 9, 4), 1, 4, 1, "warp", 0),
             ((20, 1030), 1, 1, 1030, "block", 1030 * csize), ((2, fits), 1, 1, fits, "block", fits * csize),
             ((2, fits + 1), 1, 1, fits + 1, "block", 0))
    for shape, axis, elem_stride, row_stride, team, shared in cases:
        x = np.random.default_rng(shape[axis]).standard_normal(shape) * 3
        n = shape[axis]
        assert sm.plan(x.size // n, n, elem_stride, row_stride, csize)[0::3] == (team, shared), (shape, axis)
        run_rows(sm, dtype, x, axis, what=f"{shape} axis={axis}")
        if shared:  # the output written from the shared row by other lanes than read it in
            run_rows(sm, dtype, x, axis, "shifted", what=f"{shape} axis={axis} shifted")
    assert config.plan("rows", 20, 1030, 1, 1030, csize)[1] < 20  # blocks looped over rows above


# ---------------------------------------------------------------- Numba kernels to PTX
numba_ptx = pytest.mark.skipif(
    importlib.util.find_spec("numba_cuda") is None or _cuda.SIMULATOR,
    reason="PTX needs numba-cuda's real CUDA target (not the simulator)",
)
VARIANTS = ("thread", "warp", "block", "block-shared")


def numba_kernels():
    """(label, kernel, signature, variant, compute dtype) of every Numba sparsemax kernel
    with the argument types the backend launches it with (``_operands``): float16 and
    float32 storage computed in float32, float64, and bfloat16 as its uint16 view."""
    sm = importlib.import_module("gpu_act.backends.cuda.sparsemax")
    cd = importlib.import_module("gpu_act.backends.cuda._codecs")
    T = _cuda.types
    tup = T.UniTuple(T.int64, 2)

    def row_op(dtype):
        return (T.Array(_cuda.from_dtype(np.dtype(dtype)), 1, "C"), T.int64, tup, T.int64)

    out = []
    for storage, ctype, codec in ((np.float16, np.float32, cd.NATIVE), (np.float32, np.float32, cd.NATIVE),
                                  (np.float64, np.float64, cd.NATIVE), (np.uint16, np.float32, cd.BF16)):
        for variant in VARIANTS:
            for name, operands in (("forward", 2), ("backward", 3)):
                if name == "backward" and variant == "block-shared":
                    continue  # the backward reads its two rows once: no shared variant
                sig = row_op(storage) * operands + (tup, T.int64, T.int64)
                label = f"{name}.{variant}.{np.dtype(storage).name}"
                out.append((label, sm.kernel(name, ctype, variant, codec), sig, variant, np.dtype(ctype)))
    return out


@numba_ptx
def test_numba_kernels_compile_and_fit_their_launch():
    from ptx import assert_ptx  # numba-cuda's types: imported only where it is here

    for label, k, sig, variant, ctype in numba_kernels():
        ptx, _ = assert_ptx(k, sig, variant, ctype)
        assert ".local" not in ptx, label
        if variant != "thread":
            assert "shfl.sync.bfly" in ptx, label


@numba_ptx
def test_numba_block_shared_rows_fit_the_shared_memory_they_are_given():
    # the longest row plan() keeps in shared memory, with the kernel's static shared memory, fits 48 KiB
    config = importlib.import_module("gpu_act.backends.cuda._config")
    lim = _cuda.Limits(sm_count=132, max_threads=1024, shared_per_block=48 * 1024)
    for label, k, sig, variant, ctype in numba_kernels():
        if variant != "block-shared":
            continue
        n = lim.shared_per_block // ctype.itemsize
        while config.plan("softmax", 1, n, "unit", ctype.itemsize, lim).variant != "block-shared":
            n -= 1
        shared = config.plan("softmax", 1, n, "unit", ctype.itemsize, lim).shared
        if R.ptxas_path():
            ((_, r),) = R.ptx_resources(_cuda.compile_ptx(k, sig, (9, 0)), "90").items()
            assert shared + r.static_shared <= lim.shared_per_block, (label, n, r)
