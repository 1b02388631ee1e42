"""Sparsemax and its backward pass, one row per worker group.

Forward (Martins & Astudillo 2016), per row: y_j = max(d_j - tau, 0) with
d_j = x_j - max x (relative to the row max: no finite input overflows) and
tau the threshold where f(tau) = sum_j max(d_j - tau, 0) = 1.
Backward from y and g: dx_j = g_j - (sum_{y_k > 0} g_k) / #{y_k > 0} on the
support {y_j > 0}, 0 off it.

Finding tau without a sort (a sort is data-dependent shuffling of the whole
row, through shared memory or global scratch; a reduction pass is what a
warp or block does best): f is decreasing with f(-1) >= 1 and f(0) = 0.
Bisection on [-1, 0) keeps f(lo) >= 1 > f(hi), each step one pass over the
row for (f, #{d > t}) at the midpoint, summed over the row's workers; it stops
when no element lies in (lo, hi] (equal counts: f is linear there, the support
known), at float resolution, or after BISECTIONS steps. Then the exact fix:
tau = t + (f(t) - 1) / #{d > t} = (sum_{d > t} d - 1) / #{d > t} from t = lo,
the root of f's linear piece. That tau never exceeds the true one whatever t
was, so {d > tau} holds the whole support; it is re-checked at tau and the
step repeated (at most FIXES times) while the support changes: the final tau
is exact. Every worker of a row holds the same reduced (f, count), so all
take the same branches (the block reductions' barriers stay uniform).

Special rows: a NaN anywhere, or a row of only -inf, makes f NaN and the
row NaN; -inf entries get 0; +inf entries share the mass equally (d = 0 for
them, -inf for the rest). Backward: a NaN anywhere in g or y makes the row NaN.

Variants (``_config.plan``, which launches sparsemax as softmax: the same
rows, and the forward's row held in shared memory where it fits): "thread",
"warp", "block" read the row from global memory on every pass, except
"warp", whose lanes keep the row in registers (``_HELD``: x, or g and y, read
once); "block-shared" keeps it in shared memory (in the compute type), read
from global memory once. f and the counts accumulate in float64, as the
backward's sums; tau is rounded once to the compute type. Elements are read
and written through their codecs (``_codecs``).
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from . import _codecs, _config, _kernels, _operands, _rows, _staging

cuda = _cuda.cuda

BISECTIONS = 32  # the bracket then spans 2^-32: the fix removes what little is left
FIXES = 16  # Michelot steps at most (each drops elements off the support; two in practice)


def _relative(v, m):
    # x_j - max x; with max x = +inf: 0 for the +inf entries, -inf for the others
    return _C(0.0) if v == _INF else v - m  # noqa: F821


def _above(src, base, step, n, lane, width, m, t):
    # (f(t), #{d > t}) over the row src[base + j*step], summed over its workers;
    # "not e <= 0" so that a NaN counts and makes f NaN. With _HELD, src is the
    # worker's elements held in registers (those past the row's end hold -inf,
    # never above t), in a loop of constant length that NVVM unrolls
    f = np.float64(0.0)
    c = np.float64(0.0)
    if _HELD:  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            if i * width < n:  # the slots past every worker's end skipped
                f, c = _tally(f, c, _relative(src[i], m) - t)  # noqa: F821
    else:
        for j in range(lane, n, width):
            f, c = _tally(f, c, _relative(_Ld(src[base + j * step]), m) - t)  # noqa: F821
    return _sum64_all(f), _sum64_all(c)  # noqa: F821


def _tally(f, c, e):
    # (f, count) with d - t = e added where it is above 0 or NaN
    if not e <= 0:
        return f + np.float64(e), c + 1.0
    return f, c


def _threshold(src, base, step, n, lane, width, m):
    # tau of the row src[base + j*step] (max m); NaN where f(-1) is (a NaN in
    # the row, or a row of only -inf)
    lo = _C(-1.0)  # noqa: F821
    f_lo, c_lo = _above(src, base, step, n, lane, width, m, lo)  # noqa: F821
    if f_lo != f_lo:
        return _C(f_lo)  # noqa: F821
    hi = _C(0.0)  # noqa: F821
    c_hi = np.float64(0.0)
    for _ in range(BISECTIONS):
        if c_lo == c_hi:
            break
        mid = (lo + hi) * 0.5
        if mid == lo or mid == hi:
            break
        f, c = _above(src, base, step, n, lane, width, m, mid)  # noqa: F821
        if f >= 1.0:
            lo = mid
            f_lo = f
            c_lo = c
        else:
            hi = mid
            c_hi = c
    # the exact fix from the support above lo, re-checked until it stays
    t = lo
    tau = lo
    for _ in range(FIXES):
        tau = _C(t + (f_lo - 1.0) / c_lo)  # noqa: F821
        f, c = _above(src, base, step, n, lane, width, m, tau)  # noqa: F821
        if c == c_lo:
            break
        t = tau
        f_lo = f
        c_lo = c
    return tau


def _projected(d, tau):
    # max(d - tau, 0), NaN where either is
    e = d - tau
    return _C(0.0) if e <= 0 else e  # noqa: F821


def _forward(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n):
    row, lane, width = _worker()  # noqa: F821 (bound per variant)
    if row >= rows:
        return
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    m = -_INF  # noqa: F821
    if _HELD:  # noqa: F821
        # the worker's elements lane + i * width (i < _HELD: the whole row) kept in
        # registers: x read once, every bisection step over the registers
        held = cuda.local.array(_HELD, _CT)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            v = -_INF  # noqa: F821
            if j < n:
                v = _Lx(x[px + j * xa])  # noqa: F821
            held[i] = v
            m = v if v > m else m
        m = _max_all(m)  # noqa: F821
        tau = _threshold(held, 0, 1, n, lane, width, m)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            if j < n:
                out[po + j * oa] = _So(_projected(_relative(held[i], m), tau))  # noqa: F821
        return
    for j in range(lane, n, width):
        v = _Lx(x[px + j * xa])  # noqa: F821
        m = v if v > m else m
    m = _max_all(m)  # noqa: F821
    tau = _threshold(x, px, xa, n, lane, width, m)  # noqa: F821
    for j in range(lane, n, width):
        out[po + j * oa] = _So(_projected(_relative(_Lx(x[px + j * xa]), m), tau))  # noqa: F821


def _forward_shared(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n):
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    cache = cuda.shared.array(0, _CT)  # noqa: F821 (the row, in the compute type)
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    m = -_INF  # noqa: F821
    for j in range(lane, n, width):
        v = _Lx(x[px + j * xa])  # noqa: F821
        cache[j] = v
        m = v if v > m else m
    m = _max_all(m)  # noqa: F821
    # every worker reads back only the entries it wrote
    tau = _threshold(cache, 0, 1, n, lane, width, m)  # noqa: F821
    for j in range(lane, n, width):
        out[po + j * oa] = _So(_projected(_relative(cache[j], m), tau))  # noqa: F821


def _support(s, c, gv, yv):
    # the sum of g over the support and its size with one element added; a NaN in
    # g or y makes the size NaN
    if gv != gv or yv != yv:
        return s, np.float64(np.nan)
    if yv > 0:
        return s + np.float64(gv), c + 1.0
    return s, c


def _mean(s, c):
    # (the row's 0: NaN where the size is, the mean of g over the support) from the
    # workers' (s, c)
    s = _sum64_all(s)  # noqa: F821
    c = _sum64_all(c)  # noqa: F821
    zero = _C(c * 0.0)  # noqa: F821
    return zero, (_C(s / c) if c != 0 else zero)  # noqa: F821


def _backward(g, go, gs, ga, y, yo, ys, ya, out, oo, os_, oa, shape, rows, n):
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    py = _row_offset(row, shape, ys, yo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    # s = the sum of g over the support, c its size (float64); a NaN in g or y
    # makes c NaN, and so every output of the row (0 * c off the support, g - s/c on it)
    s = np.float64(0.0)
    c = np.float64(0.0)
    if _HELD:  # noqa: F821
        # g and y of the worker's elements kept in registers (read once); those past
        # the row's end hold 0, off the support
        hg = cuda.local.array(_HELD, _CT)  # noqa: F821
        hy = cuda.local.array(_HELD, _CT)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            gv = _C(0.0)  # noqa: F821
            yv = _C(0.0)  # noqa: F821
            if j < n:
                gv = _Lg(g[pg + j * ga])  # noqa: F821
                yv = _Ly(y[py + j * ya])  # noqa: F821
            hg[i] = gv
            hy[i] = yv
            s, c = _support(s, c, gv, yv)  # noqa: F821
        zero, mean = _mean(s, c)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            if j < n:
                out[po + j * oa] = _So(hg[i] - mean if hy[i] > 0 else zero)  # noqa: F821
        return
    for j in range(lane, n, width):
        s, c = _support(s, c, _Lg(g[pg + j * ga]), _Ly(y[py + j * ya]))  # noqa: F821
    zero, mean = _mean(s, c)  # noqa: F821
    for j in range(lane, n, width):
        gv = _Lg(g[pg + j * ga])  # noqa: F821
        yv = _Ly(y[py + j * ya])  # noqa: F821
        out[po + j * oa] = _So(gv - mean if yv > 0 else zero)  # noqa: F821


TEMPLATES = {"forward": _forward, "forward-shared": _forward_shared, "backward": _backward}


def kernel(name, ctype, variant, codec=_codecs.NATIVE):
    """The kernel ``name`` ("forward"/"backward") for compute dtype ``ctype`` and
    ``variant``, its operands (x, or g and y; and out) stored as ``codec``."""
    ctype = np.dtype(ctype)
    if name == "forward" and variant == "block-shared":
        name = "forward-shared"

    def build():
        dev = _cuda.device
        tag = f"sparsemax.{name}.{variant}.{codec}.{ctype.name}"
        b = dict(_rows.helpers(ctype, variant), _So=_codecs.store(codec))
        # the warp variant holds its row in registers in float64 too: unlike
        # softmax's, these loops have no exp, and NVVM unrolls them
        b["_HELD"] = _config.WARP_ROWS_MAX // _config.WARP if variant == "warp" else 0
        b["_Lx"] = b["_Lg"] = b["_Ly"] = _codecs.load(codec, ctype)
        # the row the passes read: x through its codec, or the shared copy already in ctype
        b["_Ld"] = b["_C"] if name == "forward-shared" else b["_Lx"]
        for fn in (_relative, _tally, _above, _threshold, _projected, _support, _mean):
            b[fn.__name__] = _compile.instantiate(fn, b, tag, dev, ctype)
        return _kernels.kernel(TEMPLATES[name], b, tag, ctype, variant)

    return _kernels.cached(("sparsemax", name, ctype, variant, codec), build)


def _run(ctx, op, name, inputs, axis, out):
    ctype = COMPUTE[np.result_type(*(a.dtype for a in inputs))]
    n = inputs[0].shape[axis]
    rows = inputs[0].size // n
    layout = _config.row_layout(inputs[-1], axis)
    config = _config.plan(op, rows, n, layout, ctype.itemsize, _config.limits(ctx))
    k = kernel(name, ctype, config.variant, _codecs.of(out.dtype))  # the inputs have out's dtype (the API's rule)

    def run(target):
        shape, ops = _operands.row_operands(ctx, [*inputs, target], axis)
        args = [v for o in ops for v in o]
        _kernels.launch(ctx, k, config, [*args, shape, np.int64(rows), np.int64(n)])

    _staging.staged(ctx, out, inputs, run)


def sparsemax(ctx, x, axis, out):
    """out = sparsemax of x along ``axis``; launched as softmax (``_config.plan``)."""
    _run(ctx, "softmax", "forward", [x], axis, out)


def sparsemax_backward(ctx, g, y, axis, out):
    """out = the gradient through sparsemax from its output y and incoming gradient g."""
    _run(ctx, "softmax_backward", "backward", [g, y], axis, out)
