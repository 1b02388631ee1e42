// Softmax cross-entropy: per-row loss, gradient and log-sum-exp from one kernel;
// and the negative log-likelihood of class indices.
//
// Per row of C classes, with v_c = c tanh(z_c / c) under a soft cap c (else
// v = z), m = max v, s = sum_c e^{v_c - m}, lse = m + log s, p_c = e^{v_c - m} / s,
// smoothed targets t'_c = (1 - eps) t_c + eps / C and class weights w
// (1 unweighted), q_c = w_c t'_c:
//   loss = sum_c q_c ((m - v_c) + log s) + z_loss lse^2   (terms with q_c = 0 contribute 0)
//   dloss/dz_c = (p_c sum_k q_k - q_c + 2 z_loss lse p_c) (1 - tanh^2(z_c / c)),
//   the last factor 1 without a cap; written times `scale`.
// Each term is (m - v_c) + log s, never lse - v_c: m - v_c >= 0 has no
// cancellation, so logits of +-1e30 lose nothing (lse - v_c is 0 there).
// v is recomputed from z in each pass, never stored. Index targets are one-hot
// t; a row whose target is `ignore` has loss 0 and gradient 0 (its lse is
// still written). A row with NaN or +inf v, or of all -inf, gets a NaN loss
// and gradient. The row sums of q and of the loss terms are double. Per-row
// losses and lse are of the compute type, indexed by row; the gradient has its
// own strides (the logits' shape, C order), so it is written in the logits' layout.
#include "rows.cuh"

namespace ga {

// v = c tanh(z / c) under a cap c > 0, else z (c = 0); dv/dz = 1 - th^2, th = tanh(z / c)
template <typename C> struct Softcap {
    C c;
    __device__ __forceinline__ C operator()(C z) const { return c != C(0) ? c * tanh(z / c) : z; }
    __device__ __forceinline__ C operator()(C z, C& dv) const {
        if (c == C(0)) {
            dv = C(1);
            return z;
        }
        const C th = tanh(z / c);
        dv = C(1) - th * th;
        return c * th;
    }
};

template <typename T, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    xent_index(const T* z, const i64* target, const typename Acc<T>::type* weight, typename Acc<T>::type* loss,
               typename Acc<T>::type* lse, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ, i64 zn, i64 gP, i64 gQ,
               i64 gn, i64 ignore, typename Acc<T>::type eps, typename Acc<T>::type z_loss,
               typename Acc<T>::type cap, typename Acc<T>::type scale, int weighted, int want_grad, int want_lse) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const Softcap<C> logit{cap};
    const C base = eps / C(n), keep = C(1) - eps;
    const bool smooth = eps != C(0);
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        T* gr = grad + i * gP + k * gQ;
        const i64 t = target[r];
        const bool ignored = t == ignore;
        MaxSum<C> ms = MaxSum<C>::empty();
        double wsum = 0.0;  // sum_c w_c, for smoothing with weights
        if (!ignored || want_lse) {
            each(team, n, zr, zn, [&](i64 j, C x) {
                ms.add(logit(x), C(1));
                if (weighted && smooth) wsum += weight[j];
            });
            ms = team.reduce(ms, Merge<C>{C(1)}).finish();
            if (want_lse && team.lane() == 0) lse[r] = ms.m + log(ms.s);
        }
        if (ignored) {
            if (team.lane() == 0) loss[r] = C(0);
            if (want_grad)
                for (i64 j = team.lane(); j < n; j += team.size()) store(gr + j * gn, C(0));
            continue;
        }
        const C m = ms.m, ls = log(ms.s), lse_r = m + ls;
        if (weighted && smooth) wsum = team.reduce(wsum, Sum<double>());
        // q_c = w_c eps/C + [c == t] (1 - eps) w_t, summing to (1 - eps) w_t + eps/C sum_c w_c
        const C hit = keep * (weighted ? weight[t] : C(1));
        const C sum_q = C(double(hit) + double(base) * (weighted ? wsum : double(n)));
        // grad_c = (p_c coef - q_c) scale dv_c
        const C coef = sum_q + (z_loss != C(0) ? C(2) * z_loss * lse_r : C(0));
        const C inv_s = C(1) / ms.s;
        double acc = 0.0;  // sum_c q_c ((m - v_c) + log s) when smoothing (every class has a term)
        auto term = [&](i64 j, C v) -> C {
            const C qj = (weighted ? weight[j] : C(1)) * base + (j == t ? hit : C(0));
            if (smooth && qj != C(0)) acc += double(qj) * double((m - v) + ls);
            return qj;
        };
        if (want_grad) {
            map1(team, n, zr, zn, gr, gn, [&](i64 j, C x) -> C {
                C dv;
                const C v = logit(x, dv);
                const C qj = term(j, v);
                return (exp(v - m) * inv_s * coef - qj) * scale * dv;
            });
        } else if (smooth) {
            each(team, n, zr, zn, [&](i64 j, C x) { term(j, logit(x)); });
        }
        if (smooth) acc = team.reduce(acc, Sum<double>());
        if (team.lane() == 0) {
            // without smoothing only the target's term: q_t = w_t
            if (!smooth && hit != C(0)) acc = double(hit) * double((m - logit(load(zr + t * zn))) + ls);
            C l = C(acc);
            if (z_loss != C(0)) l += z_loss * lse_r * lse_r;
            // a row without a softmax (log s NaN) has a NaN loss, even where no class weighs in
            loss[r] = ls == ls ? l : ls;
        }
    }
}

// probability targets U: T itself or T's compute type
template <typename T, typename U, int TEAM>
__global__ void GA_BOUNDS(TEAM, T)
    xent_prob(const T* z, const U* target, const typename Acc<T>::type* weight, typename Acc<T>::type* loss,
              typename Acc<T>::type* lse, T* grad, i64 rows, i64 Q, i64 n, i64 zP, i64 zQ, i64 zn, i64 gP, i64 gQ,
              i64 gn, i64 tP, i64 tQ, i64 tn, typename Acc<T>::type eps, typename Acc<T>::type z_loss,
              typename Acc<T>::type cap, typename Acc<T>::type scale, int weighted, int want_grad, int want_lse) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const Softcap<C> logit{cap};
    const C base = eps / C(n), keep = C(1) - eps;
    // q_j = w_j ((1 - eps) t_j + eps/C)
    auto q = [&](i64 j, C tv) -> C {
        const C tj = keep * tv + base;
        return weighted ? weight[j] * tj : tj;
    };
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        const U* tr = target + i * tP + k * tQ;
        T* gr = grad + i * gP + k * gQ;
        MaxSum<C> ms = MaxSum<C>::empty();
        double sq = 0.0;  // sum_c q_c
        each2(team, n, zr, zn, tr, tn, [&](i64 j, C x, C tv) {
            ms.add(logit(x), C(1));
            sq += q(j, tv);
        });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        sq = team.reduce(sq, Sum<double>());
        const C m = ms.m, ls = log(ms.s), lse_r = m + ls, inv_s = C(1) / ms.s;
        if (want_lse && team.lane() == 0) lse[r] = lse_r;
        // grad_c = (p_c coef - q_c) scale dv_c
        const C coef = C(sq) + (z_loss != C(0) ? C(2) * z_loss * lse_r : C(0));
        double acc = 0.0;  // sum_c q_c ((m - v_c) + log s)
        auto term = [&](i64 j, C v, C tv) -> C {
            const C qj = q(j, tv);
            if (qj != C(0)) acc += double(qj) * double((m - v) + ls);
            return qj;
        };
        if (want_grad) {
            map2(team, n, zr, zn, tr, tn, gr, gn, [&](i64 j, C x, C tv) -> C {
                C dv;
                const C v = logit(x, dv);
                const C qj = term(j, v, tv);
                return (exp(v - m) * inv_s * coef - qj) * scale * dv;
            });
        } else {
            each2(team, n, zr, zn, tr, tn, [&](i64 j, C x, C tv) { term(j, logit(x), tv); });
        }
        acc = team.reduce(acc, Sum<double>());
        if (team.lane() == 0) {
            C l = C(acc);
            if (z_loss != C(0)) l += z_loss * lse_r * lse_r;
            // a row without a softmax (log s NaN) has a NaN loss, even where no target weights it
            loss[r] = ls == ls ? l : ls;
        }
    }
}

// Negative log-likelihood of class indices, one thread per row:
//   loss_r = -w_t lp[r, t]   (w = 1 unweighted; 0 for a row whose target is `ignore`)
// and d loss_r / d lp[r, t] = -w_t, written times `scale` into a zeroed gradient.
template <typename T>
__global__ void GA_BOUNDS(TEAM_THREAD, T)
    nll(const T* lp, const i64* target, const typename Acc<T>::type* weight, typename Acc<T>::type* loss, T* grad,
        i64 rows, i64 Q, i64 lP, i64 lQ, i64 ln, i64 gP, i64 gQ, i64 gn, i64 ignore, typename Acc<T>::type scale,
        int weighted, int want_grad) {
    typedef typename Acc<T>::type C;
    const Team<TEAM_THREAD> team;
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 t = target[r];
        if (t == ignore) {
            loss[r] = C(0);
            continue;
        }
        const i64 i = r / Q, k = r - i * Q;
        const C w = weighted ? weight[t] : C(1);
        loss[r] = -w * load(lp + i * lP + k * lQ + t * ln);
        if (want_grad) store(grad + i * gP + k * gQ + t * gn, -w * scale);
    }
}

}  // namespace ga
