// Softmax, log-softmax and logsumexp, forward and backward, along any axis.
//
// Forward, per row:  m = max x,  d_j = (x_j - m)/T,  s = sum_j e^{d_j}
//   softmax: y_j = e^{d_j} / s          log_softmax: y_j = d_j - log s
//   logsumexp: m + T log s, one value per row
// (m, s) come from one online pass; a row with NaN or +inf, or of all -inf,
// is all NaN; -inf entries of a finite row give 0 (softmax) / -inf (log);
// logsumexp gives such a row its limit (NaN for a NaN, else +inf or -inf).
// softmin is softmax at a negative temperature: the forward negates every
// load of x by the sign of 1/T (-0.0's too, where 1/T rounds to 0) and
// scales by |1/T|; the backward scales by the signed 1/T.
// Backward from the forward's output y and incoming gradient g:
//   softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
//   log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
//   logsumexp (r its result, g one value per row): dx_j = g e^{(x_j - r)/T},
//   NaN along a row whose r is not finite (its softmax is NaN)
// With a mask (bool, its own strides mP, mQ, mn; `masked` set) only the
// unmasked entries take part in (m, s) and the backward's sums; masked entries
// get 0 (softmax, gradients) or -inf (log_softmax) whatever the row holds, so a
// row with no unmasked entry is all 0 (-inf), its logsumexp -inf.
// T is float16, bfloat16, float or double. The forward's (m, s) run in float
// (float16, bfloat16) or T; the backward's row sums in double (g - sum(g y)
// cancels where y is near one-hot), rounded once to the compute type.
#include "rows.cuh"

namespace ga {

// A block team given dynamic shared memory for the row (`cached`, n compute
// values) keeps the row there and writes y from it: x is read once. A warp
// team computing in float keeps each lane's elements j = lane + 32 q in
// registers (`held`: loops of constant length, unrolled) where the row has at
// most 32 * WARP_HELD elements (every row the launcher gives it): x read once,
// a max pass, then a sum pass (masked entries and those past the row's end
// held as -inf, whose e^{d} is 0); the mask is read again only for a row whose
// sum is NaN, whose masked entries still get 0 (-inf).
template <typename T, int TEAM, bool LOG>
__global__ void GA_BOUNDS(TEAM, T)
    softmax_fwd(const T* x, const bool* mask, T* y, i64 rows, i64 Q, i64 n, i64 xP, i64 xQ, i64 xn, i64 mP, i64 mQ,
                i64 mn, i64 yP, i64 yQ, i64 yn, typename Acc<T>::type inv_t, int masked, int cached) {
    typedef typename Acc<T>::type C;
    extern __shared__ __align__(16) unsigned char softmax_row[];
    // the block's one row in shared memory: for block teams only (a warp team's rows would share it)
    C* cache = TEAM == TEAM_BLOCK && cached ? reinterpret_cast<C*>(softmax_row) : nullptr;
    const Team<TEAM> team;
    const C sg = copysign(C(1), inv_t), a = fabs(inv_t);  // sg = -1: softmin
    const C off = LOG ? -C(1) / C(0) : C(0);               // a masked entry's output
    if constexpr (TEAM == TEAM_WARP && sizeof(C) == 4) {
        if (n <= 32 * WARP_HELD) {
            for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
                const i64 i = r / Q, k = r - i * Q;
                const T* xr = x + i * xP + k * xQ;
                T* yr = y + i * yP + k * yQ;
                const RowMask live{mask + i * mP + k * mQ, mn, masked};
                C held[WARP_HELD];
                C m = -C(1) / C(0);
#pragma unroll
                for (int q = 0; q < WARP_HELD; ++q) {
                    const i64 j = team.lane() + 32 * q;
                    held[q] = j < n && live(j) ? sg * load(xr + j * xn) : -C(1) / C(0);
                    m = Max<C>()(m, held[q]);
                }
                m = team.reduce(m, Max<C>());
                C s = C(0);
#pragma unroll
                for (int q = 0; q < WARP_HELD; ++q)
                    if (32 * q < n) s += expt(held[q] - m, a);  // slots past every lane's end hold -inf: e^{d} = 0
                s = MaxSum<C>{m, team.reduce(s, Sum<C>())}.finish().s;
                const C ls = log(s), inv_s = C(1) / s;
                // a masked entry's -inf gives off by itself, unless the row is NaN
#pragma unroll
                for (int q = 0; q < WARP_HELD; ++q) {
                    const i64 j = team.lane() + 32 * q;
                    if (j < n)
                        store(yr + j * yn, s != s && !live(j) ? off : softmax_out<LOG>(held[q], m, ls, inv_s, a));
                }
            }
            return;
        }
    }
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* xr = x + i * xP + k * xQ;
        T* yr = y + i * yP + k * yQ;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        MaxSum<C> ms = MaxSum<C>::empty();
        each(team, n, xr, xn, [&](i64 j, C v) {
            if (live(j)) ms.add(sg * v, a);
            if (cache) cache[j] = sg * v;
        });
        // (the reduction's barriers also publish the cache to the whole block)
        ms = team.reduce(ms, Merge<C>{a}).finish();
        const C m = ms.m, ls = log(ms.s), inv_s = C(1) / ms.s;
        if (cache) {
            // from the cached row, not x again; the block's next row overwrites the cache
            write(team, n, yr, yn, [&](i64 j) -> C {
                return live(j) ? softmax_out<LOG>(cache[j], m, ls, inv_s, a) : off;
            });
            __syncthreads();
        } else {
            map1(team, n, xr, xn, yr, yn, [&](i64 j, C v) -> C {
                return live(j) ? softmax_out<LOG>(sg * v, m, ls, inv_s, a) : off;
            });
        }
    }
}

template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    logsumexp_fwd(const T* x, const bool* mask, T* y, i64 rows, i64 Q, i64 n, i64 xP, i64 xQ, i64 xn, i64 mP,
                  i64 mQ, i64 mn, i64 yP, i64 yQ, typename Acc<T>::type inv_t, typename Acc<T>::type t, int masked) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        MaxSum<C> ms = MaxSum<C>::empty();
        each(team, n, x + i * xP + k * xQ, xn, [&](i64 j, C v) {
            if (live(j)) ms.add(v, inv_t);
        });
        ms = team.reduce(ms, Merge<C>{inv_t});
        if (team.lane() == 0) store(y + i * yP + k * yQ, logsumexp_of(ms, t));
    }
}

// g and the forward's result r: one value per row
template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    logsumexp_bwd(const T* x, const T* g, const T* res, const bool* mask, T* o, i64 rows, i64 Q, i64 n, i64 xP,
                  i64 xQ, i64 xn, i64 gP, i64 gQ, i64 rP, i64 rQ, i64 mP, i64 mQ, i64 mn, i64 oP, i64 oQ, i64 on,
                  typename Acc<T>::type inv_t, int masked) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        const C gv = load(g + i * gP + k * gQ), rv = load(res + i * rP + k * rQ);
        const C nan = rv - rv;  // 0, or NaN where r is not finite
        map1(team, n, x + i * xP + k * xQ, xn, o + i * oP + k * oQ, on, [&](i64 j, C v) -> C {
            return !live(j) ? C(0) : nan == C(0) ? gv * expt(v - rv, inv_t) : nan;
        });
    }
}

template <typename T, int TEAM, bool LOG>
__global__ void GA_BOUNDS(TEAM, T)
    softmax_bwd(const T* g, const T* y, const bool* mask, T* o, i64 rows, i64 Q, i64 n, i64 gP, i64 gQ, i64 gn,
                i64 yP, i64 yQ, i64 yn, i64 mP, i64 mQ, i64 mn, i64 oP, i64 oQ, i64 on, typename Acc<T>::type inv_t,
                int masked) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* gr = g + i * gP + k * gQ;
        const T* yr = y + i * yP + k * yQ;
        T* orow = o + i * oP + k * oQ;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        double acc = 0.0;  // sum g (log) or sum g y
        each2(team, n, gr, gn, yr, yn, [&](i64 j, C gv, C yv) {
            if (live(j)) acc += LOG ? double(gv) : double(gv) * double(yv);
        });
        const C s = C(team.reduce(acc, Sum<double>()));
        map2(team, n, gr, gn, yr, yn, orow, on, [&](i64 j, C gv, C yv) -> C {
            return !live(j) ? C(0) : LOG ? (gv - exp(yv) * s) * inv_t : yv * (gv - s) * inv_t;
        });
    }
}

}  // namespace ga
