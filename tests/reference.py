"""Independent NumPy float64 reference implementations for the gpu_act test suite.

Everything here is written from the mathematical definitions (PyTorch semantics where
the issue says so); nothing is imported from ``gpu_act``.  All functions

* upcast their inputs to float64 and return float64 arrays (callers cast / compare with
  the per-dtype tolerance table in ``tolerances.py``),
* use overflow-safe forms (``np.logaddexp``, ``scipy.special.expit`` / ``log_expit`` /
  ``ndtr``) and return the exact limits at +-inf,
* return NaN wherever ``x`` is NaN (forward and derivative),
* silence floating-point warnings internally with ``np.errstate``.

Elementwise derivatives ``d_NAME(x, ...)`` return dNAME/dx; ``NAME_backward(g, x, ...)``
returns ``g * dNAME/dx``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = [
    "ELEMENTWISE",
    "SELU_SCALE",
    "SELU_ALPHA",
    "forward",
    "derivative",
    "backward",
    "softmax",
    "log_softmax",
    "softmax_backward",
    "log_softmax_backward",
    "softmin",
    "softmin_backward",
    "logsumexp",
    "logsumexp_backward",
    "glu",
    "glu_backward",
    "masked_softmax",
    "masked_log_softmax",
    "masked_softmax_backward",
    "masked_log_softmax_backward",
    "masked_cross_entropy",
    "cross_entropy",
    "maxout",
    "maxout_backward",
    "prelu",
    "prelu_backward",
    "rrelu",
    "rrelu_backward",
    "rrelu_slopes",
    "mix64",
]

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _nan_where_x_nan(x, r):
    r = np.asarray(r, dtype=np.float64)
    return np.where(np.isnan(x), np.nan, r)


# ---------------------------------------------------------------------------------------
# elementwise forward functions f(x, **params) and derivatives df(x, **params)
# ---------------------------------------------------------------------------------------

def _sigmoid(x):
    return special.expit(x)


def _d_sigmoid(x):
    # s * (1 - s) written as expit(x) * expit(-x): accurate in both tails, 0 at +-inf
    return special.expit(x) * special.expit(-x)


def _tanh(x):
    return np.tanh(x)


def _d_tanh(x):
    # 1 - tanh^2 = sech^2; cosh overflows to inf for |x| > ~710 -> 0 (the exact limit)
    return 1.0 / np.cosh(x) ** 2


def _relu(x):
    return np.where(x > 0, x, 0.0)


def _d_relu(x):
    return np.where(x > 0, 1.0, 0.0)  # relu'(0) = 0


def _relu6(x):
    return np.where(x > 6, 6.0, np.where(x > 0, x, 0.0))


def _d_relu6(x):
    return np.where((x > 0) & (x < 6), 1.0, 0.0)  # 0 at both kinks


def _leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, x, negative_slope * x)


def _d_leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, 1.0, negative_slope)  # slope at 0


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _d_elu(x, alpha=1.0):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))  # alpha at 0


def _selu(x):
    return SELU_SCALE * _elu(x, SELU_ALPHA)


def _d_selu(x):
    return SELU_SCALE * _d_elu(x, SELU_ALPHA)


def _celu(x, alpha=1.0):
    # max(0, x) + min(0, alpha * (exp(x/alpha) - 1)) == x for x > 0, alpha*expm1(x/alpha)
    # for x <= 0 (for either sign of alpha)
    neg = alpha * np.expm1(np.where(x > 0, 0.0, x) / alpha)
    return np.where(x > 0, x, neg)


def _d_celu(x, alpha=1.0):
    return np.where(x > 0, 1.0, np.exp(np.where(x > 0, 0.0, x) / alpha))  # 1 at 0


def _gelu(x, approximate="none"):
    if approximate == "none":
        # 0.5 * x * (1 + erf(x/sqrt2)) == x * Phi(x); ndtr is accurate in the left tail
        r = x * special.ndtr(x)
    elif approximate == "tanh":
        # 0.5 * x * (1 + tanh(u)) == x * expit(2u)
        u = _SQRT_2_OVER_PI * (x + _GELU_C * x ** 3)
        r = x * special.expit(2.0 * u)
    else:  # pragma: no cover - reference misuse
        raise ValueError(approximate)
    r = np.where(x == np.inf, np.inf, r)
    return np.where(x == -np.inf, 0.0, r)


def _d_gelu(x, approximate="none"):
    if approximate == "none":
        r = special.ndtr(x) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    elif approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + _GELU_C * x ** 3)
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)
        s = special.expit(2.0 * u)
        # d/dx [x * expit(2u)] = s + x * 2u' * s * (1 - s), (1 - s) = expit(-2u)
        r = s + 2.0 * x * du * s * special.expit(-2.0 * u)
        # For |x| > 50 the correction term is exactly 0 in float64 (exp(-2|u|) with
        # |u| > 4000 underflows); avoid inf*0 for huge |x|.
        r = np.where(np.abs(x) > 50, np.where(x > 0, 1.0, 0.0), r)
    else:  # pragma: no cover
        raise ValueError(approximate)
    r = np.where(x == np.inf, 1.0, r)
    return np.where(x == -np.inf, 0.0, r)


def _swish(x, beta=1.0):
    if beta == 0:
        return 0.5 * x  # beta * x would be 0 * inf = NaN at +-inf
    r = x * special.expit(beta * x)
    if beta > 0:
        r = np.where(x == -np.inf, 0.0, r)
    elif beta < 0:
        r = np.where(x == np.inf, 0.0, r)
    return r


def _d_swish(x, beta=1.0):
    if beta == 0:
        return np.full(x.shape, 0.5)
    bx = beta * x
    s = special.expit(bx)
    r = s + bx * s * special.expit(-bx)
    # beta*x may overflow (|x| near the float64 max); the correction term is 0 there
    r = np.where(bx > 1e3, 1.0, np.where(bx < -1e3, 0.0, r))
    inf_hi = 1.0 if beta > 0 else (0.0 if beta < 0 else 0.5)
    inf_lo = 0.0 if beta > 0 else (1.0 if beta < 0 else 0.5)
    r = np.where(x == np.inf, inf_hi, r)
    return np.where(x == -np.inf, inf_lo, r)


def _silu(x):
    return _swish(x, 1.0)


def _d_silu(x):
    return _d_swish(x, 1.0)


def _softplus_raw(x):
    return np.logaddexp(0.0, x)  # log(1 + exp(x)) without overflow


def _mish(x):
    r = x * np.tanh(_softplus_raw(x))
    return np.where(x == -np.inf, 0.0, r)


def _d_mish(x):
    sp = _softplus_raw(x)
    t = np.tanh(sp)
    sech2 = 1.0 / np.cosh(sp) ** 2
    r = t + x * sech2 * special.expit(x)
    r = np.where(x == np.inf, 1.0, r)
    return np.where(x == -np.inf, 0.0, r)


def _softplus(x, beta=1.0, threshold=20.0):
    bx = beta * x
    return np.where(bx > threshold, x, _softplus_raw(bx) / beta)


def _d_softplus(x, beta=1.0, threshold=20.0):
    bx = beta * x
    return np.where(bx > threshold, 1.0, special.expit(bx))


def _hardsigmoid(x):
    return _relu6(x + 3.0) / 6.0


def _d_hardsigmoid(x):
    return np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)


def _hardswish(x):
    r = x * _relu6(x + 3.0) / 6.0
    # x * 6 overflows for x near the float64 maximum: hardswish(x) == x for x >= 3
    r = np.where(x >= 3, x, r)
    return np.where(x == -np.inf, 0.0, r)


def _d_hardswish(x):
    # PyTorch >= 2.7 (pytorch/pytorch#148049): 0 at x = -3, 1 at x = 3
    return np.where(x <= -3, 0.0, np.where(x < 3, x / 3.0 + 0.5, 1.0))


def _hardtanh(x, min_val=-1.0, max_val=1.0):
    return np.where(x < min_val, min_val, np.where(x > max_val, max_val, x))


def _d_hardtanh(x, min_val=-1.0, max_val=1.0):
    return np.where((x > min_val) & (x < max_val), 1.0, 0.0)


def _softsign(x):
    r = x / (1.0 + np.abs(x))
    return np.where(np.isinf(x), np.sign(x), r)


def _d_softsign(x):
    return 1.0 / (1.0 + np.abs(x)) ** 2


def _logsigmoid(x):
    return special.log_expit(x)


def _d_logsigmoid(x):
    return special.expit(-x)


ELEMENTWISE = {
    "sigmoid": (_sigmoid, _d_sigmoid),
    "tanh": (_tanh, _d_tanh),
    "relu": (_relu, _d_relu),
    "relu6": (_relu6, _d_relu6),
    "leaky_relu": (_leaky_relu, _d_leaky_relu),
    "elu": (_elu, _d_elu),
    "selu": (_selu, _d_selu),
    "celu": (_celu, _d_celu),
    "gelu": (_gelu, _d_gelu),
    "silu": (_silu, _d_silu),
    "swish": (_swish, _d_swish),
    "mish": (_mish, _d_mish),
    "softplus": (_softplus, _d_softplus),
    "hardsigmoid": (_hardsigmoid, _d_hardsigmoid),
    "hardswish": (_hardswish, _d_hardswish),
    "hardtanh": (_hardtanh, _d_hardtanh),
    "softsign": (_softsign, _d_softsign),
    "logsigmoid": (_logsigmoid, _d_logsigmoid),
}


def forward(name, x, **params):
    """Reference forward of elementwise activation ``name`` (float64 result)."""
    x = _f64(x)
    with np.errstate(all="ignore"):
        r = ELEMENTWISE[name][0](x, **params)
        return _nan_where_x_nan(x, r)


def derivative(name, x, **params):
    """Reference dNAME/dx (float64), NaN where x is NaN."""
    x = _f64(x)
    with np.errstate(all="ignore"):
        r = ELEMENTWISE[name][1](x, **params)
        return _nan_where_x_nan(x, np.broadcast_to(r, x.shape))


def backward(name, grad_output, x, **params):
    """Reference grad_output * dNAME/dx (float64)."""
    g = _f64(grad_output)
    with np.errstate(all="ignore"):
        return g * derivative(name, x, **params)


# ---------------------------------------------------------------------------------------
# softmax family
# ---------------------------------------------------------------------------------------

def _rowwise_prepare(x, axis):
    """Return (x as float64 with >= 1 dim, normalized axis, original 0-d flag)."""
    x = _f64(x)
    if x.ndim == 0:
        if axis not in (0, -1):
            raise np.exceptions.AxisError(axis, 0)
        return x.reshape(1), 0, True
    axis = _norm_axis(axis, x.ndim)
    return x, axis, False


def _norm_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _softmax_parts(x, axis, temperature):
    z = x / temperature
    m = np.max(z, axis=axis, keepdims=True)  # NaN if the row holds a NaN
    ok = np.isfinite(m)  # False for rows with NaN, +inf, or all -inf
    shifted = z - np.where(ok, m, 0.0)
    e = np.exp(shifted)  # -inf entries -> 0
    s = np.sum(e, axis=axis, keepdims=True)
    return shifted, e, s, ok


def softmax(x, axis=-1, temperature=1.0):
    xx, ax, zero_d = _rowwise_prepare(x, axis)
    if xx.size == 0:
        return np.empty(xx.shape, np.float64)
    with np.errstate(all="ignore"):
        shifted, e, s, ok = _softmax_parts(xx, ax, temperature)
        y = np.where(ok, e / s, np.nan)
    return y.reshape(()) if zero_d else y


def log_softmax(x, axis=-1, temperature=1.0):
    xx, ax, zero_d = _rowwise_prepare(x, axis)
    if xx.size == 0:
        return np.empty(xx.shape, np.float64)
    with np.errstate(all="ignore"):
        shifted, e, s, ok = _softmax_parts(xx, ax, temperature)
        y = np.where(ok, shifted - np.log(s), np.nan)
    return y.reshape(()) if zero_d else y


def softmax_backward(grad_output, output, axis=-1, temperature=1.0):
    """y * (g - sum(g * y)) / T."""
    g = _f64(grad_output)
    y = _f64(output)
    gg, ax, zero_d = _rowwise_prepare(g, axis)
    yy = y.reshape(gg.shape)
    if gg.size == 0:
        return np.empty(gg.shape, np.float64)
    with np.errstate(all="ignore"):
        dot = np.sum(gg * yy, axis=ax, keepdims=True)
        r = yy * (gg - dot) / temperature
    return r.reshape(()) if zero_d else r


def log_softmax_backward(grad_output, output, axis=-1, temperature=1.0):
    """(g - exp(y) * sum(g)) / T."""
    g = _f64(grad_output)
    y = _f64(output)
    gg, ax, zero_d = _rowwise_prepare(g, axis)
    yy = y.reshape(gg.shape)
    if gg.size == 0:
        return np.empty(gg.shape, np.float64)
    with np.errstate(all="ignore"):
        sg = np.sum(gg, axis=ax, keepdims=True)
        r = (gg - np.exp(yy) * sg) / temperature
    return r.reshape(()) if zero_d else r


def softmin(x, axis=-1, temperature=1.0):
    """softmin(x/T) = softmax(-x/T) (PyTorch's softmin)."""
    return softmax(-_f64(x), axis, temperature)


def softmin_backward(grad_output, output, axis=-1, temperature=1.0):
    """d/dx of softmax(-x/T) from its output y: -y * (g - sum(g * y)) / T."""
    return -softmax_backward(grad_output, output, axis, temperature)


def _mask_of(mask, x, zero_d):
    """The mask broadcast to x's (prepared) shape, all True without one."""
    if mask is None:
        return np.ones(x.shape, bool)
    m = np.asarray(mask, bool)
    return np.broadcast_to(m.reshape(m.shape or (1,)) if zero_d else m, x.shape)


def logsumexp(x, axis=-1, keepdims=False, temperature=1.0, mask=None):
    """T log sum_j exp(x_j / T) along ``axis``, as m + T log sum exp((x - m)/T) with m
    the row max; SciPy's special values: NaN in the row -> NaN, else +inf -> +inf,
    only -inf (or no entry) -> -inf. A 0-d x is a row of one element. ``mask``: only
    its True entries are in the row."""
    xx, ax, zero_d = _rowwise_prepare(x, axis)
    mk = _mask_of(mask, xx, zero_d)
    with np.errstate(all="ignore"):
        m = np.max(xx, axis=ax, keepdims=True, initial=-np.inf, where=mk)  # NaN where the row holds one
        ok = np.isfinite(m)
        ms = np.where(ok, m, 0.0)
        s = np.sum(np.where(mk, np.exp((xx - ms) / temperature), 0.0), axis=ax, keepdims=True)
        r = np.where(ok, ms + temperature * np.log(s), m)
    if zero_d:
        return r.reshape(())
    return r if keepdims else np.squeeze(r, axis=ax)


def logsumexp_backward(grad_output, x, result, axis=-1, keepdims=False, temperature=1.0, mask=None):
    """g * softmax(x/T) written as g * exp((x - result)/T), g and result broadcast along
    ``axis``; NaN along a row whose result is not finite (its softmax is NaN); 0 at
    the entries ``mask`` leaves out."""
    xx, ax, zero_d = _rowwise_prepare(x, axis)
    mk = _mask_of(mask, xx, zero_d)
    g, r = _f64(grad_output), _f64(result)
    if not zero_d and not keepdims:
        g, r = np.expand_dims(g, ax), np.expand_dims(r, ax)
    g, r = g.reshape(g.shape or (1,)), r.reshape(r.shape or (1,))
    with np.errstate(all="ignore"):
        d = np.where(mk, np.where(np.isfinite(r), g * np.exp((xx - r) / temperature), np.nan), 0.0)
    return d.reshape(()) if zero_d else d


# ---------------------------------------------------------------------------------------
# masked softmax family and cross entropy (JAX's where=): only the True entries of the
# mask are in a row; the others get probability 0 (log-probability -inf) and gradient 0,
# and a row with none is all 0 (-inf)
# ---------------------------------------------------------------------------------------

def _masked_parts(x, mask, axis, temperature):
    xx, ax, zero_d = _rowwise_prepare(x, axis)
    mk = _mask_of(mask, xx, zero_d)
    z = xx / temperature
    m = np.max(z, axis=ax, keepdims=True, initial=-np.inf, where=mk)
    ok = np.isfinite(m)  # False: a NaN or +inf among the row's entries, only -inf, or none
    shifted = z - np.where(ok, m, 0.0)
    e = np.where(mk, np.exp(shifted), 0.0)
    s = np.sum(e, axis=ax, keepdims=True)
    return shifted, e, s, ok, mk, zero_d


def masked_softmax(x, mask, axis=-1, temperature=1.0):
    with np.errstate(all="ignore"):
        shifted, e, s, ok, mk, zero_d = _masked_parts(x, mask, axis, temperature)
        y = np.where(mk, np.where(ok, e / s, np.nan), 0.0)
    return y.reshape(()) if zero_d else y


def masked_log_softmax(x, mask, axis=-1, temperature=1.0):
    with np.errstate(all="ignore"):
        shifted, e, s, ok, mk, zero_d = _masked_parts(x, mask, axis, temperature)
        y = np.where(mk, np.where(ok, shifted - np.log(s), np.nan), -np.inf)
    return y.reshape(()) if zero_d else y


def masked_softmax_backward(grad_output, output, mask, axis=-1, temperature=1.0):
    """y (g - sum(g y)) / T over the row's entries; 0 at masked ones."""
    gg, ax, zero_d = _rowwise_prepare(grad_output, axis)
    yy = _f64(output).reshape(gg.shape)
    mk = _mask_of(mask, gg, zero_d)
    with np.errstate(all="ignore"):
        dot = np.sum(np.where(mk, gg * yy, 0.0), axis=ax, keepdims=True)
        r = np.where(mk, yy * (gg - dot) / temperature, 0.0)
    return r.reshape(()) if zero_d else r


def masked_log_softmax_backward(grad_output, output, mask, axis=-1, temperature=1.0):
    """(g - exp(y) sum(g)) / T over the row's entries; 0 at masked ones."""
    gg, ax, zero_d = _rowwise_prepare(grad_output, axis)
    yy = _f64(output).reshape(gg.shape)
    mk = _mask_of(mask, gg, zero_d)
    with np.errstate(all="ignore"):
        sg = np.sum(np.where(mk, gg, 0.0), axis=ax, keepdims=True)
        r = np.where(mk, (gg - np.exp(yy) * sg) / temperature, 0.0)
    return r.reshape(()) if zero_d else r


def masked_cross_entropy(logits, target, mask, axis=-1, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                         weight=None, z_loss=0.0, softcap=None):
    """(loss, grad, lse) in float64 with a class mask: a row's classes are its True
    entries, C' of them: the softmax runs over them (log-probability -inf at the
    others), label smoothing gives eps/C' to each of them, target mass on a masked
    class costs +inf, masked classes get gradient 0; a row with no True entry is
    ignored (loss and gradient 0, not counted by "mean", lse -inf)."""
    z = _f64(logits)
    ax = _norm_axis(axis, z.ndim)
    zl = np.moveaxis(z, ax, -1)
    mk = np.moveaxis(np.broadcast_to(np.asarray(mask, bool), z.shape), ax, -1)
    count = mk.sum(axis=-1)
    live = count > 0
    eps = float(label_smoothing)
    w = np.ones(zl.shape[-1]) if weight is None else _f64(weight)
    target = np.asarray(target)
    with np.errstate(all="ignore"):
        if softcap is not None:
            th = np.tanh(zl / softcap)
            v, dv = softcap * th, 1.0 - th * th
        else:
            v, dv = zl, 1.0
        m = np.max(v, axis=-1, keepdims=True, initial=-np.inf, where=mk)
        ok = np.isfinite(m)
        ms = np.where(ok, m, 0.0)
        e = np.where(mk, np.exp(v - ms), 0.0)
        s = np.sum(e, axis=-1, keepdims=True)
        log_s = np.log(s)
        soft = np.where(mk, np.where(ok, e / s, np.nan), 0.0)
        lse = np.where(live, np.where(ok[..., 0], (ms + log_s)[..., 0], np.nan), -np.inf)
        base = np.where(live, eps / count, 0.0)[..., None] * mk
        if np.issubdtype(target.dtype, np.integer):
            t = target.astype(np.int64)
            valid = (t != ignore_index) & live
            tc = np.where(t != ignore_index, t, 0)
            onehot = np.zeros(zl.shape)
            np.put_along_axis(onehot, tc[..., None], 1.0, axis=-1)
            q = np.where(valid[..., None], (1.0 - eps) * onehot * w[tc][..., None] + base * w, 0.0)
            denom = float(np.sum(np.where(valid, w[tc], 0.0)))
        else:
            tq = np.moveaxis(_f64(target), ax, -1)
            valid = live
            q = np.where(valid[..., None], w * ((1.0 - eps) * tq + base), 0.0)
            denom = float(np.sum(valid))
        # -log p_c: (m - v_c) + log s on the row's classes, +inf on masked ones
        terms = np.where(q == 0, 0.0, q * np.where(mk, (ms - v) + log_s, np.inf))
        row_loss = np.sum(terms, axis=-1) + (z_loss * lse**2 if z_loss else 0.0)
        row_loss = np.where(valid, np.where(ok[..., 0], row_loss, np.nan), 0.0)
        row_grad = soft * (np.sum(q, axis=-1, keepdims=True) + 2.0 * z_loss * lse[..., None]) - q
        row_grad = np.where(mk & valid[..., None], row_grad * dv, 0.0)
        if reduction == "none":
            loss, scale = row_loss, 1.0
        elif reduction == "sum":
            loss, scale = np.asarray(np.sum(row_loss)), 1.0
        else:
            loss = np.asarray(np.sum(row_loss) / denom) if denom else np.asarray(np.nan)
            scale = 1.0 / denom if denom else 0.0
    return loss, np.moveaxis(row_grad * scale, -1, ax), lse


# ---------------------------------------------------------------------------------------
# gated linear units
# ---------------------------------------------------------------------------------------

def _glu_halves(x, axis):
    """(b, a, axis): the first and second halves of x along ``axis`` (PyTorch's glu
    gates the second half)."""
    x = _f64(x)
    ax = _norm_axis(axis, x.ndim)
    b, a = np.split(x, 2, axis=ax)
    return b, a, ax


def glu(x, axis=-1, activation="sigmoid", **params):
    """b * act(a) with b, a the first and second halves of x along ``axis``."""
    b, a, _ = _glu_halves(x, axis)
    with np.errstate(all="ignore"):
        return b * forward(activation, a, **params)


def glu_backward(grad_output, x, axis=-1, activation="sigmoid", **params):
    """d/dx of sum(g * glu(x)): g act(a) in b's half, g b act'(a) in a's, b's first."""
    b, a, ax = _glu_halves(x, axis)
    g = _f64(grad_output)
    with np.errstate(all="ignore"):
        return np.concatenate([g * forward(activation, a, **params), g * b * derivative(activation, a, **params)],
                              axis=ax)


# ---------------------------------------------------------------------------------------
# sparsemax
# ---------------------------------------------------------------------------------------
# Written from the definition (Martins & Astudillo 2016, Algorithm 1), by
# sorting each row, nothing imported from gpu_act: with z the row relative to
# its max, sorted in decreasing order, the support size is
# k = max{k : 1 + k z_(k) > sum_{i <= k} z_(i)}, tau = (sum_{i <= k} z_(i) - 1) / k
# and y = max(z - tau, 0). Backward: dx = g - mean of g over {y > 0} there, 0
# elsewhere. gpu_act's contract for special rows (tests/core/test_sparsemax.py
# holds them): a NaN anywhere makes the row NaN, a row of only -inf is NaN,
# -inf entries get 0, +inf entries share the mass equally (the others 0);
# backward: a NaN anywhere in g or y makes the row NaN.
#
# Inputs are upcast to float64; results are float64; a 0-d array is a row of one.

def _sparsemax_rows(a, axis):
    """``a`` in float64 with ``axis`` moved last (a 0-d array as one row of one)."""
    a = np.asarray(a, np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1), None
    return np.moveaxis(a, axis, -1), axis


def _sparsemax_back(r, axis, shape):
    return r.reshape(shape) if axis is None else np.moveaxis(r, -1, axis)


def sparsemax(x, axis=-1):
    z, ax = _sparsemax_rows(x, axis)
    shape = np.shape(x)
    if z.size == 0:
        return np.empty(shape, np.float64)
    m = z.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        # relative to the max; a row whose max is +inf keeps its +inf entries at 0, the rest at -inf
        d = np.where(np.isposinf(m), np.where(np.isposinf(z), 0.0, -np.inf), z - m)
        s = -np.sort(-d, axis=-1)
        k = np.arange(1, z.shape[-1] + 1)
        csum = np.cumsum(s, axis=-1)
        support = (1.0 + k * s > csum).sum(axis=-1, keepdims=True)
        tau = (np.take_along_axis(csum, support - 1, axis=-1) - 1.0) / support
        y = np.maximum(d - tau, 0.0)
    bad = np.isnan(z).any(axis=-1, keepdims=True) | np.isneginf(m)
    return _sparsemax_back(np.where(bad, np.nan, y), ax, shape)


def sparsemax_backward(grad_output, output, axis=-1):
    g, ax = _sparsemax_rows(grad_output, axis)
    y, _ = _sparsemax_rows(output, axis)
    shape = np.shape(output)
    if y.size == 0:
        return np.empty(shape, np.float64)
    on = y > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(on, g, 0.0).sum(axis=-1, keepdims=True) / on.sum(axis=-1, keepdims=True)
        dx = np.where(on, g - mean, 0.0)
    bad = (np.isnan(g) | np.isnan(y)).any(axis=-1, keepdims=True)
    return _sparsemax_back(np.where(bad, np.nan, dx), ax, shape)


# ---------------------------------------------------------------------------------------
# cross entropy
# ---------------------------------------------------------------------------------------

def cross_entropy(logits, target, axis=-1, reduction="mean", ignore_index=-100,
                  label_smoothing=0.0, weight=None, z_loss=0.0, softcap=None, return_lse=False):
    """Return (loss, grad) in float64, and the per-row log-sum-exp with ``return_lse``.

    loss: 0-d array for "mean"/"sum", per-row array (shape of logits without axis) for
    "none".  grad: d(reduced loss)/d logits ("none": gradient of the sum of row losses).
    ``weight``: per-class weights (PyTorch: the mean over class indices divides by the
    summed weights of the counted targets; over probabilities by the number of rows).
    ``z_loss``: z_loss * lse^2 added to each counted row. ``softcap``: the logits pass
    through softcap * tanh(z / softcap) first (the lse is the capped logits').
    """
    z = _f64(logits)
    if z.ndim == 0:
        raise ValueError("logits must have at least one dimension")
    ax = _norm_axis(axis, z.ndim)
    zl = np.moveaxis(z, ax, -1)  # (..., C)
    C = zl.shape[-1]
    target = np.asarray(target)
    eps = float(label_smoothing)
    w = np.ones(C) if weight is None else _f64(weight)
    index_mode = np.issubdtype(target.dtype, np.integer)
    with np.errstate(all="ignore"):
        if softcap is not None:
            th = np.tanh(zl / softcap)
            v, dv = softcap * th, 1.0 - th * th
        else:
            v, dv = zl, 1.0
        if zl.size == 0:
            msafe = log_s = np.zeros(zl.shape[:-1] + (1,))
            finite_row = np.ones(zl.shape[:-1], bool)
            soft = np.zeros(zl.shape)
        else:
            m = np.max(v, axis=-1, keepdims=True)
            finite_row = np.isfinite(m[..., 0])  # NaN and +inf make m NaN/+inf; all -inf makes it -inf
            msafe = np.where(np.isfinite(m), m, 0.0)
            e = np.exp(v - msafe)
            s = np.sum(e, axis=-1, keepdims=True)
            log_s = np.log(s)
            soft = e / s  # not exp(z - lse): m + log(s) may round to m for huge m
            soft = np.where(np.isfinite(m), soft, np.nan)
        lse = np.where(finite_row, (msafe + log_s)[..., 0], np.nan)
        if index_mode:
            t = target.astype(np.int64)
            valid = t != ignore_index
            tc = np.where(valid, t, 0)
            onehot = np.zeros(zl.shape)
            if zl.size:
                np.put_along_axis(onehot, tc[..., None], 1.0, axis=-1)
            q = (1.0 - eps) * onehot * w[tc][..., None] + eps / C * w
            q = np.where(valid[..., None], q, 0.0)
            denom = float(np.sum(np.where(valid, w[tc], 0.0))) if zl.size else 0.0
        else:
            tq = np.moveaxis(_f64(target), ax, -1)
            q = w * ((1.0 - eps) * tq + eps / C)
            valid = np.ones(zl.shape[:-1], dtype=bool)
            denom = float(valid.size)
        # -log softmax(z)_c = (m - z_c) + log s: never lse - z_c, which cancels for huge logits
        terms = np.where(q == 0, 0.0, q * ((msafe - v) + log_s))
        row_loss = np.sum(terms, axis=-1) + z_loss * lse**2 if z_loss else np.sum(terms, axis=-1)
        # a row with NaN or +inf, or of all -inf, has no softmax: its loss is NaN
        # (PyTorch's too), even where a +inf logit's own target is 0
        row_loss = np.where(finite_row, row_loss, np.nan)
        row_loss = np.where(valid, row_loss, 0.0)
        row_grad = soft * np.sum(q, axis=-1, keepdims=True) - q
        if z_loss:
            row_grad = row_grad + 2.0 * z_loss * lse[..., None] * soft
        row_grad = row_grad * dv
        if reduction == "none":
            loss = row_loss
            scale = 1.0
        elif reduction == "sum":
            loss = np.asarray(np.sum(row_loss))
            scale = 1.0
        elif reduction == "mean":
            loss = np.asarray(np.sum(row_loss) / denom) if denom else np.asarray(np.nan)
            scale = 1.0 / denom if denom else np.nan
        else:  # pragma: no cover
            raise ValueError(reduction)
        # ignored rows have gradient 0 even when every row is ignored (scale = NaN)
        grad = np.moveaxis(np.where(valid[..., None], row_grad * scale, 0.0), -1, ax)
    return (loss, grad, lse) if return_lse else (loss, grad)


def nll_loss(log_probs, target, axis=-1, reduction="mean", ignore_index=-100, weight=None):
    """(loss, grad) of the negative log-likelihood of class indices, in float64:
    loss_r = -w[t_r] log_probs[r, t_r]; the mean divides by the counted targets' weights."""
    lp = np.moveaxis(_f64(log_probs), _norm_axis(axis, np.ndim(log_probs)), -1)
    C = lp.shape[-1]
    w = np.ones(C) if weight is None else _f64(weight)
    t = np.asarray(target).astype(np.int64)
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    wt = np.where(valid, w[tc], 0.0)
    with np.errstate(all="ignore"):
        picked = np.take_along_axis(lp, tc[..., None], axis=-1)[..., 0] if lp.size else np.zeros(t.shape)
        row_loss = np.where(valid, -wt * picked, 0.0)
        if reduction == "none":
            loss, scale = row_loss, 1.0
        elif reduction == "sum":
            loss, scale = np.asarray(row_loss.sum()), 1.0
        else:
            denom = wt.sum()
            loss = np.asarray(row_loss.sum() / denom) if denom else np.asarray(np.nan)
            scale = 1.0 / denom if denom else np.nan
        grad = np.zeros(lp.shape)
        if lp.size:
            np.put_along_axis(grad, tc[..., None], np.where(valid, -wt * scale, 0.0)[..., None], axis=-1)
    return loss, np.moveaxis(grad, -1, _norm_axis(axis, np.ndim(log_probs)))


def _reduce(elements, reduction):
    """(loss, gradient scale) of per-element losses under ``reduction`` (mean over all elements)."""
    if reduction == "none":
        return elements, 1.0
    if reduction == "sum":
        return np.asarray(elements.sum()), 1.0
    n = elements.size
    return (np.asarray(elements.sum() / n), 1.0 / n) if n else (np.asarray(np.nan), np.nan)


def binary_cross_entropy_with_logits(logits, target, weight=None, pos_weight=None, reduction="mean"):
    """(loss, grad) in float64: w [(1 - t) z + (1 + (pw - 1) t) softplus(-z)], pos_weight
    broadcast along the last axis, weight to the logits; limits at z = +-inf; NaN
    where z is NaN (whatever the weight)."""
    z = _f64(logits)
    t = np.broadcast_to(_f64(target), z.shape)
    w = np.broadcast_to(1.0 if weight is None else _f64(weight), z.shape)
    pw = np.broadcast_to(1.0 if pos_weight is None else _f64(pos_weight), z.shape)
    L = 1.0 + (pw - 1.0) * t
    with np.errstate(all="ignore"):
        a = np.abs(z)
        # (1 - t) z for z >= 0 and -pw t z for z < 0 (the rest of softplus(-z)),
        # 0 where the factor is 0 even at z = +-inf
        lin_factor = np.where(z >= 0, 1.0 - t, pw * t)
        lin = np.where(lin_factor == 0, 0.0, lin_factor * a)
        # a weight of 0 drops the element (0, also where its loss is +inf at z = +-inf)
        elements = np.where(w == 0, 0.0, w * (lin + L * np.log1p(np.exp(-a))))
        elements = np.where(np.isnan(z), np.nan, elements)
        sig = special.expit(z)
        grad = w * (L * sig - pw * t)
    loss, scale = _reduce(elements, reduction)
    return loss, grad * scale


def binary_cross_entropy(probs, target, weight=None, reduction="mean"):
    """(loss, grad) in float64: -w [t log p + (1 - t) log(1 - p)], each log clamped at
    -100 as PyTorch; NaN where p is outside [0, 1]; grad w (p - t) / max(p (1 - p), 1e-12)."""
    p = _f64(probs)
    t = np.broadcast_to(_f64(target), p.shape)
    w = np.broadcast_to(1.0 if weight is None else _f64(weight), p.shape)
    with np.errstate(all="ignore"):
        inside = (p >= 0) & (p <= 1)
        lp = np.maximum(np.log(p), -100.0)
        l1p = np.maximum(np.log1p(-p), -100.0)
        elements = np.where(inside, -w * (t * lp + (1.0 - t) * l1p), np.nan)
        grad = np.where(inside, w * (p - t) / np.maximum(p * (1.0 - p), 1e-12), np.nan)
    loss, scale = _reduce(elements, reduction)
    return loss, grad * scale


# ---------------------------------------------------------------------------------------
# maxout
# ---------------------------------------------------------------------------------------

def _maxout_groups(x, pool_size, axis):
    x = _f64(x)
    ax = _norm_axis(axis, x.ndim)
    xl = np.moveaxis(x, ax, -1)
    n = xl.shape[-1]
    assert n % pool_size == 0
    return xl.reshape(xl.shape[:-1] + (n // pool_size, pool_size)), ax, xl.shape


def maxout(x, pool_size, axis=-1):
    grp, ax, _ = _maxout_groups(x, pool_size, axis)
    if grp.size == 0:
        out = np.empty(grp.shape[:-1])
    else:
        with np.errstate(all="ignore"):
            out = np.max(grp, axis=-1)  # NaN propagates
    return np.moveaxis(out, -1, ax)


def maxout_backward(grad_output, x, pool_size, axis=-1):
    grp, ax, lshape = _maxout_groups(x, pool_size, axis)
    g = np.moveaxis(_f64(grad_output), ax, -1)
    res = np.zeros(grp.shape)
    if grp.size:
        # np.argmax returns the first maximum, and the first NaN if the group has one
        idx = np.argmax(grp, axis=-1)[..., None]
        np.put_along_axis(res, idx, g[..., None], axis=-1)
    return np.moveaxis(res.reshape(lshape), -1, ax)


# ---------------------------------------------------------------------------------------
# prelu
# ---------------------------------------------------------------------------------------

def _prelu_weight(x, weight):
    w = _f64(weight).reshape(-1)
    if x.ndim >= 2 and w.size != 1:
        shape = [1] * x.ndim
        shape[1] = w.size
        return w.reshape(shape)
    return w.reshape(()) if w.size == 1 else w


def prelu(x, weight):
    x = _f64(x)
    w = _prelu_weight(x, weight)
    with np.errstate(all="ignore"):
        return _nan_where_x_nan(x, np.where(x > 0, x, w * x))


def prelu_backward(grad_output, x, weight):
    x = _f64(x)
    g = _f64(grad_output)
    wflat = _f64(weight)
    w = _prelu_weight(x, weight)
    with np.errstate(all="ignore"):
        gx = _nan_where_x_nan(x, np.where(x > 0, g, w * g))
        contrib = np.where(x > 0, 0.0, g * x)
        if wflat.size == 1:
            gw = np.sum(contrib).reshape(wflat.shape)
        else:
            axes = tuple(a for a in range(x.ndim) if a != 1)
            gw = np.sum(contrib, axis=axes).reshape(wflat.shape)
    return gx, gw


# ---------------------------------------------------------------------------------------
# rrelu and its counter-based generator
# ---------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def mix64(z):
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(all="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def rrelu_uniforms(shape, seed):
    """u_i in [0, 1) for C-order flat indices i of ``shape``."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.uint64)
    base = mix64(np.array([int(seed) & _M64], dtype=np.uint64))
    with np.errstate(all="ignore"):
        v = mix64(base + i)
    u = (v >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return u.reshape(shape)


def rrelu_slopes(shape, lower, upper, training, seed):
    if not training:
        return np.full(shape, (lower + upper) / 2.0)
    return lower + (upper - lower) * rrelu_uniforms(shape, seed)


def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, seed=0):
    x = _f64(x)
    a = rrelu_slopes(x.shape, lower, upper, training, seed)
    with np.errstate(all="ignore"):
        return _nan_where_x_nan(x, np.where(x > 0, x, a * x))


def rrelu_backward(grad_output, x, lower=1.0 / 8, upper=1.0 / 3, training=False, seed=0):
    x = _f64(x)
    g = _f64(grad_output)
    a = rrelu_slopes(x.shape, lower, upper, training, seed)
    with np.errstate(all="ignore"):
        return _nan_where_x_nan(x, np.where(x > 0, g, a * g))
