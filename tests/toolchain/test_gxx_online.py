"""The online normalizer of the CuPy softmax kernels (kernels/online.cuh),
compiled for the host with g++ and driven as the kernels drive it: lane l of
a team takes elements l, l + lanes, ...; lanes merge by xor butterflies within
a warp (warp shuffles) and warp results fold in order (the block's shared
memory). Every team shape must give the reference softmax / log-softmax,
including rows with NaN, +-inf and all -inf, wherever those land."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import reference as R
from tolerances import assert_close

from gpu_act import kernels

GXX = shutil.which("g++")

HARNESS = r"""
#include <vector>
template <typename C>
static void rows(const C* x, long n, long lanes, long warp, C inv_t, int log_, C* y) {
    typedef ga::MaxSum<C> S;
    std::vector<S> st(lanes, S::empty());
    for (long j = 0; j < n; ++j) st[j % lanes].add(x[j], inv_t);
    for (long base = 0; base < lanes; base += warp) {
        for (long o = warp / 2; o > 0; o /= 2) {
            std::vector<S> nx(warp);
            for (long l = 0; l < warp; ++l) nx[l] = S::merge(st[base + l], st[base + (l ^ o)], inv_t);
            for (long l = 0; l < warp; ++l) st[base + l] = nx[l];
        }
    }
    S w = st[0];
    for (long k = warp; k < lanes; k += warp) w = S::merge(w, st[k], inv_t);
    w = w.finish();
    const C ls = log(w.s), inv_s = C(1) / w.s;
    for (long j = 0; j < n; ++j)
        y[j] = log_ ? ga::softmax_out<true>(x[j], w.m, ls, inv_s, inv_t) : ga::softmax_out<false>(x[j], w.m, ls, inv_s, inv_t);
}
extern "C" void rows_float(const float* x, long n, long lanes, long warp, float t, int lg, float* y) { rows(x, n, lanes, warp, t, lg, y); }
extern "C" void rows_double(const double* x, long n, long lanes, long warp, double t, int lg, double* y) { rows(x, n, lanes, warp, t, lg, y); }
"""

# (lanes, warp): one thread, one warp, blocks of 4 and 8 warps
TEAMS = [(1, 1), (32, 32), (128, 32), (256, 32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ is not on PATH: the host build of online.cuh needs a C++ compiler")
    d = tmp_path_factory.mktemp("online")
    src, so = d / "online.cpp", d / "online.so"
    src.write_text(kernels.source("online.cuh") + HARNESS)
    r = subprocess.run([GXX, "-O2", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(so), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    return ctypes.CDLL(str(so))


def _rows(lib, x, lanes, warp, temperature, log):
    c, ct = ("float", ctypes.c_float) if x.dtype == np.float32 else ("double", ctypes.c_double)
    y = np.empty_like(x)
    p = ctypes.POINTER(ct)
    getattr(lib, f"rows_{c}")(x.ctypes.data_as(p), ctypes.c_long(x.size), ctypes.c_long(lanes), ctypes.c_long(warp),
                              ct(1.0 / temperature), ctypes.c_int(log), y.ctypes.data_as(p))
    return y


def _cases():
    inf, nan = np.inf, np.nan
    rng = np.random.default_rng(1)
    rows = [[0.0, 1.0, 2.0, -inf], [nan, 1.0, 2.0, 3.0], [1.0, 2.0, inf, 3.0], [-inf] * 5, [-inf, -inf, 5.0, -inf],
            [1e4, -1e4, 0.0, 1e4], [7.0], [-inf], [inf, inf], [3.0, 3.0, 3.0]]
    for n in (33, 300, 1000):
        r = rng.standard_normal(n) * 4
        r[rng.integers(0, n, n // 10)] = -inf
        rows.append(list(r))
        late = list(rng.standard_normal(n))
        late[-1] = nan if n == 33 else (inf if n == 300 else 1e3)  # the special value in the last lane
        rows.append(late)
    return rows


@pytest.mark.parametrize("temperature", [1.0, 0.7, 3.0])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lanes,warp", TEAMS, ids=[f"lanes{a}" for a, _ in TEAMS])
def test_online_normalizer_matches_reference(lib, lanes, warp, dtype, log, temperature):
    ref = R.log_softmax if log else R.softmax
    for row in _cases():
        x = np.array(row, dtype)
        assert_close(_rows(lib, x, lanes, warp, temperature, log), ref(x, temperature=temperature), dtype,
                     msg=f"row {row[:6]}... lanes={lanes}")
