"""Elementwise activations, glu's backward and binary cross-entropy on CuPy
arrays: ``cupy.ElementwiseKernel``s that call the C table of the formulas
(kernels/activations.cuh, kernels/losses.cuh).

A kernel is built per (wrapper, formula, compute type) from
``gpu_act.kernels.operation``, per (gate, compute type) from
``gpu_act.kernels.gated_operation``, and per binary cross-entropy variant from
``gpu_act.kernels.bce_operation``. ElementwiseKernel handles strides,
broadcasting and in place, and launches on CuPy's current stream. float16 and
bfloat16 operands (CuPy's ``float16`` and ``bfloat16`` classes) are computed in
float: the casts of the bodies widen them exactly and round to nearest even on store.
"""

import threading

import cupy
import numpy as np

from ..._dtypes import COMPUTE
from ... import kernels
from ...formulas import bce_der, bce_fwd, bce_logits_der, bce_logits_fwd, rrelu_slope
from . import _layout

_lock = threading.Lock()
_kernels = {}


def _kernel(wrapper, fname, nparams, ctype):
    key = (wrapper, fname, nparams, np.dtype(ctype))
    with _lock:
        if key not in _kernels:
            ins, out, body = kernels.operation(wrapper, fname, nparams, ctype)
            _kernels[key] = cupy.ElementwiseKernel(
                ins, out, body, f"ga_{wrapper}_{fname}", preamble=kernels.source(kernels.ACTIVATIONS)
            )
        return _kernels[key]


def _run(wrapper, f, arrays, params, out):
    """out = wrapper(arrays...); arrays broadcast to out's shape."""
    ctype = COMPUTE[out.dtype]
    k = _kernel(wrapper, f.__name__, len(params), ctype)
    dst = cupy.empty(out.shape, out.dtype) if _layout.needs_staging(out, arrays) else out
    k(*arrays, *(ctype.type(p) for p in params), dst)
    if dst is not out:
        out[...] = dst


def unary(f, x, params, out):
    """out = f(x, *params)"""
    _run("unary", f, [x], params, out)


def scaled(f, g, x, params, out):
    """out = g * f(x, *params)"""
    _run("scaled", f, [g, x], params, out)


def unary_slope(f, x, slope, out):
    """out = f(x, slope), slope broadcastable to x"""
    _run("unary_slope", f, [x, slope], (), out)


def scaled_slope(f, g, x, slope, out):
    """out = g * f(x, slope)"""
    _run("scaled_slope", f, [g, x, slope], (), out)


def _gated_kernel(fwd, der, nparams, ctype):
    key = ("gated", fwd, der, nparams, np.dtype(ctype))
    with _lock:
        if key not in _kernels:
            ins, outs, body = kernels.gated_operation(fwd, der, nparams, ctype)
            _kernels[key] = cupy.ElementwiseKernel(
                ins, outs, body, f"ga_gated_{fwd}", preamble=kernels.source(kernels.ACTIVATIONS)
            )
        return _kernels[key]


def gated_backward(f, d, g, a, b, params, da, db):
    """da = g * b * d(a, *params), db = g * f(a, *params) from one kernel; an
    output that overlaps an input other than as that very view goes through a
    temporary."""
    ctype = COMPUTE[da.dtype]
    k = _gated_kernel(f.__name__, d.__name__, len(params), ctype)
    inputs = [g, a, b]
    targets = [cupy.empty(o.shape, o.dtype) if _layout.needs_staging(o, inputs) else o for o in (da, db)]
    k(*inputs, *(ctype.type(p) for p in params), *targets)
    for o, t in zip((da, db), targets):
        if t is not o:
            o[...] = t


def rrelu_slopes(shape, key, lower, upper, dtype):
    """Per-element slopes U(lower, upper) keyed by (key, C-order flat index), in the compute type."""
    ctype = COMPUTE[np.dtype(dtype)]
    out = cupy.empty(shape, ctype)
    if out.size:
        _kernel("slopes", rrelu_slope.__name__, 0, ctype)(np.uint64(key), ctype.type(lower), ctype.type(upper), out)
    return out


def _bce_kernel(logits, weighted, pos_weighted, want_grad, ctype):
    key = ("bce", logits, weighted, pos_weighted, want_grad, np.dtype(ctype))
    with _lock:
        if key not in _kernels:
            fwd, der = (bce_logits_fwd, bce_logits_der) if logits else (bce_fwd, bce_der)
            ins, out, body = kernels.bce_operation(
                fwd.__name__, der.__name__, logits, weighted, pos_weighted, want_grad, ctype
            )
            flags = "".join(f for f, on in (("_w", weighted), ("_pw", pos_weighted), ("_grad", want_grad)) if on)
            _kernels[key] = cupy.ElementwiseKernel(
                ins, out, body, f"ga_{fwd.__name__}{flags}", preamble=kernels.source(kernels.LOSSES)
            )
        return _kernels[key]


def binary_cross_entropy(z, t, w, pw, logits, scale, want_grad):
    """(per-element losses in the compute type, gradient times ``scale`` in z's
    dtype or None), both of z's shape, from one kernel: on logits
    (formulas.bce_logits_*) or on probabilities (formulas.bce_*). ``w``, ``pw``:
    None (1) or arrays whose size-1 axes broadcast."""
    ctype = COMPUTE[z.dtype]
    k = _bce_kernel(logits, w is not None, pw is not None, want_grad, ctype)
    inputs = [a for a in (z, t, w, pw) if a is not None]
    elems = cupy.empty(z.shape, ctype)
    if not want_grad:
        k(*inputs, elems)
        return elems, None
    grad = cupy.empty(z.shape, z.dtype)
    k(*inputs, ctype.type(scale), elems, grad)
    return elems, grad
