"""Independent NumPy float64 reference of sparsemax and its backward pass.

Written from the definition (Martins & Astudillo 2016, Algorithm 1), by
sorting each row, nothing imported from gpu_act: with z the row relative to
its max, sorted in decreasing order, the support size is
k = max{k : 1 + k z_(k) > sum_{i <= k} z_(i)}, tau = (sum_{i <= k} z_(i) - 1) / k
and y = max(z - tau, 0). Backward: dx = g - mean of g over {y > 0} there, 0
elsewhere. gpu_act's contract for special rows (tests/core/test_sparsemax.py
holds them): a NaN anywhere makes the row NaN, a row of only -inf is NaN,
-inf entries get 0, +inf entries share the mass equally (the others 0);
backward: a NaN anywhere in g or y makes the row NaN.

Inputs are upcast to float64; results are float64; a 0-d array is a row of one.
"""

from __future__ import annotations

import numpy as np


def _rows(a, axis):
    """``a`` in float64 with ``axis`` moved last (a 0-d array as one row of one)."""
    a = np.asarray(a, np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1), None
    return np.moveaxis(a, axis, -1), axis


def _back(r, axis, shape):
    return r.reshape(shape) if axis is None else np.moveaxis(r, -1, axis)


def sparsemax(x, axis=-1):
    z, ax = _rows(x, axis)
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
    return _back(np.where(bad, np.nan, y), ax, shape)


def sparsemax_backward(grad_output, output, axis=-1):
    g, ax = _rows(grad_output, axis)
    y, _ = _rows(output, axis)
    shape = np.shape(output)
    if y.size == 0:
        return np.empty(shape, np.float64)
    on = y > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(on, g, 0.0).sum(axis=-1, keepdims=True) / on.sum(axis=-1, keepdims=True)
        dx = np.where(on, g - mean, 0.0)
    bad = (np.isnan(g) | np.isnan(y)).any(axis=-1, keepdims=True)
    return _back(np.where(bad, np.nan, dx), ax, shape)
