"""The CuPy backend's CUDA C kernels (kernels/*.cu) run on the CPU.

tests/toolchain/hostcuda.py builds the real sources (``gpu_act.kernels.source``, what
CuPy compiles) for the host with g++ and tests/toolchain/cuda_host.h, and launches them
as CuPy does: through the backend itself (gpu_act/backends/cupy/__init__.py,
rowwise.py, elementwise.py), loaded against a NumPy stand-in for CuPy, so its
argument conventions (P, Q, strides in elements, scalar types) and
_config.plan's teams and grids are the ones run; its ElementwiseKernels (the
binary cross-entropy, activations on bfloat16) run as host kernels of CuPy's
shape.
Every launch runs under several schedules of each block's threads, which must
leave bit-identical memory (a race fails), writes nothing outside its
arrays, and every output element is checked written (outputs start as a NaN
poison pattern, arrays sit in NaN-guarded buffers). Results are compared with
the float64 reference (tests/reference.py) at the shared tolerances;
bfloat16 results also bit for bit with the float32 kernels' results on the
widened operands, rounded once (ml_dtypes' astype).

The first tests check the harness itself: half conversions bit for bit
against NumPy, bfloat16 ones against ml_dtypes, a reduction with a barrier
removed (and the real block reduction of rows.cuh with either barrier
removed) caught, wrong argument types, writes out of bounds, deadlocks and
launch bounds rejected.
"""

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
import reference as R
from tolerances import assert_close

import hostcuda as H
from gpu_act import formulas as F
from gpu_act import kernels
from gpu_act._dtypes import COMPUTE
from gpu_act.registry import ACTIVATIONS

pytestmark = pytest.mark.skipif(H.GXX is None, reason="g++ is not on PATH: the host build of kernels/ needs it")

DTYPES = ("float16", "float32", "float64")
# bfloat16 (computed in float, as float16): the sweeps that exercise its loads, stores and 16-byte packs
WITH_BF16 = DTYPES + ("bfloat16",)
i64 = np.int64


# ------------------------------------------------------------------ builds
@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    # GA_HOSTCUDA_CACHE: a directory kept across runs; else one for all xdist workers of the
    # session (each library is built once)
    if os.environ.get("GA_HOSTCUDA_CACHE"):
        return Path(os.environ["GA_HOSTCUDA_CACHE"])
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "hostcuda"


@pytest.fixture(scope="session")
def module(cache_dir):
    built = {}

    def get(name, dtype):
        if (name, dtype) not in built:
            built[(name, dtype)] = H.build(kernels.source(name), kernels.INSTANCES[(name, dtype)], cache_dir)
        return built[(name, dtype)]

    return get


class Rig:
    """The CuPy backend (its package functions, rowwise.py, elementwise.py, _config.py,
    _layout.py) on host kernels. ``team`` forces the team for every row length and layout
    (as tests/gpu/test_cupy_gpu.py does); ``block`` the block size ("max": the planner's largest
    for the team); ``grid_cap`` caps the grid, so blocks loop over rows; ``cache_dir``: where
    ElementwiseKernels are built."""

    def __init__(self, module, team=None, block=None, grid_cap=None, sms=1, cache_dir=None):
        self.launches = []

        def function(name, dtype, expr):
            fn = module(name, dtype).get_function(expr)

            def call(grid, block_, args, **kw):
                fn(grid, block_, args, **kw)
                self.launches.append((expr, grid, block_, fn.last_stats, args))

            return call

        self.b = H.backend(function, sms, cache_dir)
        launch = self.b.launch
        real_plan, real_team_for = launch.plan, launch.team_for
        resident = sms * launch.RESIDENT_THREADS_PER_SM

        def plan(op, rows, n, *rest):
            if op == "items":  # one thread per item (maxout): only the grid cap applies
                t, grid, blk = real_plan(op, rows, n, *rest)
                return t, grid if grid_cap is None else min(grid, grid_cap), blk
            if team is not None:
                launch.team_for = lambda *a: team
            try:
                t, grid, blk = real_plan(op, rows, n, *rest)
                # "max": the largest block the planner gives this team and compute type (very long rows)
                want = real_plan(op, rows, 1 << 30, *rest)[2] if block == "max" else block
            finally:
                launch.team_for = real_team_for
            if want is not None:
                blk = want
                per = {"thread": blk, "warp": blk // 32, "block": 1}[t]
                grid = max(1, min(-(-rows // per), resident // blk))
            if grid_cap is not None:
                grid = min(grid, grid_cap)
            return t, grid, blk

        if team is not None or block is not None or grid_cap is not None:
            launch.plan = plan

    @property
    def rowwise(self):
        return self.b.rowwise

    @property
    def api(self):
        return self.b.api

    @property
    def ctx(self):
        return self.b.api.Call(0, None)

    def vector_moves(self):
        return sum(s["vec_moves"] for *_, s, _ in self.launches)


@contextlib.contextmanager
def annotated(what):
    """Harness failures name the case."""
    try:
        yield
    except (H.RaceError, H.OutOfBoundsWrite, H.LaunchError) as e:
        raise type(e)(f"{what}: {e}") from None


def check_written(out, what):
    bad = H.unwritten(out)
    assert bad.size == 0, f"{what}: {len(bad)} output elements never written, e.g. at {bad[:5].tolist()}"


# ------------------------------------------------------------------ harness self-tests
SELFTEST = r"""
#include <cuda_bf16.h>
#include <cuda_fp16.h>
namespace t {
// sum of each block's row x[b*n .. b*n+n) by a shared-memory tree; BROKEN = 1 drops the
// barrier between the stores and the tree, 2 the one inside the tree
template <int BROKEN>
__global__ void block_sum(const float* x, float* out, long long n) {
    extern __shared__ __align__(16) float sh[];
    const int t = threadIdx.x;
    float v = 0.0f;
    for (long long j = t; j < n; j += blockDim.x) v += x[blockIdx.x * n + j];
    sh[t] = v;
    if (BROKEN != 1) __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        if (BROKEN != 2) __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = sh[0];
}
// the same with static shared memory, read before any thread of the block wrote it when BROKEN
template <int BROKEN>
__global__ void static_sum(const float* x, float* out, long long n) {
    __shared__ float sh[256];
    const int t = threadIdx.x;
    if (!BROKEN || blockIdx.x == 0) sh[t] = t < n ? x[blockIdx.x * n + t] : 0.0f;
    __syncthreads();
    if (t == 0) {
        float s = 0.0f;
        for (int k = 0; k < (int)blockDim.x; ++k) s += sh[k];
        out[blockIdx.x] = s;
    }
}
// a warp sum through shared memory without __syncwarp between the steps
// (warp-synchronous code without the synchronisation), or with it
template <bool SYNC>
__global__ void warp_sum(const float* x, float* out) {
    __shared__ float sh[32];
    const int l = threadIdx.x;
    sh[l] = x[l];
    if (SYNC) __syncwarp();
    for (int s = 16; s > 0; s >>= 1) {
        const float v = l < s ? sh[l + s] : 0.0f;
        if (SYNC) __syncwarp();
        if (l < s) sh[l] += v;
        if (SYNC) __syncwarp();
    }
    if (l == 0) out[0] = sh[0];
}
// every lane's value after a butterfly of xor shuffles, and shuffle-down / ballot / sync-count
__global__ void shuffles(const double* x, double* xor_sum, float* down, unsigned* ballot, int* count) {
    const int l = threadIdx.x;
    double v = x[l];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    xor_sum[l] = v;
    down[l] = __shfl_down_sync(0xffffffffu, (float)l, 3);
    ballot[l] = __ballot_sync(0xffffffffu, x[l] > 0.0);
    count[l] = __syncthreads_count(x[l] > 0.0);
}
// writes one element past its row
__global__ void past_end(float* y, long long n) {
    for (long long j = threadIdx.x; j <= n; j += blockDim.x) y[j] = 1.0f;
}
// writes through a pointer it takes as const
__global__ void const_write(const float* x, float* y) {
    y[threadIdx.x] = x[threadIdx.x];
    const_cast<float*>(x)[threadIdx.x] = 0.0f;
}
// a barrier that only some threads reach
__global__ void divergent(float* y) {
    if (threadIdx.x < 16) __syncthreads();
    y[threadIdx.x] = 1.0f;
}
template <int N> struct Max { enum { V = N }; };
template <int N>
__global__ void __launch_bounds__(Max<N>::V, 1) bounded(float* y) { y[threadIdx.x] = (float)threadIdx.x; }
__global__ void types(const __half* h, float* f, long long n, int k, double d) {
    for (long long j = threadIdx.x; j < n; j += blockDim.x) f[j] = __half2float(h[j]) * k + (float)d;
}
}  // namespace t
extern "C" __attribute__((visibility("default"))) void t_float2half(const float* x, unsigned short* y, long n) {
    for (long i = 0; i < n; ++i) y[i] = __half_as_ushort(__float2half_rn(x[i]));
}
extern "C" __attribute__((visibility("default"))) void t_double2half(const double* x, unsigned short* y, long n) {
    for (long i = 0; i < n; ++i) y[i] = __half_as_ushort(__double2half(x[i]));
}
extern "C" __attribute__((visibility("default"))) void t_half2float(const unsigned short* x, float* y, long n) {
    for (long i = 0; i < n; ++i) y[i] = __half2float(__ushort_as_half(x[i]));
}
extern "C" __attribute__((visibility("default"))) void t_float2bfloat16(const float* x, unsigned short* y, long n) {
    for (long i = 0; i < n; ++i) y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}
extern "C" __attribute__((visibility("default"))) void t_bfloat162float(const unsigned short* x, float* y, long n) {
    for (long i = 0; i < n; ++i) y[i] = __bfloat162float(__ushort_as_bfloat16(x[i]));
}
"""
SELFTEST_EXPRS = ["t::block_sum<0>", "t::block_sum<1>", "t::block_sum<2>", "t::static_sum<0>", "t::static_sum<1>",
                  "t::warp_sum<true>", "t::warp_sum<false>", "t::shuffles", "t::past_end", "t::const_write",
                  "t::divergent", "t::bounded<64>", "t::types"]


@pytest.fixture(scope="module", params=["asm", "ucontext"])
def selftest(request, cache_dir):
    flags = ("-DGAHOST_UCONTEXT",) if request.param == "ucontext" else ()
    return H.build(SELFTEST, SELFTEST_EXPRS, cache_dir, flags=flags)


def _rows(nb, n, seed=0):
    return np.random.default_rng(seed).standard_normal((nb, n)).astype(np.float32)


def test_harness_correct_reductions_pass_every_schedule(selftest):
    x = _rows(3, 300)
    out = np.full(3, np.nan, np.float32)
    for block in (32, 64, 256):
        selftest.get_function("t::block_sum<0>")((3,), (block,), (x, out, 300), shared_mem=block * 4)
        np.testing.assert_allclose(out, x.sum(1), rtol=1e-5, atol=1e-5)
    x = _rows(3, 256)
    selftest.get_function("t::static_sum<0>")((3,), (256,), (x, out, 256))
    np.testing.assert_allclose(out, x.sum(1), rtol=1e-5, atol=1e-5)
    x = _rows(1, 32)[0]
    one = np.zeros(1, np.float32)
    selftest.get_function("t::warp_sum<true>")((1,), (32,), (x, one))
    np.testing.assert_allclose(one, x.sum(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("expr", ["t::block_sum<1>", "t::block_sum<2>"])
def test_harness_catches_a_missing_syncthreads(selftest, expr):
    x = _rows(2, 256)
    out = np.zeros(2, np.float32)
    with pytest.raises(H.RaceError, match="schedules"):
        selftest.get_function(expr)((2,), (128,), (x, out, 256), shared_mem=128 * 4)


def test_harness_poisons_shared_memory_per_block(selftest):
    # block 1 reads shared memory that only block 0 wrote: NaN, not block 0's leftovers
    x = _rows(2, 256)
    out = np.zeros(2, np.float32)
    selftest.get_function("t::static_sum<1>")((2,), (256,), (x, out, 256))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_harness_catches_a_missing_syncwarp(selftest):
    x = _rows(1, 32)[0]
    with pytest.raises(H.RaceError):
        selftest.get_function("t::warp_sum<false>")((1,), (32,), (x, np.zeros(1, np.float32)))


def test_harness_shuffles_and_votes(selftest):
    x = np.random.default_rng(3).standard_normal(64)
    s = np.zeros(64)
    d = np.zeros(64, np.float32)
    b = np.zeros(64, np.uint32)
    c = np.zeros(64, np.int32)
    selftest.get_function("t::shuffles")((1,), (64,), (x, s, d, b, c))
    for w in range(2):  # two warps: each exchanges among its own 32 lanes
        lanes = slice(32 * w, 32 * w + 32)
        np.testing.assert_allclose(s[lanes], x[lanes].sum(), rtol=1e-12)
        ballot = sum(1 << k for k in range(32) if x[32 * w + k] > 0)
        assert (b[lanes] == ballot).all()
    lane = np.arange(32)
    np.testing.assert_array_equal(d[:32], np.where(lane + 3 < 32, lane + 3, lane))
    assert (c == (x > 0).sum()).all()


def test_harness_rejects_wrong_arguments(selftest):
    h = np.ones(8, np.float16)
    f = np.zeros(8, np.float32)
    fn = selftest.get_function("t::types")
    assert fn.signature == "pf2c,pf4,i8,i4,f8"
    fn((1,), (32,), (h, f, i64(8), np.int32(2), 0.5))  # a Python float is a double, as CuPy passes it
    np.testing.assert_array_equal(f, 2.5)
    with pytest.raises(TypeError, match="argument 3"):
        fn((1,), (32,), (h, f, i64(8), i64(2), 0.5))  # int64 for an int: a real launch reads garbage
    with pytest.raises(TypeError, match="argument 4"):
        fn((1,), (32,), (h, f, i64(8), np.int32(2), np.float32(0.5)))
    with pytest.raises(TypeError, match="argument 0"):
        fn((1,), (32,), (h.astype(np.float32), f, i64(8), np.int32(2), 0.5))
    with pytest.raises(TypeError, match="takes 5 arguments"):
        fn((1,), (32,), (h, f, i64(8), np.int32(2)))


def test_harness_catches_writes_out_of_bounds(selftest):
    y = place_float32(np.zeros(100))
    with pytest.raises(H.OutOfBoundsWrite, match="outside"):
        selftest.get_function("t::past_end")((1,), (64,), (y, i64(100)))
    x = place_float32(np.ones(32))
    with pytest.raises(H.OutOfBoundsWrite, match="const"):
        selftest.get_function("t::const_write")((1,), (32,), (x, place_float32(np.zeros(32))))
    # in place (the same array for a const and a non-const parameter) is allowed
    selftest.get_function("t::const_write")((1,), (32,), (x, x))


def test_harness_catches_deadlocks_and_bad_launches(selftest):
    y = np.zeros(1024, np.float32)
    with pytest.raises(H.LaunchError, match="deadlock"):
        selftest.get_function("t::divergent")((1,), (32,), (y,))
    fn = selftest.get_function("t::bounded<64>")
    fn((1,), (64,), (y,))
    with pytest.raises(H.LaunchError, match="launch_bounds"):
        fn((1,), (128,), (y,))
    with pytest.raises(H.LaunchError, match="1024"):
        selftest.get_function("t::past_end")((1,), (2048,), (y, i64(10)))


def place_float32(values):
    return H.place(np.asarray(values, np.float32))


def _halves():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def test_harness_half_conversions_match_numpy(selftest):
    import ctypes

    lib = selftest.lib
    # every half -> float exactly (NaNs as NaN)
    h = _halves()
    f = np.empty(h.size, np.float32)
    lib.t_half2float(h.ctypes.data_as(ctypes.c_void_p), f.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(h.size))
    want = h.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert (np.isnan(f) == nan).all()
    np.testing.assert_array_equal(f.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    # float -> half round to nearest even: every half, the midpoints between neighbours and one ulp
    # either side, the overflow threshold, subnormals, random bit patterns
    fin = h.view(np.float16)[np.isfinite(h.view(np.float16))].astype(np.float64)
    fin = np.unique(fin)
    mids = (fin[1:] + fin[:-1]) / 2
    edges = [65504.0, 65519.99, 65520.0, 1e6, -1e6, 2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -26, np.inf, -np.inf, np.nan]
    x32 = np.concatenate([fin, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), edges]).astype(np.float32)
    bits = np.random.default_rng(0).integers(0, 2 ** 32, 200000, dtype=np.uint64).astype(np.uint32)
    x32 = np.concatenate([x32, bits.view(np.float32)])
    out = np.empty(x32.size, np.uint16)
    lib.t_float2half(x32.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(x32.size))
    with np.errstate(all="ignore"):
        want = x32.astype(np.float16)
    nan = np.isnan(want)
    assert (np.isnan(out.view(np.float16)) == nan).all()
    assert (out[nan] == 0x7FFF).all()  # CUDA's canonical NaN
    np.testing.assert_array_equal(out[~nan], want.view(np.uint16)[~nan])
    # double -> half in one rounding (not through float)
    x64 = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
                          mids * (1 + 2.0 ** -40), [1 + 2.0 ** -11 + 2.0 ** -40]])
    out = np.empty(x64.size, np.uint16)
    lib.t_double2half(x64.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(x64.size))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, x64.astype(np.float16).view(np.uint16))


def test_harness_bfloat16_conversions_match_ml_dtypes(selftest):
    import ctypes

    lib = selftest.lib
    bf = H.BFLOAT16
    # every bfloat16 -> float exactly (NaNs as NaN)
    b = _halves()
    f = np.empty(b.size, np.float32)
    lib.t_bfloat162float(b.ctypes.data_as(ctypes.c_void_p), f.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(b.size))
    want = b.view(bf).astype(np.float32)
    nan = np.isnan(want)
    assert (np.isnan(f) == nan).all()
    np.testing.assert_array_equal(f.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    # float -> bfloat16 round to nearest even as ml_dtypes' astype: every bfloat16, the midpoints
    # between neighbours (exact in float) and one ulp either side, the overflow threshold, ties among
    # subnormals, random bit patterns
    fin = np.unique(want[np.isfinite(want)].astype(np.float64))
    mids = ((fin[1:] + fin[:-1]) / 2).astype(np.float32)
    edges = np.array([0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0x00008000, 0x00018000, 0x8000FFFF, 0x80808000,
                      0x7F800000, 0xFF800000, 0x7FC00001, 0xFFFFFFFF], np.uint32).view(np.float32)
    bits = np.random.default_rng(0).integers(0, 2 ** 32, 200000, dtype=np.uint64).astype(np.uint32)
    x32 = np.concatenate([fin.astype(np.float32), mids, np.nextafter(mids, np.float32(np.inf)),
                          np.nextafter(mids, np.float32(-np.inf)), edges, bits.view(np.float32)])
    out = np.empty(x32.size, np.uint16)
    lib.t_float2bfloat16(x32.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                         ctypes.c_long(x32.size))
    with np.errstate(all="ignore"):
        want = x32.astype(bf)
    nan = np.isnan(x32)
    assert (out[nan] == 0x7FFF).all()  # CUDA's canonical NaN
    np.testing.assert_array_equal(out[~nan], want.view(np.uint16)[~nan])


# ------------------------------------------------------------------ layouts and data
# (input kwargs, output kwargs) of H.place
LAYOUTS = {
    "aligned": ({}, {}),  # 16-byte aligned contiguous rows: the vector path where rows stay aligned
    "misaligned": ({"misalign": True}, {"misalign": True}),
    "mixed": ({}, {"misalign": True}),  # aligned input, output one element off: vector reads, scalar writes
    "F": ({"order": "F"}, {"order": "F"}),  # strided rows (a transposed array)
    "step2": ({"step": 2}, {"step": 2}),
    "flip": ({"flip": True}, {"flip": True}),  # negative strides
    "C-in-F-out": ({}, {"order": "F"}),
}
ROWS = {1: 40, 7: 37, 31: 6, 32: 5, 33: 34, 1024: 2, 1025: 3, 2500: 2}
BIG = {"float16": 100.0, "bfloat16": 1e30, "float32": 1e30, "float64": 1e30}


def _temperature_type(dtype):
    return np.float64 if dtype == "float64" else np.float32


def softmax_ref(log, x, axis, t):
    return (R.log_softmax if log else R.softmax)(x, axis=axis, temperature=t)


def softmax_bwd_ref(log, g, y, axis, t):
    return (R.log_softmax_backward if log else R.softmax_backward)(g, y, axis=axis, temperature=t)


def run_softmax(rig, direction, log, dtype, x, axis=-1, t=1.0, layout="aligned", inplace=False, g=None, msg="",
                y_t=None):
    """One call of the CuPy launcher on host kernels, checked against the reference.
    fwd: softmax of x; bwd: its backward from g and the (dtype-rounded) forward output
    (at temperature ``y_t``, default ``t``)."""
    lin, lout = LAYOUTS[layout]
    axis %= x.ndim  # the public API hands the backend a non-negative axis
    what = f"{direction} log={log} {dtype} {x.shape} axis={axis} T={t} {layout}{' in place' if inplace else ''} {msg}"
    with np.errstate(all="ignore"):
        xq = x.astype(dtype)
    if direction == "fwd":
        xin = H.place(xq, **lin)
        out = xin if inplace else H.place(xq, poison=True, **lout)
        with annotated(what):
            rig.rowwise.softmax(xin, axis, t, log, None, out)
        want = softmax_ref(log, xq, axis, t)
    else:
        with np.errstate(all="ignore"):
            yq = softmax_ref(log, xq, axis, t if y_t is None else y_t).astype(dtype)
            gq = (np.random.default_rng(x.size).standard_normal(x.shape) if g is None else g).astype(dtype)
        gin = H.place(gq, **lin)
        yin = H.place(yq, **(lout if layout == "mixed" else lin))
        out = gin if inplace else H.place(gq, poison=True, **lout)
        with annotated(what):
            rig.rowwise.softmax_backward(gin, yin, axis, t, log, None, out)
        want = softmax_bwd_ref(log, gq, yq, axis, t)
    check_written(out, what)
    assert_close(np.asarray(out), want, dtype, msg=what)


def _cases(team):
    """(n, layout, block) of one team's sweep; every layout meets every row length."""
    out = [(n, layout, None) for n in ROWS for layout in LAYOUTS]
    if team == "block":
        out += [(1025, "aligned", 64), (33, "misaligned", 64), (2500, "flip", 256), (1025, "aligned", "max")]
    if team == "warp":
        out += [(33, "aligned", 32), (1024, "misaligned", 64)]
    return out


TEAMS = ("thread", "warp", "block")


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_softmax_every_team_row_length_and_layout(module, team, dtype, direction, log):
    rng = np.random.default_rng(5)
    for n, layout, block in _cases(team):
        rig = Rig(module, team=team, block=block, grid_cap=3)
        x = rng.standard_normal((ROWS[n], n)) * 3
        run_softmax(rig, direction, log, dtype, x, layout=layout, t=0.7 if n == 33 else 1.0, msg=f"block={block}")
        want = kernels.softmax_name(direction, dtype, team, log)
        assert rig.launches and all(e == want for e, *_ in rig.launches), rig.launches
        vec = rig.vector_moves()
        if layout in ("F", "step2", "flip"):
            assert vec == 0, f"{layout} n={n}: the 16-byte path ran on rows it must not"
        # (a warp team's forward computing in float holds its row in registers, one
        # element per lane at a time: a warp's load is 32 adjacent elements)
        held = team == "warp" and direction == "fwd" and dtype != "float64"
        if layout == "aligned" and n * np.dtype(dtype).itemsize % 16 == 0 and n >= 16 and not held:
            assert vec > 0, f"aligned rows of {n} did not take the 16-byte path"
    # in place, aligned and reversed
    for layout in ("aligned", "flip"):
        x = rng.standard_normal((5, 40)) * 3
        run_softmax(Rig(module, team=team, grid_cap=2), direction, log, dtype, x, layout=layout, inplace=True)


def special_rows(n, dtype):
    """Rows with NaN, +-inf, all -inf, -inf entries, huge values, ties; the special
    value in the first element, a middle one and the last (the tail after 16-byte packs)."""
    inf, nan, big = np.inf, np.nan, BIG[dtype]
    rng = np.random.default_rng(n)
    rows = []
    for pos in sorted({0, n // 2, n - 1}):
        for v in (nan, inf, -inf):
            r = rng.standard_normal(n) * 3
            r[pos] = v
            rows.append(r)
    rows.append(np.full(n, -inf))
    r = np.full(n, -inf)
    r[n // 3] = 2.0
    rows.append(r)  # one finite entry
    r = rng.standard_normal(n)
    r[::3] = -inf
    rows.append(r)
    rows.append(np.resize([big, -big, 0.0, big / 2], n))
    rows.append(np.full(n, 3.0))
    r = np.full(n, -inf)
    r[-1] = inf
    rows.append(r)
    return np.array(rows)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("dtype", WITH_BF16)
def test_softmax_special_rows_every_team(module, dtype, direction, log):
    for team in TEAMS:
        for n, layout in ((1, "aligned"), (7, "misaligned"), (33, "aligned"), (1025, "flip")):
            x = special_rows(n, dtype)
            g = None
            if direction == "bwd":  # NaN and inf in the incoming gradient too
                g = np.random.default_rng(1).standard_normal(x.shape)
                g[1, -1], g[2, 0] = np.nan, np.inf
            run_softmax(Rig(module, team=team, grid_cap=2), direction, log, dtype, x, layout=layout, g=g,
                        msg=f"team={team}")


@pytest.mark.parametrize("dtype", WITH_BF16)
def test_softmax_forward_row_kept_on_chip_or_read_again(module, dtype):
    """A block team's forward keeps its row in dynamic shared memory where it fits
    ``_config.SHARED_ROW_MAX`` (x read once, y written from there) and reads x
    again beyond: both against the reference, with special rows, a mask-free
    misaligned output (its lanes take other elements), reversed rows and in place."""
    for log in (False, True):
        for n, layout, inplace in ((1025, "aligned", False), (300, "mixed", False), (2500, "flip", False),
                                   (40, "aligned", True)):
            x = special_rows(n, dtype)
            for row_max in (None, 0):  # the planner's limit, then none: the row read twice
                rig = Rig(module, team="block", grid_cap=2)
                if row_max is not None:
                    rig.b.launch.SHARED_ROW_MAX = row_max
                run_softmax(rig, "fwd", log, dtype, x, layout=layout, inplace=inplace, msg=f"row_max={row_max}")
                cached = [int(args[-1]) for *_, args in rig.launches]
                assert cached == [int(row_max is None)] * len(cached) and cached, (n, layout, row_max, cached)


def _inv_t_overflows(dtype, t):
    with np.errstate(all="ignore"):
        return np.isinf(_temperature_type(dtype)(1.0 / t))


def _extreme_t_cases():
    for dtype in DTYPES:
        for log in (False, True):
            for direction in ("fwd", "bwd"):
                for t in (1e-30, 1e-200, 1e-310, 1e30, 1e300):
                    if direction == "fwd" and t < 1e-300:
                        continue  # the reference's x / T overflows
                    if _inv_t_overflows(dtype, t):
                        continue  # the API refuses a T whose 1/T overflows the compute type
                    yield pytest.param(dtype, log, direction, t,
                                       id=f"{dtype}-{'log' if log else 'softmax'}-{direction}-T{t:g}")


@pytest.mark.parametrize("dtype,log,direction,t", list(_extreme_t_cases()))
def test_softmax_extreme_temperatures(module, dtype, log, direction, t):
    # 1/T overflowing to inf (T tiny) or underflowing to 0 (T huge) in the compute type;
    # the backward's y is a forward output at T = 1 (any probabilities do)
    x = special_rows(33, dtype)
    g = np.random.default_rng(2).standard_normal(x.shape)
    for team in ("thread", "block"):
        run_softmax(Rig(module, team=team, grid_cap=2), direction, log, dtype, x, t=t, g=g, y_t=1.0, msg=f"team={team}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_any_axis_with_the_planned_team(module, dtype):
    """No team forced: _config.plan's own choice (thread team for a non-last axis of
    enough rows, warp or block for the last), its grid and block, any axis of a 3-D array."""
    rng = np.random.default_rng(9)
    seen = set()
    for shape in ((40, 4, 10), (3, 5, 1100), (2, 33, 7)):
        x = rng.standard_normal(shape) * 2
        for axis in range(3):
            for layout in ("aligned", "F", "flip"):
                for direction in ("fwd", "bwd"):
                    rig = Rig(module, sms=1)
                    run_softmax(rig, direction, axis == 1, dtype, x, axis=axis, layout=layout)
                    seen |= {e.split(",")[1].strip() for e, *_ in rig.launches}
    assert seen == {"0", "1", "2"}, f"teams planned: {seen}"


def same_bits_as_rounded(got, f32, what):
    """``got`` (bfloat16) is ``f32`` rounded once to nearest even (ml_dtypes' astype),
    bit for bit; NaN exactly where that is NaN."""
    got = np.asarray(got)
    with np.errstate(all="ignore"):
        want = np.asarray(f32).astype(H.BFLOAT16)
    nan = np.isnan(want.astype(np.float32))
    assert (np.isnan(got.astype(np.float32)) == nan).all(), f"{what}: NaN positions differ"
    bad = got.view(np.uint16) != want.view(np.uint16)
    assert not (bad & ~nan).any(), f"{what}: {int((bad & ~nan).sum())} elements are not the float result rounded once"


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_softmax_bfloat16_is_the_float_result_rounded_once(module, direction, log):
    """The bfloat16 instances compute what the float32 ones compute on the exactly widened
    operands and round once. Layouts where both dtypes visit a row's elements in the same
    order: any layout for a thread team, element-strided or misaligned rows (no 16-byte
    packs, which hold 8 bfloat16 but 4 floats) for warps and blocks."""
    for team, n, layout in (("thread", 40, "aligned"), ("warp", 33, "misaligned"), ("block", 1025, "flip"),
                            ("warp", 7, "F")):
        x = special_rows(n, "bfloat16").astype(H.BFLOAT16)
        g = np.random.default_rng(n).standard_normal(x.shape).astype(H.BFLOAT16)
        lin, lout = LAYOUTS[layout]
        outs = []
        for dtype in ("bfloat16", "float32"):
            rig = Rig(module, team=team, grid_cap=2)
            out = H.place(np.zeros(x.shape), dtype, poison=True, **lout)
            what = f"{direction} log={log} {dtype} n={n} {team} {layout}"
            with annotated(what):
                if direction == "fwd":
                    rig.rowwise.softmax(H.place(x, dtype, **lin), 1, 0.7, log, None, out)
                else:
                    y = softmax_ref(log, x, 1, 0.7).astype(H.BFLOAT16)
                    rig.rowwise.softmax_backward(H.place(g, dtype, **lin), H.place(y, dtype, **lin), 1, 0.7, log, None, out)
            check_written(out, what)
            outs.append(out)
        same_bits_as_rounded(*outs, f"softmax {direction} log={log} n={n} {team} {layout}")


# ------------------------------------------------------------------ every barrier of the kernels is needed
def _barriers(src):
    return [m.start() for m in re.finditer(r"__syncthreads\(\)\s*;", src)]


@pytest.mark.parametrize("k", range(len(_barriers(kernels.source("softmax.cu")))))
def test_removing_any_barrier_of_softmax_is_caught(cache_dir, k):
    """Mutation test of the harness on the real sources: drop the k-th __syncthreads()
    of softmax.cu (with its headers); a block-team softmax whose blocks loop over
    several rows must then fail (a race between schedules, or a wrong result) with
    its rows kept in shared memory, or read twice (``SHARED_ROW_MAX`` 0). Kept, the
    output is misaligned ("mixed"): the lanes that write y from the cached row then
    take other elements than the ones that read x into it."""
    src = kernels.source("softmax.cu")
    at = _barriers(src)[k]
    mutant = src[:at] + "/* removed */ ;" + src[at:].split(";", 1)[1]
    expr = kernels.softmax_name("fwd", "float32", "block", False)
    mod = H.build(mutant, [expr], cache_dir)
    x = np.random.default_rng(0).standard_normal((6, 300))
    caught = []
    for row_max, layout in ((None, "mixed"), (0, "aligned")):
        rig = Rig(lambda *a: mod, team="block", block=128, grid_cap=2)
        if row_max is not None:
            rig.b.launch.SHARED_ROW_MAX = row_max
        try:
            run_softmax(rig, "fwd", False, "float32", x, layout=layout)
        except (H.RaceError, AssertionError):
            caught.append(layout)
    assert caught, "the barrier's removal went unnoticed"


# ------------------------------------------------------------------ maxout
def maxout_data(shape, axis, pool, dtype, seed):
    """Rounded normals (many ties) with NaN, +-inf and -inf-only groups along ``axis``."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 2)
    xm = np.moveaxis(x, axis, -1)  # a view: writes land in x
    flat = xm.reshape(-1, xm.shape[-1])
    specials = [np.nan, np.inf, -np.inf, BIG[dtype]]
    for r in range(0, flat.shape[0], 3):
        j = rng.integers(0, flat.shape[1])
        flat[r, j] = specials[r % 4]
    if flat.shape[0] > 1:
        flat[1, :pool] = -np.inf  # a group of all -inf
        flat[-1, pool - 1::pool] = np.nan  # NaN last in every group
    xm[...] = flat.reshape(xm.shape)
    return x


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("dtype", WITH_BF16)
def test_maxout(module, dtype, direction):
    seed = 0
    # (shape, axis, pool): groups along the fast axis and along a strided one (rows side by side)
    cases = [((37, 8), 1, 2), ((6, 210), 1, 3), ((5, 35), 1, 5), ((9, 1), 1, 1), ((9, 40), 0, 3), ((10, 6, 7), 0, 5),
             ((4, 6, 11), 1, 2), ((4, 33), 1, 1)]
    for shape, axis, pool in cases:
        for layout in ("aligned", "misaligned", "F", "flip", "C-in-F-out"):
            seed += 1
            run_maxout(Rig(module, grid_cap=2), direction, dtype, maxout_data(shape, axis, pool, dtype, seed), axis,
                       pool, layout)
    # in place is not possible (shapes differ) for fwd; bwd into g's memory is (g is the output's shape only
    # when pool == 1)
    x = maxout_data((8, 12), 1, 1, dtype, 99)
    run_maxout(Rig(module, grid_cap=2), direction, dtype, x, 1, 1, "aligned", inplace=direction == "bwd")


def run_maxout(rig, direction, dtype, x, axis, pool, layout, inplace=False):
    lin, lout = LAYOUTS[layout]
    what = f"maxout {direction} {dtype} {x.shape} axis={axis} pool={pool} {layout}{' in place' if inplace else ''}"
    with np.errstate(all="ignore"):
        xq = x.astype(dtype)
    xin = H.place(xq, **lin)
    oshape = list(x.shape)
    oshape[axis] //= pool
    if direction == "fwd":
        out = H.place(np.zeros(oshape), dtype, poison=True, **lout)
        with annotated(what):
            rig.rowwise.maxout(xin, pool, axis, out)
        want = R.maxout(xq, pool, axis=axis)
    else:
        gq = np.random.default_rng(x.size).standard_normal(oshape).astype(dtype)
        gin = H.place(gq, **lin)
        out = gin if inplace else H.place(xq, poison=True, **lout)
        with annotated(what):
            rig.rowwise.maxout_backward(gin, xin, pool, axis, out)
        want = R.maxout_backward(gq, xq, pool, axis=axis)
    check_written(out, what)
    assert_close(np.asarray(out), want, dtype, msg=what)
    if direction == "fwd":  # the maximum itself, bit for bit (NaN included)
        assert np.array_equal(np.asarray(out), want.astype(dtype), equal_nan=True), what


# ------------------------------------------------------------------ cross-entropy
def compute_dtype(dtype):
    return COMPUTE[np.dtype(dtype)]


def xent_logits(shape, axis, dtype, seed):
    """Normal logits; rows (along ``axis``, in C order of the others) 1: a NaN, 2: +inf,
    3: all -inf, 4: -inf at odd classes, 5: +-BIG, 8: a NaN again (an ignored row for index targets)."""
    rng = np.random.default_rng(seed)
    flat = np.moveaxis(rng.standard_normal(shape) * 3, axis, -1)
    lead = flat.shape[:-1]
    flat = flat.reshape(-1, shape[axis]).copy()
    n, big = flat.shape[1], BIG[dtype]
    specials = {1: np.nan, 2: np.inf, 8: np.nan}
    for r, v in specials.items():
        if r < flat.shape[0]:
            flat[r, (r * 7) % n] = v
    if flat.shape[0] > 5:
        flat[3] = -np.inf
        flat[4, 1::2] = -np.inf
        flat[5] = np.resize([big, -big, big / 2, 0.0], n)
    return np.moveaxis(flat.reshape(lead + (n,)), -1, axis)


def xent_targets(kind, z, axis, ignore, seed, ttype):
    rng = np.random.default_rng(seed)
    n = z.shape[axis]
    rows_shape = z.shape[:axis] + z.shape[axis + 1:]
    if kind == "index":
        t = rng.integers(0, n, rows_shape)
        tf = t.reshape(-1)
        tf[::4] = ignore  # ignored rows, row 8 (NaN logits) among them
        if tf.size > 4:
            tf[4] = min(1, n - 1)  # the row with -inf at odd classes: target on a -inf logit
        return t
    p = rng.random(z.shape)
    p[p < 0.3] = 0.0  # zero targets (on -inf logits too): no term
    pm = np.moveaxis(p, axis, -1)
    pm /= np.maximum(pm.sum(-1, keepdims=True), 1e-300)
    with np.errstate(all="ignore"):
        return p.astype(ttype)


def class_weights(n, dtype, seed):
    """Positive class weights of the compute type, every fifth 0 (its terms drop out)."""
    w = np.random.default_rng(seed + 1000).uniform(0.25, 2.0, n)
    w[::5] = 0.0
    return w.astype(compute_dtype(dtype))


def counted(rig, t, n, ignore, w):
    """check_targets' (count, denominator), checked against the targets."""
    count, denom = rig.api.check_targets(rig.ctx, "test", H.device(t), n, ignore, None if w is None else H.place(w))
    valid = t != ignore
    assert count == np.count_nonzero(valid)
    want = float(count) if w is None else float(np.sum(w.astype(np.float64)[t[valid]]))
    assert denom == pytest.approx(want, rel=1e-12, abs=0.0)
    return count, denom


def run_xent(rig, kind, dtype, z, axis, *, ttype=None, eps=0.0, reduction="mean", ignore=-100, layout="aligned",
             tlayout=None, want_grad=True, weighted=False, z_loss=0.0, softcap=None, want_lse=False, seed=0):
    """One call of the backend's cross_entropy on host kernels (the denominator of a
    mean from its check_targets), against the reference."""
    lin, _ = LAYOUTS[layout]
    what = (f"cross_entropy {kind} {dtype} {z.shape} axis={axis} eps={eps} {reduction} {layout} "
            f"targets={ttype or 'int64'} grad={want_grad} weighted={weighted} z_loss={z_loss} softcap={softcap} "
            f"lse={want_lse}")
    with np.errstate(all="ignore"):
        zq = z.astype(dtype)
    n = z.shape[axis]
    t = xent_targets(kind, zq, axis, ignore, seed, ttype)
    w = class_weights(n, dtype, seed) if weighted else None
    zin = H.place(zq, **lin)
    tin = t if kind == "index" else H.place(t, **LAYOUTS[tlayout or layout][0])
    kw = dict(axis=axis, ignore_index=ignore, label_smoothing=eps, weight=w, z_loss=z_loss, softcap=softcap)
    # the gradient of the sum of row losses, times scale: the backend's contract (a mean over a
    # zero denominator has scale 0, where the reference's mean gradient is NaN)
    loss_ref, grad_ref, lse_ref = R.cross_entropy(zq, t, reduction="none", return_lse=True, **kw)
    denom = counted(rig, t, n, ignore, w)[1] if kind == "index" else loss_ref.size
    scale = (1.0 / denom if denom else 0.0) if reduction == "mean" else 1.0
    with annotated(what):
        loss, grad, lse = rig.api.cross_entropy(rig.ctx, zin, tin, axis, kind == "index", ignore, eps,
                                                None if w is None else H.place(w), z_loss, softcap, scale, want_grad,
                                                want_lse)
    check_written(loss, what + " loss")
    assert loss.dtype == compute_dtype(dtype) and loss.shape == loss_ref.shape, what
    # computed in the compute type: the logits' tolerance
    assert_close(np.asarray(loss), loss_ref, dtype, msg=what + " loss")
    if want_lse:
        check_written(lse, what + " lse")
        assert lse.dtype == compute_dtype(dtype) and lse.shape == lse_ref.shape, what
        assert_close(np.asarray(lse), lse_ref, dtype, msg=what + " lse")
    else:
        assert lse is None
    if want_grad:
        check_written(grad, what + " grad")
        assert grad.dtype == np.dtype(dtype) and grad.shape == z.shape and grad.flags.c_contiguous, what
        assert_close(np.asarray(grad), grad_ref * scale, dtype, msg=what + " grad")
    else:
        assert grad is None
    for expr, *_, args in rig.launches:  # placeholders (lse, gradient) are never written
        for k, wanted in ((5, want_lse), (6, want_grad)):  # after z, target, mask, weight, loss
            if not wanted:
                assert H.unwritten(args[k]).shape[0] == args[k].size, f"{what}: {expr} wrote argument {k}"


def _xent_cases(dtype, kind):
    """(shape, axis, layout, options of run_xent)"""
    own = np.dtype(dtype)
    tts = [None] if kind == "index" else [own.type] + ([np.float32] if compute_dtype(dtype) != own else [])
    cases = []
    k = 0
    for shape, axis in (((9, 1), 1), ((13, 7), 1), ((6, 33), 1), ((3, 1025), 1), ((2, 3000), 1), ((33, 5), 0),
                        ((7, 4, 6), 1)):
        for layout in ("aligned", "misaligned", "F", "flip"):
            cases.append((shape, axis, layout, dict(
                eps=(0.0, 0.1)[k % 2],
                reduction=("mean", "sum", "none")[k % 3],
                ttype=tts[k % len(tts)],
                tlayout=("aligned", "misaligned", "flip")[k % 3],
                want_grad=k % 5 != 4,
                weighted=k % 4 >= 2,
                z_loss=(0.0, 1e-3)[k // 3 % 2],
                softcap=(None, None, 4.0)[k // 2 % 3],
                want_lse=k % 7 < 4,
            )))
            k += 1
    return cases


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("dtype", WITH_BF16)
@pytest.mark.parametrize("team", TEAMS)
def test_cross_entropy(module, team, dtype, kind):
    for i, (shape, axis, layout, options) in enumerate(_xent_cases(dtype, kind)):
        z = xent_logits(shape, axis, dtype, i)
        rig = Rig(module, team=team, grid_cap=2, block=64 if team == "block" and i % 2 else None)
        run_xent(rig, kind, dtype, z, axis, layout=layout, seed=i, **options)
        assert rig.launches and all(f", {kernels.TEAMS.index(team)}>" in e for e, *_ in rig.launches), rig.launches
    # every row ignored (mean: scale 0), and an ignore_index inside the class range
    z = xent_logits((6, 9), 1, dtype, 50)
    if kind == "index":
        run_xent(Rig(module, team=team), kind, dtype, z, 1, ignore=3, reduction="sum", weighted=True, want_lse=True,
                 seed=50)
        rig = Rig(module, team=team)
        t = np.full(6, -100)
        loss, grad, lse = rig.api.cross_entropy(rig.ctx, H.place(z.astype(dtype)), t, 1, True, -100, 0.1, None, 1e-3,
                                                2.0, 0.0, True, True)
        assert (np.asarray(loss) == 0).all() and (np.asarray(grad) == 0).all()
        assert_close(np.asarray(lse), R.cross_entropy(z.astype(dtype), t, softcap=2.0, return_lse=True)[2], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_planned_team_any_axis(module, dtype):
    seen = set()
    for shape, axis in (((40, 5, 8), 0), ((4, 50, 9), 1), ((3, 4, 1100), 2), ((2, 9, 40), 2)):
        for kind in ("index", "prob"):
            rig = Rig(module)
            run_xent(rig, kind, dtype, xent_logits(shape, axis, dtype, 7), axis, eps=0.05, ttype=np.dtype(dtype).type,
                     layout="F" if axis == 1 else "aligned", weighted=True, z_loss=1e-2, softcap=10.0, want_lse=True,
                     seed=3)
            seen |= {e.rsplit(",", 1)[1].strip(" >") for e, *_ in rig.launches}
    assert seen == {"0", "1", "2"}, seen


def test_cross_entropy_without_rows_or_classes(module):
    """No kernel: zero losses and lse (sums over no classes), an empty gradient."""
    for shape, axis, index in (((0, 5), 1, True), ((4, 0), 1, True), ((3, 0, 2), 1, False)):
        rig = Rig(module)
        rows_shape = shape[:axis] + shape[axis + 1:]
        t = np.full(rows_shape, -100) if index else H.place(np.zeros(shape))
        loss, grad, lse = rig.api.cross_entropy(rig.ctx, H.place(np.zeros(shape)), t, axis, index, -100, 0.0, None,
                                                0.0, None, 1.0, True, True)
        assert not rig.launches
        assert loss.shape == lse.shape == rows_shape and grad.shape == shape
        assert (np.asarray(loss) == 0).all() and (np.asarray(lse) == 0).all()


# ------------------------------------------------------------------ nll_loss
def log_probs(shape, axis, seed):
    """log-softmax of normal logits along ``axis``, with -inf entries and one NaN."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * 3
    z.reshape(-1)[::7] = -np.inf
    lp = R.log_softmax(z, axis=axis)
    lp.reshape(-1)[3] = np.nan
    return lp


@pytest.mark.parametrize("dtype", WITH_BF16)
def test_nll_loss(module, dtype):
    cases = [((9, 1), 1, "aligned"), ((13, 7), 1, "F"), ((6, 33), 1, "flip"), ((33, 5), 0, "misaligned"),
             ((7, 4, 6), 1, "step2"), ((5,), 0, "aligned")]
    for k, (shape, axis, layout) in enumerate(cases):
        weighted, want_grad, reduction = k % 2 == 1, k % 3 != 2, ("mean", "sum")[k // 2 % 2]
        what = f"nll_loss {dtype} {shape} axis={axis} {layout} weighted={weighted} grad={want_grad} {reduction}"
        lp = log_probs(shape, axis, k).astype(dtype)
        n = shape[axis]
        t = xent_targets("index", lp, axis, -100, k, None)
        w = class_weights(n, dtype, k) if weighted else None
        rig = Rig(module, grid_cap=2)
        denom = counted(rig, t, n, -100, w)[1]
        scale = (1.0 / denom if denom else 0.0) if reduction == "mean" else 1.0
        with annotated(what):
            loss, grad = rig.api.nll_loss(rig.ctx, H.place(lp, **LAYOUTS[layout][0]), t, axis, -100,
                                          None if w is None else H.place(w), scale, want_grad)
        loss_ref, grad_ref = R.nll_loss(lp, t, axis=axis, reduction="none", weight=w)
        check_written(loss, what)
        assert loss.dtype == compute_dtype(dtype) and loss.shape == loss_ref.shape, what
        assert_close(np.asarray(loss), loss_ref, dtype, msg=what + " loss")
        if want_grad:
            assert grad.dtype == np.dtype(dtype) and grad.shape == shape and grad.flags.c_contiguous, what
            assert_close(np.asarray(grad), grad_ref * scale, dtype, msg=what + " grad")
        else:
            assert grad is None
        assert [e for e, *_ in rig.launches] == [kernels.nll_name(dtype)]


# ------------------------------------------------------------------ activations on bfloat16
def test_activations_bfloat16(module, cache_dir):
    """The activation ElementwiseKernels on bfloat16 operands (any layout, broadcast
    slopes), against the reference: softplus with its scalar parameters, forward and
    backward, the forward also bit for bit the float32 kernel's result on the widened
    operands rounded once; PReLU's slope of x's dtype, its gradient and weight terms
    (in the compute type) and their channel sum; RReLU's training slopes (compute type)."""
    bf = "bfloat16"
    rig = Rig(module, cache_dir=cache_dir)
    api, ctx = rig.api, rig.ctx
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 9)) * 4
    x.reshape(-1)[:9] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 3.0, -3.0]
    xq = x.astype(bf)
    gq = rng.standard_normal(x.shape).astype(bf)
    xin, gin = H.place(xq, order="F"), H.place(gq, flip=True)

    def run(what, fn, *args, dtype=bf):
        out = H.place(np.zeros(x.shape), dtype, poison=True, misalign=True)
        with annotated(what):
            fn(ctx, *args, out)
        check_written(out, what)
        return np.asarray(out)

    act = ACTIVATIONS["softplus"]
    kw = {"beta": 2.0, "threshold": 5.0}
    f, d, params = act.kernels(act.bind("softplus", (), kw, xq.dtype))
    y = run("softplus", api.unary, f, xin, params)
    assert_close(y, R.forward("softplus", xq, **kw), bf, msg="softplus")
    y32 = run("softplus float32", api.unary, f, H.place(xq.astype(np.float32)), params, dtype=np.float32)
    same_bits_as_rounded(y, y32, "softplus")
    assert_close(run("softplus backward", api.scaled, d, gin, xin, params), R.backward("softplus", gq, xq, **kw), bf,
                 msg="softplus backward")

    w = rng.uniform(-1.0, 2.0, 9).astype(bf)
    slope = H.place(w.reshape(1, 9))
    assert_close(run("prelu", api.unary_slope, F.leaky_relu_fwd, xin, slope), R.prelu(xq, w), bf, msg="prelu")
    rgx, rgw = R.prelu_backward(gq, xq, w)
    assert_close(run("prelu grad", api.scaled_slope, F.leaky_relu_der, gin, xin, slope), rgx, bf, msg="prelu grad")
    terms = run("prelu weight terms", api.scaled_slope, F.leaky_relu_slope_der, gin, xin, slope, dtype=np.float32)
    with np.errstate(all="ignore"):
        want = np.where(xq.astype(np.float64) > 0, 0.0, gq.astype(np.float64) * xq.astype(np.float64))
    assert_close(terms, want, np.float32, msg="prelu weight terms")
    gw = api.channel_sum(ctx, H.device(terms), 1, w.dtype)
    assert gw.dtype == w.dtype and gw.shape == (9,)
    assert_close(np.asarray(gw), rgw, bf, msg="prelu weight grad")

    act = ACTIVATIONS["rrelu"]
    lower, upper = act.bind("rrelu", (0.1, 0.3), {}, xq.dtype)
    slopes = api.rrelu_slopes(ctx, x.shape, F.mix64(7), lower, upper, xq.dtype)
    assert slopes.dtype == np.float32
    assert_close(run("rrelu", api.unary_slope, F.leaky_relu_fwd, xin, slopes),
                 R.rrelu(xq, 0.1, 0.3, training=True, seed=7), bf, msg="rrelu training")


# ------------------------------------------------------------------ binary cross-entropy
def bce_inputs(logits, shape, dtype, seed):
    """Logits (normal, with NaN, +-inf, +-BIG) or probabilities (uniform, with 0, 1,
    values outside [0, 1] and NaN), and targets in [0, 1] with 0s and 1s."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if logits:
        x = rng.standard_normal(size) * 4
        specials = [np.nan, np.inf, -np.inf, BIG[dtype], -BIG[dtype], 0.0]
    else:
        x = rng.random(size)
        specials = [0.0, 1.0, np.nan, -0.25, 1.5, 1e-30]
    x[: min(size, len(specials))] = specials[:size]
    t = rng.random(size)
    t[1::5], t[2::5] = 0.0, 1.0
    return x.reshape(shape), t.reshape(shape)


def bce_weights(shape, seed, zeros):
    """Weights of ``shape`` (axes of 1 broadcast), every third 0 when ``zeros``."""
    w = np.random.default_rng(seed + 99).uniform(0.25, 2.5, shape)
    if zeros:
        w.reshape(-1)[::3] = 0.0
    return w


# (logits, shape, weight shape, pos_weight shape, want_grad, z layout, target layout, target dtype, weights' dtype)
BCE_CASES = [
    (True, (7, 9), (1, 9), (7, 1), True, "F", "flip", None, None),
    (True, (3, 4, 5), None, None, False, "step2", "aligned", "float64", None),
    (True, (), (), (), True, "aligned", "aligned", None, "float64"),
    (False, (6, 11), (6, 1), None, True, "flip", "misaligned", None, None),
    (False, (40,), None, None, True, "misaligned", "F", "float32", None),
]


@pytest.mark.parametrize("dtype", WITH_BF16)
def test_binary_cross_entropy(module, cache_dir, dtype):
    """The backend's ElementwiseKernel on host kernels: broadcast weights, any strides,
    the gradient in z's dtype and the losses in the compute type from one kernel."""
    for k, (logits, shape, wshape, pwshape, want_grad, layout, tlayout, tdtype, wdtype) in enumerate(BCE_CASES):
        if dtype != "float32" and wshape is None:
            continue  # the unweighted variants: float32 only (each variant and dtype is a host build)
        what = f"bce logits={logits} {dtype} {shape} w={wshape} pw={pwshape} grad={want_grad} {layout}"
        x, t = bce_inputs(logits, shape, dtype, k)
        with np.errstate(all="ignore"):
            xq, tq = x.astype(dtype), t.astype(tdtype or dtype)
        # a zero weight only for probabilities: at z = +-inf formulas.py's loss is 0 there, the reference's NaN
        w = None if wshape is None else bce_weights(wshape, k, not logits).astype(wdtype or dtype)
        pw = None if pwshape is None else bce_weights(pwshape, k + 1, False).astype(wdtype or dtype)
        scale = 1.0 / xq.size if k % 2 else 1.0
        rig = Rig(module, cache_dir=cache_dir)
        args = [H.place(xq, **LAYOUTS[layout][0]), H.place(tq, **LAYOUTS[tlayout][0])]
        args += [None if a is None else H.place(a) for a in (w, pw)]
        with annotated(what):
            elems, grad = rig.api.binary_cross_entropy(rig.ctx, *args, logits, scale, want_grad)
        if logits:
            want, want_g = R.binary_cross_entropy_with_logits(xq, tq, w, pw, reduction="none")
        else:
            want, want_g = R.binary_cross_entropy(xq, tq, w, reduction="none")
        check_written(elems, what)
        assert elems.dtype == compute_dtype(dtype) and elems.shape == shape, what
        assert_close(np.asarray(elems), want, dtype, msg=what + " loss")
        if want_grad:
            check_written(grad, what + " grad")
            assert grad.dtype == np.dtype(dtype) and grad.shape == shape and grad.flags.c_contiguous, what
            assert_close(np.asarray(grad), want_g * scale, dtype, msg=what + " grad")
        else:
            assert grad is None


def test_total(module):
    rig = Rig(module)
    a = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    for x, scale, dtype in ((a, 0.25, np.float16), (a[::2, ::-1], 1.0, np.float64), (np.zeros((0, 3)), 2.0, np.float32),
                            (np.float64(3.5), 0.5, np.float32), (np.array([1.0, np.nan]), 1.0, np.float64)):
        got = rig.api.total(rig.ctx, H.device(x), scale, dtype)
        assert got.shape == () and got.dtype == dtype
        assert_close(np.asarray(got), np.sum(np.asarray(x, np.float64)) * scale, dtype)


def test_check_targets(module):
    rig = Rig(module)
    t = np.array([[0, 3, -100], [2, 2, 1]])
    w = H.place(np.array([0.5, 1.0, 2.0, 4.0], np.float32))
    assert rig.api.check_targets(rig.ctx, "f", H.device(t), 4, -100, None) == (5, 5.0)
    assert rig.api.check_targets(rig.ctx, "f", H.device(t), 4, -100, w) == (5, 9.5)
    assert rig.api.check_targets(rig.ctx, "f", H.device(np.array([0, 3, 2, 1])), 4, 2, w) == (3, 5.5)
    assert rig.api.check_targets(rig.ctx, "f", H.device(np.full(3, -1)), 0, -1, w[:0]) == (0, 0.0)
    with pytest.raises(ValueError, match="f: target index 3 is out of range; expected 0 <= target < 3"):
        rig.api.check_targets(rig.ctx, "f", H.device(t), 3, -100, w[:3])


def test_any_negative(module):
    rig = Rig(module)
    assert rig.api.any_negative(rig.ctx, H.device(np.array([[1.0, 2.0], [-0.5, 3.0]])[:, ::-1]))
    assert not rig.api.any_negative(rig.ctx, H.device(np.array([0.0, -0.0, np.nan, np.inf], np.float16)))
    assert not rig.api.any_negative(rig.ctx, H.device(np.zeros((0, 2))))
