// Softmax cross-entropy: per-row loss and its gradient from one kernel.
//
// With lse = m + log sum_c e^{z_c - m} and smoothed targets t' = (1-eps) t + eps/C:
//   loss_r = sum_c t'_c (lse - z_c)        (terms with t'_c = 0 contribute 0)
//   dloss/dz_c = softmax(z)_c sum_k t'_k - t'_c, written times `scale`
// Index targets are one-hot t: loss = (1-eps)(lse - z_t) + eps (lse - mean z);
// a row whose target is `ignore` has loss 0 and gradient 0. A row with NaN or
// +inf, or of all -inf, gets a NaN loss and gradient. Per-row losses are
// double; the gradient rows are contiguous (class axis last).
#include "rows.cuh"

namespace ga {

template <typename T, int TEAM>
__global__ void xent_index(const T* z, const i64* target, double* loss, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ,
                           i64 zn, i64 ignore, typename Acc<T>::type eps, typename Acc<T>::type scale, int want_grad) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        T* gr = grad + r * n;
        const i64 t = target[r];
        if (t == ignore) {
            if (team.lane() == 0) loss[r] = 0.0;
            if (want_grad) map1(team, n, gr, 1, gr, 1, [&](i64, C) -> C { return C(0); });
            continue;
        }
        MaxSum<C> ms = MaxSum<C>::empty();
        C sz = C(0);
        each(team, n, zr, zn, [&](i64, C v) {
            ms.add(v, C(1));
            sz += v;
        });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        if (eps != C(0)) sz = team.reduce(sz, Sum<C>());
        const C lse = ms.m + log(ms.s);
        C nll = lse - load(zr + t * zn);
        if (eps != C(0)) nll = (C(1) - eps) * nll + eps * (lse - sz / C(n));  // eps * mean_c(lse - z_c)
        if (team.lane() == 0) loss[r] = nll;
        if (want_grad) {
            const C m = ms.m, inv_s = C(1) / ms.s, base = eps / C(n), hit = (C(1) - eps) * scale;
            map1(team, n, zr, zn, gr, 1, [&](i64 j, C v) -> C {
                const C gj = (exp(v - m) * inv_s - base) * scale;
                return j == t ? gj - hit : gj;
            });
        }
    }
}

// probability targets U: T itself or T's compute type
template <typename T, typename U, int TEAM>
__global__ void xent_prob(const T* z, const U* target, double* loss, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ,
                          i64 zn, i64 tP, i64 tQ, i64 tn, typename Acc<T>::type eps, typename Acc<T>::type scale,
                          int want_grad) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const C base = eps / C(n);
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        const U* tr = target + i * tP + k * tQ;
        T* gr = grad + r * n;
        MaxSum<C> ms = MaxSum<C>::empty();
        C st = C(0);  // sum of t'
        each2(team, n, zr, zn, tr, tn, [&](i64, C v, C tv) {
            ms.add(v, C(1));
            st += (C(1) - eps) * C(tv) + base;
        });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        st = team.reduce(st, Sum<C>());
        const C m = ms.m, lse = ms.m + log(ms.s), inv_s = C(1) / ms.s;
        C acc = C(0);
        auto term = [&](C v, C tv) -> C {
            const C tj = (C(1) - eps) * C(tv) + base;
            if (tj != C(0)) acc += tj * (lse - v);
            return tj;
        };
        if (want_grad) {
            map2(team, n, zr, zn, tr, tn, gr, 1, [&](i64, C v, C tv) -> C {
                const C tj = term(v, tv);
                return (exp(v - m) * inv_s * st - tj) * scale;
            });
        } else {
            each2(team, n, zr, zn, tr, tn, [&](i64, C v, C tv) { term(v, tv); });
        }
        acc = team.reduce(acc, Sum<C>());
        if (team.lane() == 0) loss[r] = acc;
    }
}

}  // namespace ga
