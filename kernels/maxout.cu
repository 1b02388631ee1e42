// Maxout along any axis: the max of each run of `pool` consecutive entries,
// and its backward, which routes each gradient to the first maximum of its
// group (a NaN counts as the maximum, as argmax). One thread per group; the
// thread order follows the faster of the two directions in memory (groups
// along a contiguous axis, or rows side by side for a strided axis).
#include "rows.cuh"

namespace ga {

// index in [0, pool) of the first maximum of p[0], p[s], ..., p[(pool-1)s]
template <typename T> __device__ __forceinline__ i64 first_max(const T* p, i64 s, i64 pool) {
    i64 best = 0;
    auto m = load(p);
    for (i64 q = 1; q < pool; ++q) {
        const auto v = load(p + q * s);
        if (m == m && (v > m || v != v)) {
            m = v;
            best = q;
        }
    }
    return best;
}

// (row, group) of thread index `idx`
__device__ __forceinline__ void locate(i64 idx, i64 rows, i64 groups, int rows_fast, i64& r, i64& grp) {
    if (rows_fast) {
        grp = idx / rows;
        r = idx - grp * rows;
    } else {
        r = idx / groups;
        grp = idx - r * groups;
    }
}

template <typename T>
__global__ void GA_BOUNDS(TEAM_THREAD, T)
    maxout_fwd(const T* x, T* y, i64 rows, i64 Q, i64 groups, i64 pool, i64 xP, i64 xQ, i64 xn, i64 yP, i64 yQ, i64 yn,
               int rows_fast) {
    const i64 total = rows * groups;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (i64)gridDim.x * blockDim.x) {
        i64 r, grp;
        locate(idx, rows, groups, rows_fast, r, grp);
        const i64 i = r / Q, k = r - i * Q;
        const T* xg = x + i * xP + k * xQ + grp * pool * xn;
        y[i * yP + k * yQ + grp * yn] = xg[first_max(xg, xn, pool) * xn];
    }
}

template <typename T>
__global__ void GA_BOUNDS(TEAM_THREAD, T)
    maxout_bwd(const T* g, const T* x, T* o, i64 rows, i64 Q, i64 groups, i64 pool, i64 gP, i64 gQ, i64 gn, i64 xP,
               i64 xQ, i64 xn, i64 oP, i64 oQ, i64 on, int rows_fast) {
    const i64 total = rows * groups;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (i64)gridDim.x * blockDim.x) {
        i64 r, grp;
        locate(idx, rows, groups, rows_fast, r, grp);
        const i64 i = r / Q, k = r - i * Q;
        const T* xg = x + i * xP + k * xQ + grp * pool * xn;
        const i64 best = first_max(xg, xn, pool);
        const T gv = g[i * gP + k * gQ + grp * gn];
        T* og = o + i * oP + k * oQ + grp * pool * on;
        for (i64 q = 0; q < pool; ++q) og[q * on] = q == best ? gv : T(0.0f);
    }
}

}  // namespace ga
