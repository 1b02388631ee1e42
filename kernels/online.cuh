// The online normalizer of the softmax family: running max and sum of
// e^{(x-m)/T} over a row, built element by element, merged across lanes, warps
// and blocks in any order. Host-compilable (tests/toolchain/test_gxx_online.py runs it
// with g++ on special rows and every lane split).
#pragma once

#if defined(__CUDACC__)
#define GA_ON __host__ __device__ __forceinline__
#else
#include <cmath>
#define GA_ON inline
#endif

namespace ga {

#if !defined(__CUDACC__)
using std::copysign;
using std::exp;
using std::fabs;
using std::log;
#endif

// d/T from 1/T (finite: the API bounds T below): +-inf/T stays +-inf even
// when 1/T rounded to 0 (T huge), where d * inv_t is NaN but d is not
template <typename C> GA_ON C scaled(C d, C inv_t) {
    const C r = d * inv_t;
    return (r != r && d == d) ? d : r;
}
// e^{d/T}
template <typename C> GA_ON C expt(C d, C inv_t) { return exp(scaled(d, inv_t)); }
// m - m is 0 for finite m and NaN for NaN and +-inf
template <typename C> GA_ON bool finite(C m) { return m - m == C(0); }

// ------------------------------------------------ running max and sum of e^{(x-m)/T}
template <typename C> struct MaxSum {
    C m, s;
    GA_ON static MaxSum empty() { return MaxSum{-C(1) / C(0), C(0)}; }
    // one element; a NaN sticks in m, making the row NaN
    GA_ON void add(C x, C inv_t) {
        if (x > m) {
            s = s * expt(m - x, inv_t) + C(1);
            m = x;
        } else if (x == m) {
            s += C(1);
        } else if (x != x) {
            m = x;
        } else {
            s += expt(x - m, inv_t);
        }
    }
    // two partial states. A NaN or +inf max sticks (finish() makes the row NaN);
    // a -inf max (only -inf seen so far) has nothing to rescale: s = 0 keeps a
    // later finite max from meeting (-inf) - (-inf)
    GA_ON static MaxSum merge(MaxSum a, MaxSum b, C inv_t) {
        C M = (a.m != a.m) ? a.m : ((b.m > a.m || b.m != b.m) ? b.m : a.m);
        if (!finite(M)) return MaxSum{M, C(0)};
        return MaxSum{M, a.s * expt(a.m - M, inv_t) + b.s * expt(b.m - M, inv_t)};
    }
    // the row's state once every element is in: s is NaN where m is not finite
    GA_ON MaxSum finish() const { return MaxSum{m, finite(m) ? s : m - m}; }
};

// T log sum e^{x/T} = m + T log s of a row's state before finish(): a NaN has
// stuck in m; a max of +-inf, or no element at all (m = -inf), is the result itself
template <typename C> GA_ON C logsumexp_of(MaxSum<C> a, C t) { return finite(a.m) ? a.m + t * log(a.s) : a.m; }

// output j of a row with final state (m, s): softmax e^{d}/s or log-softmax d - log s, d = (x-m)/T
template <bool LOG, typename C> GA_ON C softmax_out(C x, C m, C log_s, C inv_s, C inv_t) {
    const C d = scaled(x - m, inv_t);
    return LOG ? d - log_s : exp(d) * inv_s;
}

}  // namespace ga
