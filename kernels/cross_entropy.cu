// Softmax cross-entropy: per-row loss and its gradient from one kernel.
//
// With m the row max, s = sum_c e^{z_c - m} and smoothed targets t' = (1-eps) t + eps/C:
//   loss_r = sum_c t'_c ((m - z_c) + log s)   (terms with t'_c = 0 contribute 0)
//   dloss/dz_c = softmax(z)_c sum_k t'_k - t'_c, written times `scale`
// Each term is (m - z_c) + log s, never lse - z_c: m - z_c >= 0 has no
// cancellation, so logits of +-1e30 lose nothing (lse - z_c is 0 there).
// Index targets are one-hot t: loss = (1-eps)((m - z_t) + log s) + eps mean_c((m - z_c) + log s);
// a row whose target is `ignore` has loss 0 and gradient 0. A row with NaN or
// +inf, or of all -inf, gets a NaN loss and gradient. Per-row losses are
// double, indexed by row; the gradient has its own strides (the logits' shape,
// C order), so it is written in the logits' layout.
#include "rows.cuh"

namespace ga {

template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    xent_index(const T* z, const i64* target, double* loss, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ, i64 zn,
               i64 gP, i64 gQ, i64 gn, i64 ignore, typename Acc<T>::type eps, typename Acc<T>::type scale,
               int want_grad) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        T* gr = grad + i * gP + k * gQ;
        const i64 t = target[r];
        if (t == ignore) {
            if (team.lane() == 0) loss[r] = 0.0;
            if (want_grad)
                for (i64 j = team.lane(); j < n; j += team.size()) store(gr + j * gn, C(0));
            continue;
        }
        MaxSum<C> ms = MaxSum<C>::empty();
        each(team, n, zr, zn, [&](i64, C v) { ms.add(v, C(1)); });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        const C m = ms.m, ls = log(ms.s);
        C sd = C(0);  // sum_c (m - z_c), for label smoothing
        if (want_grad) {
            const C inv_s = C(1) / ms.s, base = eps / C(n), hit = (C(1) - eps) * scale;
            map1(team, n, zr, zn, gr, gn, [&](i64 j, C v) -> C {
                sd += m - v;
                const C gj = (exp(v - m) * inv_s - base) * scale;
                return j == t ? gj - hit : gj;
            });
        } else if (eps != C(0)) {
            each(team, n, zr, zn, [&](i64, C v) { sd += m - v; });
        }
        if (eps != C(0)) sd = team.reduce(sd, Sum<C>());
        if (team.lane() == 0) {
            C nll = (m - load(zr + t * zn)) + ls;
            if (eps != C(0)) nll = (C(1) - eps) * nll + eps * (sd / C(n) + ls);
            loss[r] = nll;
        }
    }
}

// probability targets U: T itself or T's compute type
template <typename T, typename U, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    xent_prob(const T* z, const U* target, double* loss, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ, i64 zn,
              i64 gP, i64 gQ, i64 gn, i64 tP, i64 tQ, i64 tn, typename Acc<T>::type eps,
              typename Acc<T>::type scale, int want_grad) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const C base = eps / C(n);
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        const U* tr = target + i * tP + k * tQ;
        T* gr = grad + i * gP + k * gQ;
        MaxSum<C> ms = MaxSum<C>::empty();
        C st = C(0);  // sum of t'
        each2(team, n, zr, zn, tr, tn, [&](i64, C v, C tv) {
            ms.add(v, C(1));
            st += (C(1) - eps) * C(tv) + base;
        });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        st = team.reduce(st, Sum<C>());
        const C m = ms.m, ls = log(ms.s), inv_s = C(1) / ms.s;
        C acc = C(0);
        auto term = [&](C v, C tv) -> C {
            const C tj = (C(1) - eps) * C(tv) + base;
            if (tj != C(0)) acc += tj * ((m - v) + ls);
            return tj;
        };
        if (want_grad) {
            map2(team, n, zr, zn, tr, tn, gr, gn, [&](i64, C v, C tv) -> C {
                const C tj = term(v, tv);
                return (exp(v - m) * inv_s * st - tj) * scale;
            });
        } else {
            each2(team, n, zr, zn, tr, tn, [&](i64, C v, C tv) { term(v, tv); });
        }
        acc = team.reduce(acc, Sum<C>());
        // a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
        if (team.lane() == 0) loss[r] = ls == ls ? acc : ls;
    }
}

}  // namespace ga
