"""Softmax, log-softmax and logsumexp, forward and backward, on (P, Q, n) row views.

Forward, per row:  m = max x;  d_j = (x_j - m)/T;  s = sum e^{d_j}
  softmax: y_j = e^{d_j} / s      log_softmax: y_j = d_j - log s
  logsumexp: m + T log s (one value per row)
Backward (y the forward's output, g the incoming gradient):
  softmax: dx_j = y_j (g_j - sum_k g_k y_k) / T
  log_softmax: dx_j = (g_j - e^{y_j} sum_k g_k) / T
  logsumexp (r its result, g one value per row): dx_j = g e^{(x_j - r)/T}
NaN or +inf in a row, or a row of all -inf, makes d NaN somewhere and so the
whole row NaN (as PyTorch); -inf entries of a finite row give e^{d} = 0.
logsumexp gives such a row its limit instead (SciPy's): NaN if it holds a NaN,
else its max, +inf or -inf; its gradient is NaN along a row whose result is
not finite. softmin is softmax at a negative temperature -T: the kernels are
compiled with x's loads negated (``_NEG``: m is then the max of -x), never
from a negated copy, and the backward pass scales by 1/(-T).
Elementwise work runs in the compute dtype (kernels are retyped per compute
dtype). Forward sums run in the compute dtype over blocks of BLOCK elements
(vectorized: 64 partial sums of 16 terms each; STRIDED_BLOCK terms in turn
for strided rows) and in float64 across blocks, which keeps log_softmax's
(x - m) - log s accurate to float32 rounding even for long rows; backward sums
accumulate in float64. Each is rounded to the compute dtype (_C) once per row,
so the per-element loops stay in it. A temperature of 1 is passed as None: the kernel compiled for it has
no scaling at all.

With a mask (a bool array read through its strides, stride 0 where it is
broadcast; ``_MASKED`` kernels) only the unmasked entries of a row take part
in its max and sums; masked entries get 0 (softmax, the gradients) or -inf
(log_softmax) whatever the row holds, so a row with no unmasked entry (whose
sum is 0) is all 0 (-inf), its logsumexp -inf. Kernels without a mask never
read one.

Every element is read through its operand's codec (``_L``, ``_Lg``, ``_Ly``;
the output's ``_Lo``) and written through the output's (``_S``), see
``_codecs``. In place the kernel writes through the input's argument (``_dst``,
see ``_kernels``), so its loops vectorize as out of place and give its bits.

softmax keeps e^{d_j} in the output row and scales it there by 1/s where that
row is contiguous and holds compute values (float32, float64: ``_KEEP``). Else
the summing loop stores e^{d_j} into a contiguous buffer of the compute dtype,
one per parallel task of about TASK elements: a store to a strided row keeps
the loop from vectorizing (summed one term after another, the sum loses
accuracy), and a float16 row could hold e^{d_j} only rounded (this way each
result is rounded once, as from float32). The first KEEP_MAX e^{d_j} of a row
wait there for 1/s; later ones are copied into a float32/float64 output, and
computed again in the second pass for a float16 one.
"""

import numpy as np
from numba import prange

from ... import _compile
from ..._dtypes import COMPUTE, inverse_temperature
from ._kernels import cached, decorator, launch, pick
from . import _codecs, _vmath
from ._numba import SOURCE_HASH, ijit
from ._views import row_casts, rows3, same, unit, unit_rows


BLOCK = 1024
STRIDED_BLOCK = 32
KEEP_MAX = 16 * BLOCK  # at most this many e^{d_j} of a row wait in a task's buffer (64 KiB of float32)
TASK = 1 << 14  # about this many elements of rows per task with a buffer


def _scaled(d, inv_t):
    # d/T from 1/T (finite: the API bounds T below): +-inf/T stays +-inf even
    # when 1/T rounded to 0 (T huge), where d * inv_t is NaN but d is not;
    # T = 1 (inv_t None): d
    if inv_t is None:
        return d
    r = d * inv_t
    return d if r != r and d == d else r


def _times(v, inv_t):
    # v/T; T = 1 (inv_t None): v
    if inv_t is None:
        return v
    return v * inv_t


def _row_max(xr):
    # the row's maximum as an integer max reduction over its codec's keys (see
    # _codecs.functions, _vmath._row_max), in the compute dtype
    k = _KEY(xr[0])  # noqa: F821
    for j in range(1, xr.shape[0]):
        k = max(k, _KEY(xr[j]))  # noqa: F821
    return _VALUE(k)  # noqa: F821


def _row_max_masked(xr, mr):
    # the maximum of the unmasked entries; a masked one counts as _KMIN, the key of
    # a NaN below every other key: a row with no unmasked entry gets NaN, and its
    # sum of e^{d} (over unmasked entries only) is 0, which marks it empty
    k = _KEY(xr[0]) if mr[0] else _KMIN  # noqa: F821
    for j in range(1, xr.shape[0]):
        k = max(k, _KEY(xr[j]) if mr[j] else _KMIN)  # noqa: F821
    return _VALUE(k)  # noqa: F821


def _row_max_unmasked(xr, mr):
    return _ROW_MAX(xr)  # noqa: F821


def _live(mr, j):
    # whether entry j takes part: its mask's, or always without a mask (a constant:
    # the unmasked kernels have no test at all)
    return mr[j] if _MASKED else True  # noqa: F821


def _row_log(xr, mr, o, inv_t):
    # log_softmax of one row; masked entries -inf. What is written goes through
    # _dst(x, o) of the very slice read, which in place is that slice itself (see _kernels)
    n = xr.shape[0]
    m = _rmax(xr, mr)  # noqa: F821
    s = np.float64(0.0)
    # strided rows are summed one term after another: shorter blocks keep that accurate
    blk = BLOCK if xr.strides[0] == xr.itemsize else STRIDED_BLOCK
    for b in range(0, n, blk):
        xb = xr[b : b + blk]
        mb = mr[b : b + blk]  # sliced as xb: read as mr[b + j], the loop would not vectorize
        sb = _C(0.0)  # noqa: F821
        for j in range(xb.shape[0]):
            e = _exp(_scaled(_L(xb[j]) - m, inv_t))  # noqa: F821
            sb += e if _live(mb, j) else _C(0.0)  # noqa: F821
        s += sb
    ls = _C(np.log(s))  # noqa: F821
    d = _dst(xr, o)  # noqa: F821
    for j in range(n):
        v = _scaled(_L(xr[j]) - m, inv_t) - ls  # noqa: F821
        d[j] = _S(v if _live(mr, j) else -_INF)  # noqa: F821


def _row_direct(xr, mr, o, inv_t):
    # softmax of one row into o, whose row is contiguous and holds compute values:
    # e^{d_j} (0 for masked entries) is kept there and scaled by 1/s. In place _dst
    # gives the slice of x itself, so the summing loop stores where it loads (two
    # slices of one row give LLVM two pointers again)
    n = xr.shape[0]
    m = _rmax(xr, mr)  # noqa: F821
    s = np.float64(0.0)
    blk = BLOCK if xr.strides[0] == xr.itemsize else STRIDED_BLOCK
    for b in range(0, n, blk):
        xb = xr[b : b + blk]
        mb = mr[b : b + blk]
        ob = _dst(xb, o[b : b + blk])  # noqa: F821
        sb = _C(0.0)  # noqa: F821
        for j in range(xb.shape[0]):
            e = _exp(_scaled(_L(xb[j]) - m, inv_t))  # noqa: F821
            e = e if _live(mb, j) else _C(0.0)  # noqa: F821
            ob[j] = _S(e)  # noqa: F821
            sb += e
        s += sb
    inv_s = _C(1.0 / s)  # noqa: F821
    d = _dst(xr, o)  # noqa: F821
    for j in range(n):
        d[j] = _S(_Lo(d[j]) * inv_s if _live(mr, j) else _C(0.0))  # noqa: F821


def _row_buffered(xr, mr, o, buf, kept, inv_t):
    # softmax of one row into o, a 16-bit or strided row: the summing loop stores
    # e^{d_j} into buf (contiguous, of the compute dtype; kept + BLOCK long where the
    # row is longer than kept, else n), never into o: a strided store keeps it from
    # vectorizing, a 16-bit one would round e^{d_j}. The first kept e^{d_j} wait
    # there for 1/s; the later ones are staged in its last BLOCK and copied into o
    # where it holds compute values, else computed again in the second pass
    n = xr.shape[0]
    m = _rmax(xr, mr)  # noqa: F821
    s = np.float64(0.0)
    blk = BLOCK if xr.strides[0] == xr.itemsize else STRIDED_BLOCK
    for b in range(0, n, blk):
        xb = xr[b : b + blk]
        mb = mr[b : b + blk]
        eb = buf[b : b + blk] if b < kept else buf[kept : kept + xb.shape[0]]
        sb = _C(0.0)  # noqa: F821
        for j in range(xb.shape[0]):
            e = _exp(_scaled(_L(xb[j]) - m, inv_t))  # noqa: F821
            e = e if _live(mb, j) else _C(0.0)  # noqa: F821
            eb[j] = e
            sb += e
        if _KEEP and b >= kept:  # noqa: F821
            ob = _dst(xb, o[b : b + blk])  # noqa: F821
            for j in range(xb.shape[0]):
                ob[j] = _S(eb[j])  # noqa: F821
        s += sb
    inv_s = _C(1.0 / s)  # noqa: F821
    head = min(n, kept)
    d = _dst(xr, o)  # noqa: F821
    for j in range(head):
        d[j] = _S(buf[j] * inv_s if _live(mr, j) else _C(0.0))  # noqa: F821
    xt = xr[head:]
    mt = mr[head:]
    dt = _dst(xt, o[head:])  # noqa: F821
    if _KEEP:  # noqa: F821
        for j in range(xt.shape[0]):
            dt[j] = _S(_Lo(dt[j]) * inv_s if _live(mt, j) else _C(0.0))  # noqa: F821
    else:
        for j in range(xt.shape[0]):
            e = _exp(_scaled(_L(xt[j]) - m, inv_t)) * inv_s  # noqa: F821
            dt[j] = _S(e if _live(mt, j) else _C(0.0))  # noqa: F821


def _forward(x, mk, out, inv_t, log, rows_per_task):
    # one call site per row function: each inlined copy of its loops makes the
    # kernel's register allocation worse (exp's constants reloaded in its loop).
    # mk: the mask (its rows views, stride 0 where it is broadcast), or a stand-in
    # never read (unmasked kernels)
    P, Q, n = x.shape
    rows = P * Q
    if log:
        for r in prange(rows):
            i = r // Q if P > 1 else 0
            mr = _UM(mk[i, r - i * Q]) if _MASKED else mk[0, 0]  # noqa: F821
            _row_log(_U0(x[i, r - i * Q]), mr, _U1(out[i, r - i * Q]), inv_t)  # noqa: F821
    elif _KEEP and out.strides[2] == out.itemsize:  # noqa: F821
        for r in prange(rows):
            i = r // Q if P > 1 else 0
            mr = _UM(mk[i, r - i * Q]) if _MASKED else mk[0, 0]  # noqa: F821
            _row_direct(_U0(x[i, r - i * Q]), mr, _U1(out[i, r - i * Q]), inv_t)  # noqa: F821
    else:
        # a buffer per task of rows_per_task rows
        kept = min(n, KEEP_MAX)
        size = n if n <= kept else kept + BLOCK
        for t in prange((rows + rows_per_task - 1) // rows_per_task):
            buf = np.empty(size, _C)  # noqa: F821
            for r in range(t * rows_per_task, min(t * rows_per_task + rows_per_task, rows)):
                i = r // Q
                mr = _UM(mk[i, r - i * Q]) if _MASKED else mk[0, 0]  # noqa: F821
                _row_buffered(_U0(x[i, r - i * Q]), mr, _U1(out[i, r - i * Q]), buf, kept, inv_t)  # noqa: F821


def _row_lse(xr, mr, inv_t, t):
    # logsumexp of one row over its unmasked entries: m + T log s (t = T, None for
    # T = 1), the sum in float64 over blocks as in _row_log; a row whose max is not
    # finite gives NaN if it holds a NaN (the max may have passed over one, see
    # _vmath._row_max), else that max, +-inf; a row with no unmasked entry, -inf
    n = xr.shape[0]
    m = _rmax(xr, mr)  # noqa: F821
    if m - m != 0.0:
        r = -_INF  # noqa: F821  (the log of an empty sum)
        for j in range(n):
            if _live(mr, j):  # noqa: F821
                v = _L(xr[j])  # noqa: F821
                if v != v:
                    return v
                r = m
        return r
    s = np.float64(0.0)
    blk = BLOCK if xr.strides[0] == xr.itemsize else STRIDED_BLOCK
    for b in range(0, n, blk):
        xb = xr[b : b + blk]
        mb = mr[b : b + blk]
        sb = _C(0.0)  # noqa: F821
        for j in range(xb.shape[0]):
            e = _exp(_scaled(_L(xb[j]) - m, inv_t))  # noqa: F821
            sb += e if _live(mb, j) else _C(0.0)  # noqa: F821
        s += sb
    return _C(m + _times(np.log(s), t))  # noqa: F821


def _lse(x, mk, out, inv_t, t):
    # mk: the mask, or a stand-in never read (unmasked kernels)
    P, Q, _ = x.shape
    for r in prange(P * Q):
        i = r // Q
        k = r - i * Q
        mr = _UM(mk[i, k]) if _MASKED else mk[0, 0]  # noqa: F821
        out[i, k, 0] = _S(_row_lse(_U0(x[i, k]), mr, inv_t, t))  # noqa: F821


def _lse_backward(g, x, r, mk, out, inv_t):
    # one value of g and of the result r per row (views of length 1 along the row);
    # masked entries 0, so a row with no unmasked entry is all 0
    P, Q, n = x.shape
    for row in prange(P * Q):
        i = row // Q
        k = row - i * Q
        mr = _UM(mk[i, k]) if _MASKED else mk[0, 0]  # noqa: F821
        gv = _Lg(g[i, k, 0])  # noqa: F821
        rv = _Lr(r[i, k, 0])  # noqa: F821
        xr = _U1(x[i, k])  # noqa: F821
        d = _dst(g[i, k], xr, r[i, k], _U3(out[i, k]))  # noqa: F821  (in place: x itself)
        nan = rv - rv  # 0, or NaN where r is not finite: the row's softmax is NaN
        for j in range(n):
            e = gv * _exp(_scaled(_L(xr[j]) - rv, inv_t)) if nan == 0.0 else nan  # noqa: F821
            d[j] = _S(e if _live(mr, j) else _C(0.0))  # noqa: F821


def _row_backward(gr, yr, mr, o, inv_t, log):
    # sums over the unmasked entries; masked ones get 0
    n = gr.shape[0]
    d = _dst(gr, yr, o)  # noqa: F821  (in place: gr or yr itself)
    s = np.float64(0.0)
    if log:
        for j in range(n):
            s += _Lg(gr[j]) if _live(mr, j) else _C(0.0)  # noqa: F821
        sc = _C(s)  # noqa: F821
        for j in range(n):
            v = _times(_Lg(gr[j]) - _exp(_Ly(yr[j])) * sc, inv_t)  # noqa: F821
            d[j] = _S(v if _live(mr, j) else _C(0.0))  # noqa: F821
    else:
        for j in range(n):
            # products in float64 too: g - sum(g y) cancels, float32 products cost ~1e-6
            p = np.float64(_Lg(gr[j])) * _Ly(yr[j])  # noqa: F821
            s += p if _live(mr, j) else 0.0  # noqa: F821
        sc = _C(s)  # noqa: F821
        for j in range(n):
            v = _times(_Ly(yr[j]) * (_Lg(gr[j]) - sc), inv_t)  # noqa: F821
            d[j] = _S(v if _live(mr, j) else _C(0.0))  # noqa: F821


def _backward(g, y, mk, out, inv_t, log):
    # mk: the mask, or a stand-in never read (unmasked kernels)
    P, Q, n = g.shape
    for r in prange(P * Q):
        i = r // Q
        mr = _UM(mk[i, r - i * Q]) if _MASKED else mk[0, 0]  # noqa: F821
        _row_backward(_U0(g[i, r - i * Q]), _U1(y[i, r - i * Q]), mr, _U2(out[i, r - i * Q]), inv_t, log)  # noqa: F821


def _negated(v):
    return -_LOAD(v)  # noqa: F821


def _negated_key(v):
    return _MAX_KEY(-_LOAD(v))  # noqa: F821


def loads(c, ctype, neg=False):
    """(load, row max, masked row max) of codec ``c`` in ``ctype``: the element's
    value, the row maximum (``_row_max``) and that of the unmasked entries
    (``_row_max_masked``); with ``neg`` of the negated elements (softmin), the
    maxima over keys of -x in the compute dtype."""
    ctype = np.dtype(ctype)

    def build():
        fns = _codecs.functions(c, ctype)
        tag = f"{ctype.name}.{c.name}.{int(neg)}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        # the smallest key: key16's int16 for 16-bit bits, else the compute dtype's integer
        kt = np.dtype(np.int16 if not (c.native or neg) else f"i{ctype.itemsize}")
        kmin = kt.type(np.iinfo(kt).min)
        if neg:
            bound = {"_LOAD": fns.load, "_MAX_KEY": vm["max_key"]}
            load = _compile.instantiate(_negated, bound, tag, ijit, ctype)
            keys = {"_KEY": _compile.instantiate(_negated_key, bound, tag, ijit, ctype), "_VALUE": vm["from_max_key"]}
        else:
            load, keys = fns.load, {"_KEY": fns.key, "_VALUE": fns.value}
        plain = _compile.instantiate(_row_max, keys, tag, ijit, ctype)
        masked = _compile.instantiate(_row_max_masked, {**keys, "_KMIN": kmin}, tag, ijit, ctype)
        return load, plain, masked

    return cached(("loads", ctype, c, neg), build)


def row_max(ctype, c):
    """The row maximum (``_row_max``) of a row stored with codec ``c``, in ``ctype``."""
    return loads(c, ctype)[1]


def masked_row_max(ctype, c):
    """The maximum of a row's unmasked entries (``_row_max_masked``), for codec ``c``, in ``ctype``."""
    return loads(c, ctype)[2]


TEMPLATES = {  # the kernel of each op, masked or not (_MASKED)
    "forward": _forward,
    "backward": _backward,
    "logsumexp": _lse,
    "logsumexp_backward": _lse_backward,
}
# where x (whose loads _L are) is among each op's inputs
_X = {"forward": 0, "backward": 0, "logsumexp": 0, "logsumexp_backward": 1}


def _kernel(template, ctype, size, cs, dst, units, neg=False, masked=False, how=None, unit_mask=False):
    """The kernel for operand codecs ``cs`` (value inputs..., out; a mask is read
    as it is) writing through argument ``dst`` (the last: out; else the input
    that out is, in place), x's loads negated with ``neg`` (softmin), with the
    mask's rows read where ``masked``, compiled by ``how`` (default: serial or
    parallel by ``size``); ``units``: whether each value operand's rows are
    contiguous, ``unit_mask`` the mask's (typed so, the loops reading them
    vectorize; ``_views.unit``)."""
    how = how or decorator(size)

    def build():
        op = next(k for k, v in TEMPLATES.items() if v is template)
        names = ".".join(c.name for c in cs)
        flags = "".join(str(int(u)) for u in (neg, masked, unit_mask, *units))
        tag = f"{ctype.name}.{names}.{dst}.{flags}.{how.__name__}.{SOURCE_HASH}"
        vm = _vmath.functions(ctype)
        ins = [_codecs.functions(c, ctype).load for c in cs[:-1]]
        x = _X[op]
        load, plain_max, masked_max = loads(cs[x], ctype, neg)
        bindings = {
            "_C": ctype.type,
            "_INF": ctype.type(np.inf),
            "_MASKED": masked,
            "_exp": vm["exp"],
            "_L": load,
            "_Lg": ins[0],
            "_Ly": ins[-1],
            "_Lr": ins[-1],
            "_Lo": _codecs.functions(cs[-1], ctype).load,
            "_S": _codecs.functions(cs[-1], ctype).store,
            "_KEEP": cs[-1].native,
            "_dst": pick(dst),
            "_UM": unit if unit_mask else same,
            **row_casts(units),
        }
        if masked:
            bindings["_rmax"] = masked_max
        else:
            bindings["_rmax"] = _compile.instantiate(_row_max_unmasked, {"_ROW_MAX": plain_max}, tag, ijit, ctype)
        for helper in (_scaled, _times, _live):
            bindings[helper.__name__] = _compile.instantiate(helper, bindings, tag, ijit, ctype)
        for row in (_row_log, _row_direct, _row_buffered, _row_lse, _row_backward):
            bindings[row.__name__] = _compile.instantiate(row, bindings, tag, ijit, ctype)
        return _compile.instantiate(template, bindings, tag, how, ctype)

    return cached((template.__name__, ctype, how, cs, dst, units, neg, masked, unit_mask), build)


def _inv_t(temperature, ctype):
    # None for T = 1: the kernel compiled for it has no scaling at all
    return None if temperature == 1 else inverse_temperature(temperature, ctype)


_ANY = np.ones((1, 1, 1), np.bool_)  # the mask argument of an unmasked kernel, never read


def _fill_rows(out, dead, axis, value):
    """``value`` along ``axis`` in the rows of ``out`` where ``dead`` (x's rank,
    length 1 along ``axis``) is True; only those rows are touched."""
    idx = list(np.nonzero(np.broadcast_to(dead, out.shape[:axis] + (1,) + out.shape[axis + 1 :])))
    if not idx[0].size:
        return
    idx[axis] = slice(None)
    out[tuple(idx)] = value


def _run(op, inputs, mask, ctype, axis, out, args, empty, neg=False):
    """The kernel of ``op`` over the rows of ``inputs`` (and of ``mask``, None or
    a bool array of x's rank whose size-1 axes are read through stride 0) into
    ``out``; ``empty``: the value of a row with no unmasked entry."""
    masked = mask is not None
    if masked and mask.ndim and mask.shape[axis] == 1:
        # one value per row: each row is all unmasked or all masked. The unmasked
        # kernel (a stride-0 mask row would keep its loops from vectorizing) over
        # every row, then the masked rows' value
        _run(op, inputs, None, ctype, axis, out, args, empty, neg)
        _fill_rows(out, ~mask, axis, empty)
        return
    template = TEMPLATES[op]
    n = len(inputs)
    stand_in = () if masked else (_ANY,)

    def run(v, cs, alias):
        # the mask is the last input: its codec is not a value's
        values = cs[:n] + cs[-1:]
        unit_mask = masked and unit_rows(v[n:n + 1])[0]
        k = _kernel(template, ctype, out.size, values, n if alias is None else alias, unit_rows(v[:n] + v[-1:]),
                    neg, masked, unit_mask=unit_mask)
        k(*v[:n], *stand_in, *v[n:], *args)

    arrays = inputs + ([np.broadcast_to(mask, inputs[_X[op]].shape)] if masked else [])
    launch(run, lambda a: rows3(a, axis), arrays, out)


def forward(x, axis, temperature, log, mask, out):
    """softmax or log-softmax of x/T; a negative ``temperature`` -T: of -x/T (softmin)."""
    ctype = COMPUTE[x.dtype]
    n = x.shape[axis] if x.ndim else 1
    args = (_inv_t(abs(temperature), ctype), log, max(1, TASK // max(n, 1)))
    _run("forward", [x], mask, ctype, axis % max(x.ndim, 1), out, args, -np.inf if log else 0.0, neg=temperature < 0)


def backward(g, y, axis, temperature, log, mask, out):
    """The gradient through (log-)softmax; a negative ``temperature`` scales it by 1/(-T) (softmin)."""
    ctype = COMPUTE[np.result_type(g, y)]
    _run("backward", [g, y], mask, ctype, axis % max(g.ndim, 1), out, (_inv_t(temperature, ctype), log), 0.0)


def logsumexp(x, axis, temperature, mask, out):
    """T log sum e^{x/T} along ``axis`` into ``out`` (x's rank, length 1 along ``axis``)."""
    if x.shape[axis] == 0:
        out[...] = -np.inf  # the log of an empty sum
        return
    ctype = COMPUTE[x.dtype]
    t = None if temperature == 1 else ctype.type(temperature)
    _run("logsumexp", [x], mask, ctype, axis % max(x.ndim, 1), out, (_inv_t(temperature, ctype), t), -np.inf)


def logsumexp_backward(g, x, r, axis, temperature, mask, out):
    """g e^{(x - r)/T}, g and r of x's rank with length 1 along ``axis``; masked entries 0."""
    ctype = COMPUTE[x.dtype]
    _run("logsumexp_backward", [g, x, r], mask, ctype, axis % max(x.ndim, 1), out, (_inv_t(temperature, ctype),), 0.0)
