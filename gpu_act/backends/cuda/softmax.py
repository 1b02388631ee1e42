"""Softmax, log-softmax and logsumexp, forward and backward, one row per worker group.

Forward, per row:  m = max x;  d_j = (x_j - m)/T;  s = sum e^{d_j}
  softmax: y_j = e^{d_j} / s      log_softmax: y_j = d_j - log s
  logsumexp: m + T log s, one value per row
Backward (y the forward's output, g the incoming gradient):
  softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
  log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
  logsumexp (r its result, g one value per row): dx_j = g e^{(x_j - r)/T},
  NaN along a row whose r is not finite (its softmax is NaN)
The backward's row sums accumulate in float64 and are rounded once.
softmin is softmax at a negative temperature: the forward kernels take the
sign of 1/T (of -0.0 too, where 1/T rounds to 0) and negate every load of x
with it, the backward ones scale by the signed 1/T.
Variants (``_config.plan``): "thread", "warp" and "block" compute
(m, s) with the online normaliser and read x (and a mask) twice, except
"warp" in float32, whose lanes keep the row in registers (``_HELD``: x, or g
and y of the backward, read once); "block-shared" keeps the row in shared
memory (x and a mask read once). The forwards that read once take a max pass
and then a sum pass.
Elements are read and written through their codecs (``_codecs``: ``_Lx``,
``_Lg``, ``_Ly``, ``_Lr`` load, ``_So`` stores).
"""

import math

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE, inverse_temperature
from . import _arrays, _codecs, _config, _kernels, _operands, _rows, _staging, reduce

cuda = _cuda.cuda


def _forward_row(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # the forward of one row per worker group; the mask (mk, its offset, outer
    # strides and stride along the row) is read only where _MASKED: masked entries
    # stay out of (m, s) and get 0 (softmax) or -inf (log_softmax), so a row with
    # none unmasked is all 0 (-inf)
    row, lane, width = _worker()  # noqa: F821 (bound per variant)
    if row >= rows:
        return
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    sg = math.copysign(1.0, inv_t)  # -1 for softmin
    k = abs(inv_t)
    m = -_INF  # noqa: F821
    s = 0.0
    if _HELD:  # noqa: F821
        # the worker's elements lane + i * width (i < _HELD: the whole row) kept in
        # registers, x and the mask read once, as in _shared_row: masked entries
        # held as -inf, a max pass, a sum pass; a row whose sum is NaN reads the
        # mask again. Every loop over ``held`` has a constant length and a short
        # body, so that it is unrolled and each index into ``held`` is a constant
        held = cuda.local.array(_HELD, _CT)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            v = -_INF  # noqa: F821
            if j < n and (not _MASKED or mk[pm + j * ma]):  # noqa: F821
                v = sg * _Lx(x[px + j * xa])  # noqa: F821
            held[i] = v
            m = v if v > m else m
        m = _max_all(m)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            if i * width < n:  # slots past every worker's end hold -inf: e^{d} = 0
                s += math.exp(_scaled(held[i] - m, k))  # noqa: F821
        s = _finish(m, _sum_all(s))  # noqa: F821
        ls = math.log(s)
        inv_s = 1.0 / s
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            if j < n:
                d = _scaled(held[i] - m, k)  # noqa: F821
                v = d - ls if log else math.exp(d) * inv_s
                if _MASKED and s != s and not mk[pm + j * ma]:  # noqa: F821
                    v = -_INF if log else 0.0  # noqa: F821
                out[po + j * oa] = _So(v)  # noqa: F821
        return
    for j in range(lane, n, width):
        if not _MASKED or mk[pm + j * ma]:  # noqa: F821
            m, s = _push(m, s, sg * _Lx(x[px + j * xa]), k)  # noqa: F821
    m, s = _ms_all(m, s, k)  # noqa: F821
    s = _finish(m, s)  # noqa: F821
    if log:
        ls = math.log(s)
        for j in range(lane, n, width):
            v = _scaled(sg * _Lx(x[px + j * xa]) - m, k) - ls  # noqa: F821
            if _MASKED and not mk[pm + j * ma]:  # noqa: F821
                v = -_INF  # noqa: F821
            out[po + j * oa] = _So(v)  # noqa: F821
    else:
        inv_s = 1.0 / s
        for j in range(lane, n, width):
            v = math.exp(_scaled(sg * _Lx(x[px + j * xa]) - m, k)) * inv_s  # noqa: F821
            if _MASKED and not mk[pm + j * ma]:  # noqa: F821
                v = 0.0
            out[po + j * oa] = _So(v)  # noqa: F821


def _forward(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # no mask: x's operand stands in for it, never read
    _forward_row(x, xo, xs, xa, x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _forward_masked(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    _forward_row(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _shared_row(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # the forward of one row per block, the row kept in shared memory (x and the
    # mask read once). Masked entries are kept as -inf, so e^{d} = 0 (d = -inf)
    # there. A row whose sum is NaN (a NaN or +inf unmasked, its unmasked entries
    # all -inf, or none unmasked) reads the mask again to give its masked entries
    # 0 (-inf); a row with no unmasked entry then writes only those
    row, t, width = _worker()  # noqa: F821
    if row >= rows:
        return
    cache = cuda.shared.array(0, _CT)  # noqa: F821 (the row, in the compute type)
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    sg = math.copysign(1.0, inv_t)  # -1 for softmin: the row is kept negated
    k = abs(inv_t)
    m = -_INF  # noqa: F821
    for j in range(t, n, width):
        v = sg * _Lx(x[px + j * xa])  # noqa: F821
        if _MASKED and not mk[pm + j * ma]:  # noqa: F821
            v = -_INF  # noqa: F821
        cache[j] = v
        if v > m:
            m = v
    m = _max_all(m)  # noqa: F821
    s = 0.0
    if log:
        for j in range(t, n, width):
            s += math.exp(_scaled(cache[j] - m, k))  # noqa: F821
        s = _sum_all(s)  # noqa: F821
        ls = math.log(s)
        for j in range(t, n, width):
            v = _scaled(cache[j] - m, k) - ls  # noqa: F821
            if _MASKED and s != s and not mk[pm + j * ma]:  # noqa: F821
                v = -_INF  # noqa: F821
            out[po + j * oa] = _So(v)  # noqa: F821
    else:
        for j in range(t, n, width):
            e = math.exp(_scaled(cache[j] - m, k))  # noqa: F821
            cache[j] = e
            s += e
        s = _sum_all(s)  # noqa: F821
        inv_s = 1.0 / s
        for j in range(t, n, width):
            v = cache[j] * inv_s
            if _MASKED and s != s and not mk[pm + j * ma]:  # noqa: F821
                v = 0.0
            out[po + j * oa] = _So(v)  # noqa: F821


def _forward_shared(x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # no mask: x's operand stands in for it, never read
    _shared_row(x, xo, xs, xa, x, xo, xs, xa, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _forward_shared_masked(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    _shared_row(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _backward_row(g, go, gs, ga, y, yo, ys, ya, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # the backward of one row per worker group; with _MASKED the sums run over the
    # unmasked entries and masked ones get 0
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    pg = _row_offset(row, shape, gs, go)  # noqa: F821
    py = _row_offset(row, shape, ys, yo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    # the row sum in float64 (g - sum(g y) cancels where y is near one-hot), rounded once
    s = np.float64(0.0)
    if _HELD:  # noqa: F821
        # g and y of the worker's elements kept in registers between the sum and
        # the write (read once; see _forward_row); masked entries held as 0
        hg = cuda.local.array(_HELD, _CT)  # noqa: F821
        hy = cuda.local.array(_HELD, _CT)  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            gv = _C(0.0)  # noqa: F821
            yv = _C(0.0)  # noqa: F821
            if j < n and (not _MASKED or mk[pm + j * ma]):  # noqa: F821
                gv = _Lg(g[pg + j * ga])  # noqa: F821
                yv = _Ly(y[py + j * ya])  # noqa: F821
            hg[i] = gv
            hy[i] = yv
            s += np.float64(gv) if log else np.float64(gv) * np.float64(yv)
        sc = _C(_sum64_all(s))  # noqa: F821
        for i in range(_HELD):  # noqa: F821
            j = lane + i * width
            if j < n:
                if log:
                    v = (hg[i] - math.exp(hy[i]) * sc) * inv_t
                else:
                    v = hy[i] * (hg[i] - sc) * inv_t
                if _MASKED and not mk[pm + j * ma]:  # noqa: F821
                    v = 0.0
                out[po + j * oa] = _So(v)  # noqa: F821
        return
    if log:
        for j in range(lane, n, width):
            if not _MASKED or mk[pm + j * ma]:  # noqa: F821
                s += np.float64(_Lg(g[pg + j * ga]))  # noqa: F821
        sc = _C(_sum64_all(s))  # noqa: F821
        for j in range(lane, n, width):
            v = (_Lg(g[pg + j * ga]) - math.exp(_Ly(y[py + j * ya])) * sc) * inv_t  # noqa: F821
            if _MASKED and not mk[pm + j * ma]:  # noqa: F821
                v = 0.0
            out[po + j * oa] = _So(v)  # noqa: F821
    else:
        for j in range(lane, n, width):
            if not _MASKED or mk[pm + j * ma]:  # noqa: F821
                s += np.float64(_Lg(g[pg + j * ga])) * np.float64(_Ly(y[py + j * ya]))  # noqa: F821
        sc = _C(_sum64_all(s))  # noqa: F821
        for j in range(lane, n, width):
            v = _Ly(y[py + j * ya]) * (_Lg(g[pg + j * ga]) - sc) * inv_t  # noqa: F821
            if _MASKED and not mk[pm + j * ma]:  # noqa: F821
                v = 0.0
            out[po + j * oa] = _So(v)  # noqa: F821


def _backward(g, go, gs, ga, y, yo, ys, ya, out, oo, os_, oa, shape, rows, n, inv_t, log):
    # no mask: y's operand stands in for it, never read
    _backward_row(g, go, gs, ga, y, yo, ys, ya, y, yo, ys, ya, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _backward_masked(g, go, gs, ga, y, yo, ys, ya, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log):
    _backward_row(g, go, gs, ga, y, yo, ys, ya, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, log)  # noqa: F821


def _lse_of(m, s, t):
    # m + T log s of a row's (m, s) before _finish: s is NaN where a NaN was
    # pushed (NaN), else a max of +-inf, or no element (m = -inf, s = 0), is the
    # result itself
    if s != s:
        return s
    if m > -_INF and m < _INF:  # noqa: F821
        return m + t * math.log(s)
    return m


def _lse(x, xo, xs, xa, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n, inv_t, t):
    # mk: the mask, read where _MASKED (x's operand stands in for it otherwise)
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    m = -_INF  # noqa: F821
    s = 0.0
    for j in range(lane, n, width):
        if not _MASKED or mk[pm + j * ma]:  # noqa: F821
            m, s = _push(m, s, _Lx(x[px + j * xa]), inv_t)  # noqa: F821
    m, s = _ms_all(m, s, inv_t)  # noqa: F821
    if lane == 0:
        out[_row_offset(row, shape, os_, oo)] = _So(_lse_of(m, s, t))  # noqa: F821


def _lse_backward(x, xo, xs, xa, g, go, gs, ga, r, ro, rs, ra, mk, mo, ms, ma, out, oo, os_, oa, shape, rows, n,
                  inv_t):
    # one value of g and of the result r per row; masked entries 0
    row, lane, width = _worker()  # noqa: F821
    if row >= rows:
        return
    px = _row_offset(row, shape, xs, xo)  # noqa: F821
    po = _row_offset(row, shape, os_, oo)  # noqa: F821
    pm = _row_offset(row, shape, ms, mo)  # noqa: F821
    gv = _Lg(g[_row_offset(row, shape, gs, go)])  # noqa: F821
    rv = _Lr(r[_row_offset(row, shape, rs, ro)])  # noqa: F821
    nan = rv - rv  # 0, or NaN where r is not finite
    for j in range(lane, n, width):
        e = gv * math.exp(_scaled(_Lx(x[px + j * xa]) - rv, inv_t)) if nan == 0.0 else nan  # noqa: F821
        if _MASKED and not mk[pm + j * ma]:  # noqa: F821
            e = 0.0
        out[po + j * oa] = _So(e)  # noqa: F821


# (kernel name, masked) -> (template, the device function of one row it calls)
TEMPLATES = {
    ("forward", False): (_forward, _forward_row),
    ("forward", True): (_forward_masked, _forward_row),
    ("forward-shared", False): (_forward_shared, _shared_row),
    ("forward-shared", True): (_forward_shared_masked, _shared_row),
    ("backward", False): (_backward, _backward_row),
    ("backward", True): (_backward_masked, _backward_row),
    ("logsumexp", False): (_lse, None),
    ("logsumexp", True): (_lse, None),
    ("logsumexp-backward", False): (_lse_backward, None),
    ("logsumexp-backward", True): (_lse_backward, None),
}


def kernel(name, ctype, variant, codec=_codecs.NATIVE, masked=False):
    """The kernel ``name`` ("forward"/"backward"/"logsumexp"/"logsumexp-backward")
    for compute dtype ``ctype`` and ``variant``, its operands (x, or g and y, or
    x, g and r; and out) stored as ``codec``; ``masked``: it reads a mask
    (forward and backward take one only then; logsumexp's always, never read
    without)."""
    ctype = np.dtype(ctype)
    if name == "forward" and variant == "block-shared":
        name = "forward-shared"

    def build():
        b = dict(_rows.helpers(ctype, variant), _So=_codecs.store(codec), _MASKED=masked)
        b["_Lx"] = b["_Lg"] = b["_Ly"] = b["_Lr"] = _codecs.load(codec, ctype)
        tag = f"softmax.{ctype.name}.{int(masked)}"
        b["_lse_of"] = _compile.instantiate(_lse_of, b, tag, _cuda.device, ctype)
        template, row = TEMPLATES[name, masked]
        if row is not None:
            b[row.__name__] = _compile.instantiate(row, b, f"{tag}.{variant}.{codec}", _cuda.device, ctype)
        return _kernels.kernel(template, b, f"softmax.{name}.{variant}.{codec}.{int(masked)}", ctype, variant)

    return _kernels.cached(("softmax", name, ctype, variant, codec, masked), build)


def _run(ctx, op, name, inputs, a, axis, mask, out, scalars, stand_in=False):
    """Kernel ``name`` over the rows of ``inputs`` (then of ``mask``, None or a bool
    array of a's rank whose size-1 axes are read through stride 0) into ``out``, its
    launch planned for ``op`` from the rows of ``a`` (the input whose rows are
    walked: their length and layout); ``scalars`` its last arguments. With
    ``stand_in`` a kernel without a mask takes a's operand in its place."""
    ctype = COMPUTE[np.result_type(*(a.dtype for a in inputs))]
    n = a.shape[axis]
    rows = a.size // n
    layout = _config.row_layout(a, axis)
    op = op if mask is None else op + "_masked"
    config = _config.plan(op, rows, n, layout, ctype.itemsize, _config.limits(ctx))
    # the inputs have out's dtype (the API's rule)
    k = kernel(name, ctype, config.variant, _codecs.of(out.dtype), mask is not None)
    masks = [] if mask is None else [_operands.broadcast(mask, a.shape)]

    def run(target):
        shape, ops = _operands.row_operands(ctx, [*inputs, *masks, target], axis)
        if stand_in and mask is None:
            ops.insert(len(inputs), ops[inputs.index(a)])
        args = [v for o in ops for v in o]
        _kernels.launch(ctx, k, config, [*args, shape, np.int64(rows), np.int64(n), *scalars])

    _staging.staged(ctx, out, inputs + masks, run)


def _inverse(temperature, *arrays):
    return inverse_temperature(temperature, COMPUTE[np.result_type(*(a.dtype for a in arrays))])


def forward(ctx, x, axis, temperature, log, mask, out):
    _run(ctx, "softmax", "forward", [x], x, axis, mask, out, (_inverse(temperature, x), log))


def backward(ctx, g, y, axis, temperature, log, mask, out):
    _run(ctx, "softmax_backward", "backward", [g, y], y, axis, mask, out, (_inverse(temperature, g, y), log))


def logsumexp(ctx, x, axis, temperature, mask, out):
    if x.shape[axis] == 0:  # the log of an empty sum
        target = out if out.is_c_contiguous() else _arrays.empty(ctx, out.shape, out.dtype)
        reduce.fill(ctx, target, -np.inf)
        if target is not out:
            _staging.convert(ctx, target, out)
        return
    t = COMPUTE[x.dtype].type(temperature)
    _run(ctx, "logsumexp", "logsumexp", [x], x, axis, mask, out, (_inverse(temperature, x), t), stand_in=True)


def logsumexp_backward(ctx, g, x, r, axis, temperature, mask, out):
    _run(ctx, "logsumexp_backward", "logsumexp-backward", [x, g, r], x, axis, mask, out, (_inverse(temperature, x),),
         stand_in=True)
