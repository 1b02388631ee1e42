"""Scalar formulas: the one definition of every activation and its derivative.

Plain Python on floats, using only the toolbox names imported below and the
helpers defined in this module. Each backend compiles these functions for its
target (Numba CPU, Numba CUDA device functions) through ``gpu_act._compile``,
which rebinds the names to the target's versions and, for float32 work, retypes
the float literals so nothing is promoted to float64. No NumPy inside.

Conventions kept by every function here:
- NaN in gives NaN out, for forward and derivative alike (piecewise functions
  test ``x > a`` / ``x <= a`` and fall through to ``x`` when both are false);
- at +-inf the mathematical limit is returned (``mul0`` gives ``x * f`` its
  limit 0 when ``f`` decays to 0 faster than ``x`` grows);
- derivatives at kinks follow PyTorch.
"""

from math import copysign, erfc, exp, expm1, isinf, log, log1p, sqrt, tanh

SQRT1_2 = 0.7071067811865476  # 1/sqrt(2)
INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2*pi)
SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2/pi)
GELU_TANH_C = 0.044715
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
MISH_LINEAR = 20.0  # above this, tanh(softplus(x)) == 1 to the last bit in float64


# ---------------------------------------------------------------- helpers
def mul0(x, f):
    # x * f with the limit 0 where f == 0 (so +-inf * 0 -> 0); NaN still propagates
    return 0.0 if f == 0.0 else x * f


def sigmoid_fwd(x):
    # 1/(1+e^-x) via e = exp(-|x|): never overflows
    e = exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


def sigmoid_der(x):
    # s(1-s) = e/(1+e)^2 with e = exp(-|x|), symmetric and exact in both tails
    e = exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return e * r * r


def leaky_relu_fwd(x, negative_slope):
    return x if x > 0.0 else x * negative_slope


def leaky_relu_der(x, negative_slope):
    # PyTorch: slope at 0
    if x > 0.0:
        return 1.0
    if x <= 0.0:
        return negative_slope
    return x


def leaky_relu_slope_der(x, negative_slope):
    # d/d(slope) of leaky_relu: x where x <= 0 (PReLU's weight gradient)
    return 0.0 if x > 0.0 else x


def softplus_fwd(x, beta, threshold):
    # linear above threshold; else (max(bx,0) + log1p(e^-|bx|))/beta, overflow-free
    bx = beta * x
    if bx > threshold:
        return x
    return (max(bx, 0.0) + log1p(exp(-abs(bx)))) / beta


def softplus_der(x, beta, threshold):
    bx = beta * x
    return 1.0 if bx > threshold else sigmoid_fwd(bx)


# ---------------------------------------------------------------- activations
def tanh_fwd(x):
    return tanh(x)


def tanh_der(x):
    # sech^2 x = 4e/(1+e)^2 with e = exp(-2|x|): accurate in the tails
    e = exp(-2.0 * abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def relu_fwd(x):
    return 0.0 if x <= 0.0 else x


def relu_der(x):
    # PyTorch: 0 at x == 0
    if x > 0.0:
        return 1.0
    if x <= 0.0:
        return 0.0
    return x


def hardtanh_fwd(x, min_val, max_val):
    if x <= min_val:
        return min_val
    return max_val if x >= max_val else x


def hardtanh_der(x, min_val, max_val):
    # PyTorch: 0 at both ends
    if x <= min_val or x >= max_val:
        return 0.0
    return 1.0 if x == x else x


def relu6_fwd(x):
    return hardtanh_fwd(x, 0.0, 6.0)


def relu6_der(x):
    return hardtanh_der(x, 0.0, 6.0)


def elu_fwd(x, alpha):
    # x > 0: x ; else alpha*(e^x - 1)
    return x if x > 0.0 else alpha * expm1(x)


def elu_der(x, alpha):
    # PyTorch: alpha at 0
    return 1.0 if x > 0.0 else alpha * exp(x)


def selu_fwd(x):
    return SELU_SCALE * elu_fwd(x, SELU_ALPHA)


def selu_der(x):
    return SELU_SCALE * elu_der(x, SELU_ALPHA)


def celu_fwd(x, alpha):
    # x > 0: x ; else alpha*(e^(x/alpha) - 1)
    return x if x > 0.0 else alpha * expm1(x / alpha)


def celu_der(x, alpha):
    # 1 at 0, as PyTorch
    return 1.0 if x > 0.0 else exp(x / alpha)


def gelu_cdf(x):
    # Phi(x) = erfc(-x/sqrt 2)/2: no cancellation for x << 0
    return 0.5 * erfc(-x * SQRT1_2)


def gelu_fwd(x):
    # x * Phi(x)
    return mul0(x, gelu_cdf(x))


def gelu_der(x):
    # Phi(x) + x * phi(x)
    return gelu_cdf(x) + mul0(x, INV_SQRT_2PI * exp(-0.5 * x * x))


def gelu_tanh_arg(x):
    # 2u with u = sqrt(2/pi)(x + 0.044715 x^3): 0.5(1 + tanh u) = sigmoid(2u)
    return 2.0 * SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)


def gelu_tanh_fwd(x):
    # 0.5 x (1 + tanh u) = x * sigmoid(2u)
    return mul0(x, sigmoid_fwd(gelu_tanh_arg(x)))


def gelu_tanh_der(x):
    # sigmoid(2u) + x * sigmoid'(2u) * d(2u)/dx
    v = gelu_tanh_arg(x)
    dv = 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x)
    return sigmoid_fwd(v) + mul0(x * dv, sigmoid_der(v))


def swish_arg(x, beta):
    # beta*x, with beta == 0 giving 0 even at x = +-inf (and NaN at NaN)
    if beta != 0.0:
        return beta * x
    return 0.0 if x == x else x


def swish_fwd(x, beta):
    # x * sigmoid(beta x)
    return mul0(x, sigmoid_fwd(swish_arg(x, beta)))


def swish_der(x, beta):
    # s + beta x s(1-s), s = sigmoid(beta x)
    bx = swish_arg(x, beta)
    return sigmoid_fwd(bx) + mul0(x, beta * sigmoid_der(bx))


def silu_fwd(x):
    return swish_fwd(x, 1.0)


def silu_der(x):
    return swish_der(x, 1.0)


def mish_tsp(x):
    # tanh(softplus x) = n(n+2)/(n(n+2)+2), n = e^x
    if x > MISH_LINEAR:
        return 1.0
    n = exp(x)
    q = n * (n + 2.0)
    return q / (q + 2.0)


def mish_fwd(x):
    # x * tanh(softplus x)
    return mul0(x, mish_tsp(x))


def mish_der(x):
    # t + x sigmoid(x) sech^2(softplus x), sech^2(sp) = 4q/(q+1)^2 with q = (1+e^x)^2
    if x > MISH_LINEAR:
        return 1.0
    q = (1.0 + exp(x)) * (1.0 + exp(x))
    return mish_tsp(x) + mul0(x, sigmoid_fwd(x) * 4.0 * q / ((q + 1.0) * (q + 1.0)))


def hardsigmoid_fwd(x):
    # relu6(x + 3)/6
    if x <= -3.0:
        return 0.0
    return 1.0 if x >= 3.0 else x / 6.0 + 0.5


def hardsigmoid_der(x):
    # 1/6 strictly inside (-3, 3), 0 at the ends (PyTorch)
    if x <= -3.0 or x >= 3.0:
        return 0.0
    return 1.0 / 6.0 if x == x else x


def hardswish_fwd(x):
    # x relu6(x + 3)/6
    if x <= -3.0:
        return 0.0
    return x if x >= 3.0 else x * (x + 3.0) / 6.0


def hardswish_der(x):
    # PyTorch (since 2.7): 0 up to -3, x/3 + 1/2 strictly inside (-3, 3), 1 from 3
    if x <= -3.0:
        return 0.0
    if x < 3.0:
        return x / 3.0 + 0.5
    return 1.0 if x >= 3.0 else x


def softsign_fwd(x):
    # x/(1+|x|), +-1 at +-inf
    return copysign(1.0, x) if isinf(x) else x / (1.0 + abs(x))


def softsign_der(x):
    d = 1.0 + abs(x)
    return 1.0 / (d * d)


def logsigmoid_fwd(x):
    # -softplus(-x) = min(x,0) - log1p(e^-|x|)
    return min(x, 0.0) - log1p(exp(-abs(x)))


def logsigmoid_der(x):
    return sigmoid_fwd(-x)


def rrelu_eval_fwd(x, lower, upper):
    return leaky_relu_fwd(x, 0.5 * (lower + upper))


def rrelu_eval_der(x, lower, upper):
    return leaky_relu_der(x, 0.5 * (lower + upper))


# ---------------------------------------------------------------- rrelu's counter-based generator
MASK64 = 0xFFFFFFFFFFFFFFFF


def mix64(z):
    # splitmix64 finalizer, arithmetic mod 2**64 (the masks, MASK64 written out,
    # are no-ops on uint64; numba-cuda-mlir cannot lower a global above 2**63)
    z = (z + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def rrelu_slope(key, index, lower, upper):
    # slope ~ U(lower, upper) for flat element `index`; key = mix64(seed); both uint64
    u = float(mix64((key + index) & 0xFFFFFFFFFFFFFFFF) >> 11) * 1.1102230246251565e-16  # 2**-53
    return lower + (upper - lower) * u


# ---------------------------------------------------------------- binary cross-entropy
# On logits z with target t, weight w and positive weight pw, write a = w (1 - t)
# and b = w pw t: loss = a softplus(z) + b softplus(-z) (PyTorch's
# (1 - t) z + (1 + (pw - 1) t) softplus(-z), times w, since z + softplus(-z) =
# softplus(z)), two terms that never cancel for a, b >= 0; gradient
# (a + b) sigmoid(z) - b. softplus(+-z) = max(+-z, 0) + log1p(e^-|z|) never
# overflows; a term whose factor is 0 is 0 even at z = +-inf (mul0).
def bce_logits_fwd(z, t, w, pw):
    if z != z:
        return z  # NaN, even where a weight of 0 would drop the term
    a = w * (1.0 - t)
    b = w * pw * t
    l = log1p(exp(-abs(z)))
    pos = z if z > 0.0 else 0.0
    neg = -z if z < 0.0 else 0.0
    return mul0(pos + l, a) + mul0(neg + l, b)


def bce_logits_der(z, t, w, pw):
    b = w * pw * t
    return (w * (1.0 - t) + b) * sigmoid_fwd(z) - b


# On probabilities p: -w [t log p + (1 - t) log(1 - p)], each log clamped at
# -100 as PyTorch (p = 0 or 1 gives a finite loss); NaN for p outside [0, 1].
# Gradient w (p - t) / max(p (1 - p), 1e-12), PyTorch's.
BCE_LOG_MIN = -100.0
BCE_EPS = 1e-12
NAN = float("nan")


def bce_fwd(p, t, w):
    if p >= 0.0 and p <= 1.0:
        lp = log(p) if p > 0.0 else BCE_LOG_MIN
        lq = log1p(-p) if p < 1.0 else BCE_LOG_MIN
        lp = lp if lp > BCE_LOG_MIN else BCE_LOG_MIN
        lq = lq if lq > BCE_LOG_MIN else BCE_LOG_MIN
        return -w * (t * lp + (1.0 - t) * lq)
    return NAN  # p outside [0, 1], or NaN


def bce_der(p, t, w):
    if p >= 0.0 and p <= 1.0:
        d = p * (1.0 - p)
        return w * (p - t) / (d if d > BCE_EPS else BCE_EPS)
    return NAN
