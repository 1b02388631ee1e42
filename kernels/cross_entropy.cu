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
// With a mask (bool, its own strides; `masked` set) a row's classes are its
// unmasked ones, C' of them: (m, s) run over them, smoothing spreads eps/C'
// over them only, masked classes get gradient 0, target mass on a masked class
// costs +inf (its log-probability is -inf); a row with none is ignored (loss
// and gradient 0, lse -inf).
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
    xent_index(const T* z, const i64* target, const bool* mask, const typename Acc<T>::type* weight,
               typename Acc<T>::type* loss, typename Acc<T>::type* lse, T* grad, i64 rows, i64 Q, i64 n, i64 zP,
               i64 zQ, i64 zn, i64 mP, i64 mQ, i64 mn, i64 gP, i64 gQ, i64 gn, i64 ignore, typename Acc<T>::type eps,
               typename Acc<T>::type z_loss, typename Acc<T>::type cap, typename Acc<T>::type scale, int weighted,
               int want_grad, int want_lse, int masked) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const Softcap<C> logit{cap};
    const C keep = C(1) - eps, inf = C(1) / C(0);
    const bool smooth = eps != C(0);
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        T* gr = grad + i * gP + k * gQ;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        const i64 t = target[r];
        const bool ignored = t == ignore;
        MaxSum<C> ms = MaxSum<C>::empty();
        double wsum = 0.0;  // sum_c w_c over the row's classes, for smoothing with weights
        double count = 0.0;  // the row's classes: n, or its unmasked ones
        if (!ignored || want_lse) {
            each(team, n, zr, zn, [&](i64 j, C x) {
                if (!live(j)) return;
                ms.add(logit(x), C(1));
                if (weighted && smooth) wsum += weight[j];
                count += 1.0;
            });
            ms = team.reduce(ms, Merge<C>{C(1)}).finish();
            count = masked ? team.reduce(count, Sum<double>()) : double(n);
            if (want_lse && team.lane() == 0) lse[r] = count != 0.0 ? ms.m + log(ms.s) : -inf;
        }
        // ignored, or (with a mask) no class at all: loss 0, gradient 0
        if (ignored || count == 0.0) {
            if (team.lane() == 0) loss[r] = C(0);
            if (want_grad)
                for (i64 j = team.lane(); j < n; j += team.size()) store(gr + j * gn, C(0));
            continue;
        }
        const C m = ms.m, ls = log(ms.s), lse_r = m + ls, base = C(double(eps) / count);
        if (weighted && smooth) wsum = team.reduce(wsum, Sum<double>());
        // q_c = w_c eps/C' + [c == t] (1 - eps) w_t over the row's C' classes, summing to
        // (1 - eps) w_t + eps/C' sum_c w_c; a masked target keeps only its own part
        const C hit = keep * (weighted ? weight[t] : C(1));
        const C sum_q = C(double(hit) + double(base) * (weighted ? wsum : count));
        // grad_c = (p_c coef - q_c) scale dv_c
        const C coef = sum_q + (z_loss != C(0) ? C(2) * z_loss * lse_r : C(0));
        const C inv_s = C(1) / ms.s;
        double acc = 0.0;  // sum_c q_c ((m - v_c) + log s) when smoothing (every class has a term)
        auto term = [&](i64 j, C v, bool in) -> C {
            const C qj = (in ? (weighted ? weight[j] : C(1)) * base : C(0)) + (j == t ? hit : C(0));
            // target mass on a masked class: its log-probability is -inf
            if (smooth && qj != C(0)) acc += double(qj) * (in ? double((m - v) + ls) : double(inf));
            return qj;
        };
        if (want_grad) {
            map1(team, n, zr, zn, gr, gn, [&](i64 j, C x) -> C {
                C dv;
                const C v = logit(x, dv);
                const bool in = live(j);
                const C qj = term(j, v, in);
                return in ? (exp(v - m) * inv_s * coef - qj) * scale * dv : C(0);
            });
        } else if (smooth) {
            each(team, n, zr, zn, [&](i64 j, C x) { term(j, logit(x), live(j)); });
        }
        if (smooth) acc = team.reduce(acc, Sum<double>());
        if (team.lane() == 0) {
            // without smoothing only the target's term: q_t = w_t
            if (!smooth && hit != C(0))
                acc = live(t) ? double(hit) * double((m - logit(load(zr + t * zn))) + ls) : double(hit) * double(inf);
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
    xent_prob(const T* z, const U* target, const bool* mask, const typename Acc<T>::type* weight,
              typename Acc<T>::type* loss, typename Acc<T>::type* lse, T* grad, i64 rows, i64 Q, i64 n, i64 zP,
              i64 zQ, i64 zn, i64 mP, i64 mQ, i64 mn, i64 gP, i64 gQ, i64 gn, i64 tP, i64 tQ, i64 tn,
              typename Acc<T>::type eps, typename Acc<T>::type z_loss, typename Acc<T>::type cap,
              typename Acc<T>::type scale, int weighted, int want_grad, int want_lse, int masked) {
    typedef typename Acc<T>::type C;
    const Team<TEAM> team;
    const Softcap<C> logit{cap};
    const C keep = C(1) - eps, inf = C(1) / C(0);
    // q_j = w_j ((1 - eps) t_j + b): b = eps/C' on the row's classes, 0 on masked ones
    auto q = [&](i64 j, C tv, C b) -> C {
        const C tj = keep * tv + b;
        return weighted ? weight[j] * tj : tj;
    };
    for (i64 r = team.first_row(); r < rows; r += team.row_step()) {
        const i64 i = r / Q, k = r - i * Q;
        const T* zr = z + i * zP + k * zQ;
        const U* tr = target + i * tP + k * tQ;
        T* gr = grad + i * gP + k * gQ;
        const RowMask live{mask + i * mP + k * mQ, mn, masked};
        MaxSum<C> ms = MaxSum<C>::empty();
        double sq = 0.0;  // sum_c w_c (1 - eps) t_c
        double sw = 0.0;  // sum_c w_c over the row's classes
        double count = 0.0;  // the row's classes
        each2(team, n, zr, zn, tr, tn, [&](i64 j, C x, C tv) {
            if (live(j)) {
                ms.add(logit(x), C(1));
                sw += weighted ? weight[j] : C(1);
                count += 1.0;
            }
            sq += q(j, tv, C(0));
        });
        ms = team.reduce(ms, Merge<C>{C(1)}).finish();
        sq = team.reduce(sq, Sum<double>());
        count = masked ? team.reduce(count, Sum<double>()) : double(n);
        if (count == 0.0) {  // no class at all: ignored
            if (team.lane() == 0) {
                loss[r] = C(0);
                if (want_lse) lse[r] = -inf;
            }
            if (want_grad)
                for (i64 j = team.lane(); j < n; j += team.size()) store(gr + j * gn, C(0));
            continue;
        }
        if (eps != C(0)) sw = team.reduce(sw, Sum<double>());
        const C m = ms.m, ls = log(ms.s), lse_r = m + ls, inv_s = C(1) / ms.s, base = C(double(eps) / count);
        if (want_lse && team.lane() == 0) lse[r] = lse_r;
        // grad_c = (p_c coef - q_c) scale dv_c; sum_c q_c = sq + eps/C' sum_c w_c
        const C coef = C(sq + (eps != C(0) ? double(base) * sw : 0.0)) + (z_loss != C(0) ? C(2) * z_loss * lse_r : C(0));
        double acc = 0.0;  // sum_c q_c ((m - v_c) + log s)
        auto term = [&](i64 j, C v, C tv, bool in) -> C {
            const C qj = q(j, tv, in ? base : C(0));
            // target mass on a masked class: its log-probability is -inf
            if (qj != C(0)) acc += double(qj) * (in ? double((m - v) + ls) : double(inf));
            return qj;
        };
        if (want_grad) {
            map2(team, n, zr, zn, tr, tn, gr, gn, [&](i64 j, C x, C tv) -> C {
                C dv;
                const C v = logit(x, dv);
                const bool in = live(j);
                const C qj = term(j, v, tv, in);
                return in ? (exp(v - m) * inv_s * coef - qj) * scale * dv : C(0);
            });
        } else {
            each2(team, n, zr, zn, tr, tn, [&](i64 j, C x, C tv) { term(j, logit(x), tv, live(j)); });
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
