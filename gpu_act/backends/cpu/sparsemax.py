"""Sparsemax and its backward pass on (P, Q, n) row views.

Forward (Martins & Astudillo 2016), per row: the Euclidean projection of x onto
the probability simplex, y_j = max(d_j - tau, 0) with d_j = x_j - max x (every
value relative to the row max, so no finite input overflows) and tau the one
threshold where f(tau) = sum_j max(d_j - tau, 0) = 1.
Backward from y and g: dx_j = g_j - (sum_{y_k > 0} g_k) / #{y_k > 0} on the
support {y_j > 0}, 0 off it.

Finding tau (the same method as the GPU kernels, no sort): f is continuous,
piecewise linear and decreasing, with f(-1) >= 1 (the max contributes 1) and
f(0) = 0, so tau lies in [-1, 0). Bisection keeps a bracket [lo, hi) with
f(lo) >= 1 > f(hi), each step one vectorized pass over the row for
(f, #{d > t}) at the midpoint; it stops as soon as no element lies in
(lo, hi] (equal counts at both ends: f is linear there and the support is
known), at float resolution, or after BISECTIONS steps. The fix is exact: for
the elements above t, tau = t + (f(t) - 1) / #{d > t} = (sum_{d > t} d - 1) /
#{d > t}, the root of f's linear piece (Michelot's step). Such a tau never
exceeds the true one whatever t was, so {d > tau} holds the whole support; the
support is re-checked at tau, and the step repeated (at most FIXES times)
until it no longer changes: tau is then exact. Bisection bounds the passes
whatever the data (a sort per row costs n log n, measured slower for long
rows); the fix makes the result exact, not bisection's resolution.

Special rows: a NaN anywhere, or a row of only -inf (d = -inf - -inf), makes
f NaN and the whole row NaN; -inf entries get 0; +inf entries share the mass
equally (d = 0 for them, -inf for the others: the limit of a row whose
largest entries grow together), the rest 0. Backward: a NaN anywhere in g or
y makes the row NaN.

The row is read once through its codec (``_L``; ``_codecs``) into a buffer of
d in the compute dtype, one per parallel task of about TASK elements, which
every pass then reads contiguously (vectorized whatever x's layout). f and the
counts accumulate in float64, as the backward's sums; tau is rounded to the
compute dtype once. Outputs go through the output's codec (``_S``); in place,
through the input's argument (``_dst``, see ``_kernels``).
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE
from ._kernels import cached, decorator, launch, pick
from . import _codecs
from ._numba import SOURCE_HASH, ijit
from ._views import row_casts, rows3, unit_rows
from .softmax import row_max

BISECTIONS = 32  # the bracket then spans 2^-32: the fix removes what little is left
FIXES = 16  # Michelot steps at most (each drops elements off the support; two in practice)
TASK = 1 << 14  # about this many elements of rows per task with a buffer


def _relative(v, m):
    # x_j - max x; with max x = +inf: 0 for the +inf entries (they share the
    # mass), -inf for the others
    return _C(0.0) if v == _INF else v - m  # noqa: F821


def _above(d, t):
    # (f(t), #{d > t}) over the row's buffer: e = d - t > 0 adds e. Written as
    # "not e <= 0" so that a NaN counts and makes f NaN
    f = np.float64(0.0)
    c = 0
    for j in range(d.shape[0]):
        e = d[j] - t
        f += np.float64(0.0 if e <= 0 else e)
        c += 0 if e <= 0 else 1
    return f, c


def _fix(d, t, f, c):
    # the root of f's linear piece above t (f(t) = f, c elements above t),
    # repeated from it while the support it leaves changes
    tau = t
    for _ in range(FIXES):
        tau = _C(t + (f - 1.0) / c)  # noqa: F821
        f2, c2 = _above(d, tau)  # noqa: F821
        if c2 == c:
            break
        t, f, c = tau, f2, c2
    return tau


def _threshold(d, f_lo, c_lo):
    # tau for the row's buffer d, given f(-1) and #{d > -1}; NaN where f(-1) is
    # (a NaN in the row, or a row of only -inf)
    lo = _C(-1.0)  # noqa: F821
    if f_lo != f_lo:
        return _C(f_lo)  # noqa: F821
    hi = _C(0.0)  # noqa: F821
    c_hi = 0
    for _ in range(BISECTIONS):
        if c_lo == c_hi:
            break
        mid = (lo + hi) * 0.5
        if mid == lo or mid == hi:
            break
        f, c = _above(d, mid)  # noqa: F821
        if f >= 1.0:
            lo, f_lo, c_lo = mid, f, c
        else:
            hi, c_hi = mid, c
    return _fix(d, lo, f_lo, c_lo)  # noqa: F821


def _row_forward(xr, o, buf):
    # buf: at least n elements of the compute dtype. What is written goes through
    # _dst(x, o) of the very slice read, which in place is that slice itself
    n = xr.shape[0]
    m = _row_max(xr)  # noqa: F821
    d = buf[:n]
    # the buffer's values, and f(-1), #{d > -1} on the way
    f = np.float64(0.0)
    c = 0
    for j in range(n):
        v = _relative(_L(xr[j]), m)  # noqa: F821
        d[j] = v
        e = v + 1.0
        f += np.float64(0.0 if e <= 0 else e)
        c += 0 if e <= 0 else 1
    tau = _threshold(d, f, c)  # noqa: F821
    dst = _dst(xr, o)  # noqa: F821
    for j in range(n):
        e = d[j] - tau
        dst[j] = _S(_C(0.0) if e <= 0 else e)  # noqa: F821


def _forward(x, out, rows_per_task):
    # a buffer per task of rows_per_task rows
    P, Q, n = x.shape
    rows = P * Q
    for t in prange((rows + rows_per_task - 1) // rows_per_task):
        buf = np.empty(n, _C)  # noqa: F821
        for r in range(t * rows_per_task, min(t * rows_per_task + rows_per_task, rows)):
            i = r // Q
            _row_forward(_U0(x[i, r - i * Q]), _U1(out[i, r - i * Q]), buf)  # noqa: F821


def _row_backward(gr, yr, o):
    # s = the sum of g over the support, c its size; a NaN in g or y makes c NaN,
    # and so every output of the row (0 * c off the support, g - s/c on it)
    n = gr.shape[0]
    s = np.float64(0.0)
    c = np.float64(0.0)
    for j in range(n):
        g = _Lg(gr[j])  # noqa: F821
        y = _Ly(yr[j])  # noqa: F821
        s += np.float64(g if y > 0 else 0.0)
        c += (1.0 if y > 0 else 0.0) if (g == g and y == y) else np.nan
    zero = _C(c * 0.0)  # noqa: F821
    mean = _C(s / c) if c != 0 else zero  # noqa: F821
    d = _dst(gr, yr, o)  # noqa: F821  (in place: gr or yr itself)
    for j in range(n):
        y = _Ly(yr[j])  # noqa: F821
        d[j] = _S(_Lg(gr[j]) - mean if y > 0 else zero)  # noqa: F821


def _backward(g, y, out):
    P, Q, n = g.shape
    for r in prange(P * Q):
        i = r // Q
        _row_backward(_U0(g[i, r - i * Q]), _U1(y[i, r - i * Q]), _U2(out[i, r - i * Q]))  # noqa: F821


def _kernel(template, ctype, size, cs, dst, units):
    """The kernel for operand codecs ``cs`` (inputs..., out) writing through
    argument ``dst`` (the last: out; else the input that out is, in place);
    ``units``: whether each operand's rows have unit stride (``_views.row_casts``)."""
    how = decorator(size)

    def build():
        names = ".".join(c.name for c in cs)
        flags = "".join(str(int(u)) for u in units)
        tag = f"sparsemax.{ctype.name}.{names}.{dst}.{flags}.{how.__name__}.{SOURCE_HASH}"
        loads = [_codecs.functions(c, ctype).load for c in cs[:-1]]
        b = {
            "_C": ctype.type,
            "_INF": ctype.type(np.inf),
            "_L": loads[0],
            "_Lg": loads[0],
            "_Ly": loads[-1],
            "_S": _codecs.functions(cs[-1], ctype).store,
            "_dst": pick(dst),
            "_row_max": row_max(ctype, cs[0]),
            **row_casts(units),
        }
        for fn in (_relative, _above, _fix, _threshold, _row_forward, _row_backward):
            b[fn.__name__] = _compile.instantiate(fn, b, tag, ijit, ctype)
        return _compile.instantiate(template, b, tag, how, ctype)

    return cached(("sparsemax", template.__name__, ctype, how, cs, dst, units), build)


def _run(template, inputs, ctype, axis, out, *extra):
    def run(v, cs, alias):
        k = _kernel(template, ctype, out.size, cs, len(inputs) if alias is None else alias, unit_rows(v))
        k(*v, *extra)

    launch(run, lambda a: rows3(a, axis), inputs, out)


def sparsemax(ctx, x, axis, out):
    """out = sparsemax of x along ``axis``."""
    n = x.shape[axis]
    _run(_forward, [x], COMPUTE[x.dtype], axis, out, max(1, TASK // n))


def sparsemax_backward(ctx, g, y, axis, out):
    """out = the gradient through sparsemax from its output y and incoming gradient g."""
    _run(_backward, [g, y], COMPUTE[np.result_type(g, y)], axis, out)
