// The activation formulas in C++: the one deliberate restatement of
// gpu_act/formulas.py. One function per function there, same name, same
// branches and operation order, so NaN propagation, limits at +-inf and the
// PyTorch kink values are the registry's. tests/toolchain/test_gxx_table.py fails when a
// formula has no counterpart here, and compares every function with the
// registry on special values (compiled for the host with g++).
//
// C is the compute type (float or double; float16 and bfloat16 are computed in float).
// Literals are written C(...) so float work never widens to double, as the
// Python side retypes its float literals.
#pragma once

#if defined(__CUDACC__)
#define GA_FN __host__ __device__ __forceinline__
#else
#include <cmath>
#define GA_FN inline
#endif

namespace ga {

#if !defined(__CUDACC__)
using std::copysign;
using std::erfc;
using std::exp;
using std::expm1;
using std::fabs;
using std::log1p;
using std::tanh;
#endif

typedef unsigned long long u64;

constexpr double SQRT1_2 = 0.7071067811865476;        // 1/sqrt(2)
constexpr double INV_SQRT_2PI = 0.3989422804014327;   // 1/sqrt(2*pi)
constexpr double SQRT_2_OVER_PI = 0.7978845608028654; // sqrt(2/pi)
constexpr double GELU_TANH_C = 0.044715;
constexpr double SELU_ALPHA = 1.6732632423543772;
constexpr double SELU_SCALE = 1.0507009873554805;
constexpr double MISH_LINEAR = 20.0;

// ------------------------------------------------ Python builtins as used there
// max(a, b) / min(a, b): a unless b is strictly larger / smaller (NaN a stays)
template <typename C> GA_FN C py_max(C a, C b) { return b > a ? b : a; }
template <typename C> GA_FN C py_min(C a, C b) { return b < a ? b : a; }
// isinf without <cmath> (NVRTC): inf - inf is NaN, finite - itself is 0
template <typename C> GA_FN bool is_inf(C x) { return x == x && !(x - x == x - x); }

// ------------------------------------------------ helpers
// x * f with the limit 0 where f == 0 (so +-inf * 0 -> 0); NaN still propagates
template <typename C> GA_FN C mul0(C x, C f) { return f == C(0) ? C(0) : x * f; }

// 1/(1+e^-x) via e = exp(-|x|): never overflows
template <typename C> GA_FN C sigmoid_fwd(C x) {
    C e = exp(-fabs(x));
    C r = C(1) / (C(1) + e);
    return x >= C(0) ? r : e * r;
}

// s(1-s) = e/(1+e)^2 with e = exp(-|x|)
template <typename C> GA_FN C sigmoid_der(C x) {
    C e = exp(-fabs(x));
    C r = C(1) / (C(1) + e);
    return e * r * r;
}

template <typename C> GA_FN C leaky_relu_fwd(C x, C negative_slope) { return x > C(0) ? x : x * negative_slope; }

template <typename C> GA_FN C leaky_relu_der(C x, C negative_slope) {
    if (x > C(0)) return C(1);
    if (x <= C(0)) return negative_slope;
    return x;
}

// d/d(slope): x where x <= 0 (PReLU's weight gradient)
template <typename C> GA_FN C leaky_relu_slope_der(C x, C negative_slope) { return x > C(0) ? C(0) : x; }

// linear above threshold; else (max(bx,0) + log1p(e^-|bx|))/beta
template <typename C> GA_FN C softplus_fwd(C x, C beta, C threshold) {
    C bx = beta * x;
    if (bx > threshold) return x;
    return (py_max(bx, C(0)) + log1p(exp(-fabs(bx)))) / beta;
}

template <typename C> GA_FN C softplus_der(C x, C beta, C threshold) {
    C bx = beta * x;
    return bx > threshold ? C(1) : sigmoid_fwd(bx);
}

// ------------------------------------------------ activations
template <typename C> GA_FN C tanh_fwd(C x) { return tanh(x); }

// sech^2 x = 4e/(1+e)^2 with e = exp(-2|x|)
template <typename C> GA_FN C tanh_der(C x) {
    C e = exp(C(-2) * fabs(x));
    return C(4) * e / ((C(1) + e) * (C(1) + e));
}

template <typename C> GA_FN C relu_fwd(C x) { return x <= C(0) ? C(0) : x; }

template <typename C> GA_FN C relu_der(C x) {
    if (x > C(0)) return C(1);
    if (x <= C(0)) return C(0);
    return x;
}

template <typename C> GA_FN C hardtanh_fwd(C x, C min_val, C max_val) {
    if (x <= min_val) return min_val;
    return x >= max_val ? max_val : x;
}

template <typename C> GA_FN C hardtanh_der(C x, C min_val, C max_val) {
    if (x <= min_val || x >= max_val) return C(0);
    return x == x ? C(1) : x;
}

template <typename C> GA_FN C relu6_fwd(C x) { return hardtanh_fwd(x, C(0), C(6)); }
template <typename C> GA_FN C relu6_der(C x) { return hardtanh_der(x, C(0), C(6)); }

// x > 0: x ; else alpha*(e^x - 1)
template <typename C> GA_FN C elu_fwd(C x, C alpha) { return x > C(0) ? x : alpha * expm1(x); }
template <typename C> GA_FN C elu_der(C x, C alpha) { return x > C(0) ? C(1) : alpha * exp(x); }

template <typename C> GA_FN C selu_fwd(C x) { return C(SELU_SCALE) * elu_fwd(x, C(SELU_ALPHA)); }
template <typename C> GA_FN C selu_der(C x) { return C(SELU_SCALE) * elu_der(x, C(SELU_ALPHA)); }

// x > 0: x ; else alpha*(e^(x/alpha) - 1)
template <typename C> GA_FN C celu_fwd(C x, C alpha) { return x > C(0) ? x : alpha * expm1(x / alpha); }
template <typename C> GA_FN C celu_der(C x, C alpha) { return x > C(0) ? C(1) : exp(x / alpha); }

// Phi(x) = erfc(-x/sqrt 2)/2
template <typename C> GA_FN C gelu_cdf(C x) { return C(0.5) * erfc(-x * C(SQRT1_2)); }
template <typename C> GA_FN C gelu_fwd(C x) { return mul0(x, gelu_cdf(x)); }
// Phi(x) + x * phi(x)
template <typename C> GA_FN C gelu_der(C x) {
    return gelu_cdf(x) + mul0(x, C(INV_SQRT_2PI) * exp(C(-0.5) * x * x));
}

// 2u, u = sqrt(2/pi)(x + 0.044715 x^3): 0.5(1 + tanh u) = sigmoid(2u)
template <typename C> GA_FN C gelu_tanh_arg(C x) {
    return C(2) * C(SQRT_2_OVER_PI) * (x + C(GELU_TANH_C) * x * x * x);
}
template <typename C> GA_FN C gelu_tanh_fwd(C x) { return mul0(x, sigmoid_fwd(gelu_tanh_arg(x))); }
// sigmoid(2u) + x * sigmoid'(2u) * d(2u)/dx
template <typename C> GA_FN C gelu_tanh_der(C x) {
    C v = gelu_tanh_arg(x);
    C dv = C(2) * C(SQRT_2_OVER_PI) * (C(1) + C(3) * C(GELU_TANH_C) * x * x);
    return sigmoid_fwd(v) + mul0(x * dv, sigmoid_der(v));
}

// beta*x, with beta == 0 giving 0 even at x = +-inf (and NaN at NaN)
template <typename C> GA_FN C swish_arg(C x, C beta) { return beta != C(0) ? beta * x : (x == x ? C(0) : x); }
template <typename C> GA_FN C swish_fwd(C x, C beta) { return mul0(x, sigmoid_fwd(swish_arg(x, beta))); }
// s + beta x s(1-s), s = sigmoid(beta x)
template <typename C> GA_FN C swish_der(C x, C beta) {
    C bx = swish_arg(x, beta);
    return sigmoid_fwd(bx) + mul0(x, beta * sigmoid_der(bx));
}

template <typename C> GA_FN C silu_fwd(C x) { return swish_fwd(x, C(1)); }
template <typename C> GA_FN C silu_der(C x) { return swish_der(x, C(1)); }

// tanh(softplus x) = n(n+2)/(n(n+2)+2), n = e^x
template <typename C> GA_FN C mish_tsp(C x) {
    if (x > C(MISH_LINEAR)) return C(1);
    C n = exp(x);
    C q = n * (n + C(2));
    return q / (q + C(2));
}
template <typename C> GA_FN C mish_fwd(C x) { return mul0(x, mish_tsp(x)); }
// t + x sigmoid(x) sech^2(softplus x), sech^2(sp) = 4q/(q+1)^2 with q = (1+e^x)^2
template <typename C> GA_FN C mish_der(C x) {
    if (x > C(MISH_LINEAR)) return C(1);
    C q = (C(1) + exp(x)) * (C(1) + exp(x));
    return mish_tsp(x) + mul0(x, sigmoid_fwd(x) * C(4) * q / ((q + C(1)) * (q + C(1))));
}

// relu6(x + 3)/6
template <typename C> GA_FN C hardsigmoid_fwd(C x) {
    if (x <= C(-3)) return C(0);
    return x >= C(3) ? C(1) : x / C(6) + C(0.5);
}
template <typename C> GA_FN C hardsigmoid_der(C x) {
    if (x <= C(-3) || x >= C(3)) return C(0);
    return x == x ? C(1.0 / 6.0) : x;
}

// x relu6(x + 3)/6
template <typename C> GA_FN C hardswish_fwd(C x) {
    if (x <= C(-3)) return C(0);
    return x >= C(3) ? x : x * (x + C(3)) / C(6);
}
// 0 up to -3, x/3 + 1/2 strictly inside (-3, 3), 1 from 3
template <typename C> GA_FN C hardswish_der(C x) {
    if (x <= C(-3)) return C(0);
    if (x < C(3)) return x / C(3) + C(0.5);
    return x >= C(3) ? C(1) : x;
}

// x/(1+|x|), +-1 at +-inf
template <typename C> GA_FN C softsign_fwd(C x) { return is_inf(x) ? copysign(C(1), x) : x / (C(1) + fabs(x)); }
template <typename C> GA_FN C softsign_der(C x) {
    C d = C(1) + fabs(x);
    return C(1) / (d * d);
}

// -softplus(-x) = min(x,0) - log1p(e^-|x|)
template <typename C> GA_FN C logsigmoid_fwd(C x) { return py_min(x, C(0)) - log1p(exp(-fabs(x))); }
template <typename C> GA_FN C logsigmoid_der(C x) { return sigmoid_fwd(-x); }

template <typename C> GA_FN C rrelu_eval_fwd(C x, C lower, C upper) { return leaky_relu_fwd(x, C(0.5) * (lower + upper)); }
template <typename C> GA_FN C rrelu_eval_der(C x, C lower, C upper) { return leaky_relu_der(x, C(0.5) * (lower + upper)); }

// ------------------------------------------------ rrelu's counter-based generator
// splitmix64 finalizer, arithmetic mod 2**64
GA_FN u64 mix64(u64 z) {
    z = z + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// slope ~ U(lower, upper) for flat element `index`; key = mix64(seed). The
// uniform is a double, as Python's float(): the sum is double, rounded by the caller.
template <typename C> GA_FN double rrelu_slope(u64 key, u64 index, C lower, C upper) {
    double u = double(mix64(key + index) >> 11) * 1.1102230246251565e-16;  // 2**-53
    return lower + (upper - lower) * u;
}

}  // namespace ga
