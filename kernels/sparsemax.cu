// Sparsemax and its backward pass, along any axis.
//
// Forward (Martins & Astudillo 2016), per row: y_j = max(d_j - tau, 0) with
// d_j = x_j - max x (relative to the row max: no finite input overflows) and
// tau the threshold where f(tau) = sum_j max(d_j - tau, 0) = 1.
// Backward from y and g: dx_j = g_j - (sum_{y_k > 0} g_k) / #{y_k > 0} on the
// support {y_j > 0}, 0 off it.
//
// tau without a sort (a sort shuffles the whole row through memory; a
// reduction pass is what a team does best): f is decreasing with f(-1) >= 1
// and f(0) = 0. Bisection on [-1, 0) keeps f(lo) >= 1 > f(hi), one pass over
// the row per step for (f, #{d > t}) at the midpoint, reduced over the team;
// it stops when no element lies in (lo, hi] (equal counts: f is linear there,
// the support known), at float resolution, or after BISECTIONS steps. Then
// the exact fix: tau = t + (f(t) - 1) / #{d > t} = (sum_{d > t} d - 1) /
// #{d > t} from t = lo, the root of f's linear piece. Such a tau never exceeds
// the true one whatever t was, so {d > tau} holds the whole support; it is
// re-checked at tau and the step repeated (at most FIXES times) while the
// support changes: the final tau is exact. Every lane holds the same reduced
// (f, count), so the team takes the same branches (its barriers stay uniform).
//
// Special rows: a NaN anywhere, or a row of only -inf, makes f NaN and the row
// NaN; -inf entries get 0; +inf entries share the mass equally (d = 0 for them,
// -inf for the rest). Backward: a NaN anywhere in g or y makes the row NaN.
//
// A block team given dynamic shared memory for the row (`cached`, n compute
// values: the launcher decides) keeps it there for the passes, and a warp team
// computing in float keeps its row (at most 32 * WARP_HELD elements) in
// registers; otherwise each pass streams the row from global memory. f, the
// counts and the backward's sums accumulate in double; tau is rounded once to
// the compute type. The row max lets a NaN stick (rows.cuh's Max): f is NaN
// for such a row either way.
#include "rows.cuh"

namespace ga {
// the helpers of this file, apart from the shared ones of rows.cuh
namespace simplex {

enum { BISECTIONS = 32, FIXES = 16 };

// a sum over a row and the count of its terms, reduced together
struct SumCount {
    double s, c;
};
__device__ __forceinline__ SumCount shfl(SumCount v, int o) { return SumCount{ga::shfl(v.s, o), ga::shfl(v.c, o)}; }
struct AddSumCount {
    __device__ __forceinline__ SumCount operator()(SumCount a, SumCount b) const {
        return SumCount{a.s + b.s, a.c + b.c};
    }
};

// x_j - max x; with max x = +inf: 0 for the +inf entries, -inf for the others
template <typename C> __device__ __forceinline__ C relative(C v, C m) {
    return v == C(1) / C(0) ? C(0) : v - m;
}

// max(d - tau, 0), NaN where either is
template <typename C> __device__ __forceinline__ C projected(C d, C tau) {
    const C e = d - tau;
    return e <= C(0) ? C(0) : e;
}

// one d - t = e into (f, count) where it is above 0 or NaN
template <typename C> __device__ __forceinline__ void tally(SumCount& a, C e) {
    if (!(e <= C(0))) {
        a.s += double(e);
        a.c += 1.0;
    }
}

// (f(t), #{d > t}) over the row (from `cache` when given, else x), as every lane
// sees it; "not e <= 0" so that a NaN counts and makes f NaN
template <typename T, typename C, class Tm>
__device__ __forceinline__ SumCount above(const Tm& team, i64 n, const T* x, i64 sx, const C* cache, C m, C t) {
    SumCount a{0.0, 0.0};
    auto add = [&](C v) { tally(a, relative(v, m) - t); };
    if (cache) {
        for (i64 j = team.lane(); j < n; j += team.size()) add(cache[j]);
    } else {
        each(team, n, x, sx, [&](i64, C v) { add(v); });
    }
    return team.reduce(a, AddSumCount());
}

// (f(t), #{d > t}) over a warp lane's elements held in registers (WARP_HELD of
// them, -inf past the row's end: never above t; the slots past every lane's
// end, 32 q >= n, skipped), as every lane sees it
template <typename C, class Tm>
__device__ __forceinline__ SumCount above_held(const Tm& team, i64 n, const C (&held)[WARP_HELD], C m, C t) {
    SumCount a{0.0, 0.0};
#pragma unroll
    for (int q = 0; q < WARP_HELD; ++q)
        if (32 * q < n) tally(a, relative(held[q], m) - t);
    return team.reduce(a, AddSumCount());
}

// tau of the row (max m) from above(t) = (f(t), #{d > t}); NaN for a row whose f is NaN
template <typename C, class Above>
__device__ C threshold(Above above) {
    C lo = C(-1), hi = C(0);
    SumCount at_lo = above(lo);
    if (at_lo.s != at_lo.s) return C(at_lo.s);
    double c_hi = 0.0;
    for (int k = 0; k < BISECTIONS && at_lo.c != c_hi; ++k) {
        const C mid = (lo + hi) * C(0.5);
        if (mid == lo || mid == hi) break;
        const SumCount a = above(mid);
        if (a.s >= 1.0) {
            lo = mid;
            at_lo = a;
        } else {
            hi = mid;
            c_hi = a.c;
        }
    }
    // the exact fix from the support above lo, re-checked until it stays
    C t = lo, tau = lo;
    for (int k = 0; k < FIXES; ++k) {
        tau = C(double(t) + (at_lo.s - 1.0) / at_lo.c);
        const SumCount a = above(tau);
        if (a.c == at_lo.c) break;
        t = tau;
        at_lo = a;
    }
    return tau;
}

}  // namespace simplex

template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    sparsemax_fwd(const T* x, T* y, i64 rows, i64 Q, i64 n, i64 xP, i64 xQ, i64 xn, i64 yP, i64 yQ, i64 yn,
                  int cached) {
    typedef typename Acc<T>::type C;
    extern __shared__ __align__(16) unsigned char sparsemax_row[];
    // the block's one row in shared memory: for block teams only (a warp team's rows would share it)
    C* cache = TEAM == TEAM_BLOCK && cached ? reinterpret_cast<C*>(sparsemax_row) : nullptr;
    const Team<TEAM> team;
    if constexpr (TEAM == TEAM_WARP && sizeof(C) == 4) {
        // rows of up to 32 * WARP_HELD: each lane keeps its elements j = lane + 32 q
        // in registers (unrolled loops), x read once, every bisection step over them
        if (n <= 32 * WARP_HELD) {
            for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
                const i64 i = r / Q, k = r - i * Q;
                const T* xr = x + i * xP + k * xQ;
                T* yr = y + i * yP + k * yQ;
                C held[WARP_HELD];
                C m = -C(1) / C(0);
#pragma unroll
                for (int q = 0; q < WARP_HELD; ++q) {
                    const i64 j = team.lane() + 32 * q;
                    held[q] = j < n ? load(xr + j * xn) : -C(1) / C(0);
                    m = Max<C>()(m, held[q]);
                }
                m = team.reduce(m, Max<C>());
                const C tau = simplex::threshold<C>([&](C t) { return simplex::above_held(team, n, held, m, t); });
#pragma unroll
                for (int q = 0; q < WARP_HELD; ++q) {
                    const i64 j = team.lane() + 32 * q;
                    if (j < n) store(yr + j * yn, simplex::projected(simplex::relative(held[q], m), tau));
                }
            }
            return;
        }
    }
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* xr = x + i * xP + k * xQ;
        T* yr = y + i * yP + k * yQ;
        C m = -C(1) / C(0);
        each(team, n, xr, xn, [&](i64 j, C v) {
            m = Max<C>()(m, v);
            if (cache) cache[j] = v;
        });
        // (the reduction's barriers also publish the cache to the whole block)
        m = team.reduce(m, Max<C>());
        const C tau = simplex::threshold<C>([&](C t) { return simplex::above(team, n, xr, xn, cache, m, t); });
        const auto y_of = [&](C v) -> C { return simplex::projected(simplex::relative(v, m), tau); };
        if (cache) {
            // from the cached row, not x again; the block's next row overwrites the cache
            write(team, n, yr, yn, [&](i64 j) -> C { return y_of(cache[j]); });
            __syncthreads();
        } else {
            map1(team, n, xr, xn, yr, yn, [&](i64, C v) -> C { return y_of(v); });
        }
    }
}

template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    sparsemax_bwd(const T* g, const T* y, T* o, i64 rows, i64 Q, i64 n, i64 gP, i64 gQ, i64 gn, i64 yP, i64 yQ,
                  i64 yn, i64 oP, i64 oQ, i64 on) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* gr = g + i * gP + k * gQ;
        const T* yr = y + i * yP + k * yQ;
        T* orow = o + i * oP + k * oQ;
        // the sum of g over the support and its size; a NaN in g or y makes the
        // count NaN, and so every output of the row (0 * count off the support)
        simplex::SumCount a{0.0, 0.0};
        each2(team, n, gr, gn, yr, yn, [&](i64, C gv, C yv) {
            if (gv != gv || yv != yv) {
                a.c = C(0) / C(0);
            } else if (yv > C(0)) {
                a.s += double(gv);
                a.c += 1.0;
            }
        });
        a = team.reduce(a, simplex::AddSumCount());
        const C zero = C(a.c * 0.0);
        const C mean = a.c != 0.0 ? C(a.s / a.c) : zero;
        map2(team, n, gr, gn, yr, yn, orow, on, [&](i64, C gv, C yv) -> C { return yv > C(0) ? gv - mean : zero; });
    }
}

}  // namespace ga
