"""Softmax and log-softmax, forward and backward, one row per worker group.

Forward, per row:  m = max x;  d_j = (x_j - m)/T;  s = sum e^{d_j}
  softmax: y_j = e^{d_j} / s      log_softmax: y_j = d_j - log s
Backward (y the forward's output, g the incoming gradient):
  softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
  log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
The backward's row sums accumulate in float64 and are rounded once.
Variants (``_config.plan``): "thread", "warp" and "block" compute
(m, s) with the online normaliser and read x twice; "block-shared" keeps the
row in shared memory (read once), with tree reductions for max and sum.
Elements are read and written through their codecs (``_codecs``: ``_Lx``,
``_Lg``, ``_Ly`` load, ``_So`` stores).
"""

import math

import numpy as np

from ... import _cuda
from ..._dtypes import COMPUTE, inverse_temperature
from . import _codecs, _config, _kernels, _operands, _rows, _staging

cuda = _cuda.cuda


def _forward(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log):
    row, lane, width = _worker()  # noqa: F821 (bound per variant)
    if row >= rows:
        return
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    for j in range(lane, n, width):
        m, s = _push(m, s, _Lx(x[px + j * xa]), inv_t)  # noqa: F821
    m, s = _ms_all(m, s, inv_t)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    if log:
        ls = math.log(s)
        for j in range(lane, n, width):
            out[po + j * oa] = _So(_scaled(_Lx(x[px + j * xa]) - m, inv_t) - ls)  # noqa: F821
    else:
        inv_s = 1.0 / s
        for j in range(lane, n, width):
            out[po + j * oa] = _So(math.exp(_scaled(_Lx(x[px + j * xa]) - m, inv_t)) * inv_s)  # noqa: F821


def _forward_shared(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log):
    row, t, width = _worker()  # noqa: F821
    if row >= rows:
        return
    cache = cuda.shared.array(0, _CT)  # noqa: F821 (the row, in the compute type)
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    m = -_INF  # noqa: F821
    for j in range(t, n, width):
        v = _Lx(x[px + j * xa])  # noqa: F821
        cache[j] = v
        if v > m:
            m = v
    m = _max_all(m)  # noqa: F821
    s = 0.0
    if log:
        for j in range(t, n, width):
            s += math.exp(_scaled(cache[j] - m, inv_t))  # noqa: F821
        ls = math.log(_sum_all(s))  # noqa: F821
        for j in range(t, n, width):
            out[po + j * oa] = _So(_scaled(cache[j] - m, inv_t) - ls)  # noqa: F821
    else:
        for j in range(t, n, width):
            e = math.exp(_scaled(cache[j] - m, inv_t))  # noqa: F821
            cache[j] = e
            s += e
        inv_s = 1.0 / _sum_all(s)  # noqa: F821
        for j in range(t, n, width):
            out[po + j * oa] = _So(cache[j] * inv_s)  # noqa: F821


def _backward(g, go, gs, ga, y, yo, ys, ya, out, oo, os_, oa, shape, rows, n, inv_t, log):
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    py = _row_offset(row, shape, ys, yo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    # the row sum in float64 (g - sum(g y) cancels where y is near one-hot), rounded once
    s = np.float64(0.0)
    if log:
        for j in range(lane, n, width):
            s += np.float64(_Lg(g[pg + j * ga]))  # noqa: F821
        sc = _C(_sum64_all(s))  # noqa: F821
        for j in range(lane, n, width):
            out[po + j * oa] = _So((_Lg(g[pg + j * ga]) - math.exp(_Ly(y[py + j * ya])) * sc) * inv_t)  # noqa: F821
    else:
        for j in range(lane, n, width):
            s += np.float64(_Lg(g[pg + j * ga])) * np.float64(_Ly(y[py + j * ya]))  # noqa: F821
        sc = _C(_sum64_all(s))  # noqa: F821
        for j in range(lane, n, width):
            yj = _Ly(y[py + j * ya])  # noqa: F821
            out[po + j * oa] = _So(yj * (_Lg(g[pg + j * ga]) - sc) * inv_t)  # noqa: F821


TEMPLATES = {"forward": _forward, "forward-shared": _forward_shared, "backward": _backward}


def kernel(name, ctype, variant, codec=_codecs.NATIVE):
    """The kernel ``name`` ("forward"/"backward") for compute dtype ``ctype`` and
    ``variant``, its operands (x, or g and y; and out) stored as ``codec``."""
    ctype = np.dtype(ctype)
    if name == "forward" and variant == "block-shared":
        name = "forward-shared"

    def build():
        b = dict(_rows.helpers(ctype, variant), _So=_codecs.store(codec))
        b["_Lx"] = b["_Lg"] = b["_Ly"] = _codecs.load(codec, ctype)
        return _kernels.kernel(TEMPLATES[name], b, f"softmax.{name}.{variant}.{codec}", ctype, variant)

    return _kernels.cached(("softmax", name, ctype, variant, codec), build)


def _run(ctx, op, name, inputs, axis, temperature, log, out):
    ctype = COMPUTE[np.result_type(*(a.dtype for a in inputs))]
    n = inputs[0].shape[axis]
    rows = inputs[0].size // n
    layout = _config.row_layout(inputs[-1], axis)
    config = _config.plan(op, rows, n, layout, ctype.itemsize, _config.limits(ctx))
    k = kernel(name, ctype, config.variant, _codecs.of(out.dtype))  # the inputs have out's dtype (the API's rule)
    inv_t = inverse_temperature(temperature, ctype)

    def run(target):
        shape, ops = _operands.row_operands(ctx, [*inputs, target], axis)
        args = [v for o in ops for v in o]
        _kernels.launch(ctx, k, config, [*args, shape, np.int64(rows), np.int64(n), inv_t, log])

    _staging.staged(ctx, out, inputs, run)


def forward(ctx, x, axis, temperature, log, out):
    _run(ctx, "softmax", "forward", [x], axis, temperature, log, out)


def backward(ctx, g, y, axis, temperature, log, out):
    _run(ctx, "softmax_backward", "backward", [g, y], axis, temperature, log, out)
