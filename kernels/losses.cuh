// The binary cross-entropy formulas in C++: the restatement of the bce_*
// functions of gpu_act/formulas.py, as activations.cuh restates the
// activations (same names, branches and operation order; the helpers mul0 and
// sigmoid_fwd are activations.cuh's). tests/toolchain/test_gxx_table.py fails when a
// formula has no counterpart here, and compares each with formulas.py and
// with the reference on special values (compiled for the host with g++).
//
// C is the compute type (float or double; float16 and bfloat16 are computed in float).
#pragma once
#include "activations.cuh"

namespace ga {

#if !defined(__CUDACC__)
using std::log;
#endif

constexpr double BCE_LOG_MIN = -100.0;  // each log of bce_fwd clamped here, as PyTorch
constexpr double BCE_EPS = 1e-12;       // floor of p (1 - p) in bce_der, as PyTorch

// NaN of type C (formulas.py's NAN)
template <typename C> GA_FN C quiet_nan() { return C(0) / C(0); }

// On logits z with target t, weight w and positive weight pw, with a = w (1 - t)
// and b = w pw t: loss = a softplus(z) + b softplus(-z), two terms that never
// cancel for a, b >= 0; softplus(+-z) = max(+-z, 0) + log1p(e^-|z|) never
// overflows; a term whose factor is 0 is 0 even at z = +-inf (mul0)
template <typename C> GA_FN C bce_logits_fwd(C z, C t, C w, C pw) {
    if (z != z) return z;  // NaN, even where a weight of 0 would drop the term
    C a = w * (C(1) - t);
    C b = w * pw * t;
    C l = log1p(exp(-fabs(z)));
    C pos = z > C(0) ? z : C(0);
    C neg = z < C(0) ? -z : C(0);
    return mul0(pos + l, a) + mul0(neg + l, b);
}

// (a + b) sigmoid(z) - b
template <typename C> GA_FN C bce_logits_der(C z, C t, C w, C pw) {
    C b = w * pw * t;
    return (w * (C(1) - t) + b) * sigmoid_fwd(z) - b;
}

// On probabilities p: -w [t log p + (1 - t) log(1 - p)], each log clamped at
// BCE_LOG_MIN (p = 0 or 1 gives a finite loss); NaN for p outside [0, 1] or NaN
template <typename C> GA_FN C bce_fwd(C p, C t, C w) {
    if (p >= C(0) && p <= C(1)) {
        C lp = p > C(0) ? log(p) : C(BCE_LOG_MIN);
        C lq = p < C(1) ? log1p(-p) : C(BCE_LOG_MIN);
        lp = lp > C(BCE_LOG_MIN) ? lp : C(BCE_LOG_MIN);
        lq = lq > C(BCE_LOG_MIN) ? lq : C(BCE_LOG_MIN);
        return -w * (t * lp + (C(1) - t) * lq);
    }
    return quiet_nan<C>();
}

// w (p - t) / max(p (1 - p), BCE_EPS)
template <typename C> GA_FN C bce_der(C p, C t, C w) {
    if (p >= C(0) && p <= C(1)) {
        C d = p * (C(1) - p);
        return w * (p - t) / (d > C(BCE_EPS) ? d : C(BCE_EPS));
    }
    return quiet_nan<C>();
}

}  // namespace ga
