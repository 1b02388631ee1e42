"""Device helpers of the row-wise kernels, bound per (compute dtype, variant).

A row is worked on by ``width`` workers with ids ``lane`` (variant "thread":
one thread; "warp": 32 lanes; "block"/"block-shared": the block's threads).
Worker j handles elements lane, lane + width, ...; the ``*_all`` helpers
combine the workers' partial results and give every worker the total:
nothing for one thread, xor-shuffle butterflies for a warp; for a block, the
warps' butterflies, then one shared entry per warp (``SLOTS``) read by all.
Their only static shared memory is those entries: ``STATIC_SHARED`` bytes at
most per kernel (``_config.STATIC_SHARED``: the launch configuration counts
on it; the resource tests check it against ptxas).

Online normaliser (Milakov & Gimelshein 2018): a worker keeps the running
max m and s = sum_j e^{(x_j - m)/T}; a new value v > m rescales s by
e^{(m - v)/T}. Two partial (m, s) merge the same way. v == m adds 1 (this also
makes -inf == -inf count as e^0 until a finite maximum zeroes it). Rows whose
final max is +inf, or -inf (all -inf), get s = NaN, so the whole row is NaN
like the two-pass definition; a NaN entry makes s NaN by itself.
"""

import math

import numpy as np

from ... import _compile, _cuda
from ._config import WARP, WARP_ROWS_MAX
from ._kernels import cached

SLOTS = 32  # one shared entry per warp of a block (at most 1024 threads)

cuda = _cuda.cuda
float64 = _cuda.types.float64  # the target's own Numba types
from_dtype = _cuda.from_dtype
FULL_MASK = 0xFFFFFFFF


def row_offset(r, shape, strides, off):
    # element offset of row r (C order over `shape`) from its operand's first element
    for k in range(len(shape) - 1, -1, -1):
        n = shape[k]
        q = r // n
        off += (r - q * n) * strides[k]
        r = q
    return off


def _scaled(d, inv_t):
    # d/T from 1/T (finite: the API bounds T below): +-inf/T stays +-inf even
    # when 1/T rounded to 0 (T huge), where d * inv_t is NaN but d is not
    r = d * inv_t
    return d if r != r and d == d else r


def _push(m, s, v, inv_t):
    if v > m:
        return v, s * math.exp(_scaled(m - v, inv_t)) + 1.0
    if v == m:
        return m, s + 1.0
    return m, s + math.exp(_scaled(v - m, inv_t))


def _merge(m1, s1, m2, s2, inv_t):
    if m2 > m1:
        return m2, s1 * math.exp(_scaled(m1 - m2, inv_t)) + s2
    if m2 == m1:
        return m1, s1 + s2
    return m1, s1 + s2 * math.exp(_scaled(m2 - m1, inv_t))


def _finish(m, s):
    # NaN for a row whose max is +-inf
    return s if (m > -_INF and m < _INF) else m - m  # noqa: F821 (bound per dtype)


# ---------------------------------------------------------------- workers
def _worker_thread():
    return cuda.grid(1), 0, 1


def _worker_warp():
    t = cuda.threadIdx.x
    return cuda.blockIdx.x * (cuda.blockDim.x // 32) + t // 32, t % 32, 32


def _worker_block():
    return cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x


# ---------------------------------------------------------------- reductions over a row's workers
def _same(v):
    return v


def _same_ms(m, s, inv_t):
    return m, s


def _max_warp(v):
    for k in (16, 8, 4, 2, 1):
        o = cuda.shfl_xor_sync(FULL_MASK, v, k)
        v = o if o > v else v
    return v


def _sum_warp(v):
    for k in (16, 8, 4, 2, 1):
        v += cuda.shfl_xor_sync(FULL_MASK, v, k)
    return v


def _ms_warp(m, s, inv_t):
    for k in (16, 8, 4, 2, 1):
        om = cuda.shfl_xor_sync(FULL_MASK, m, k)
        os_ = cuda.shfl_xor_sync(FULL_MASK, s, k)
        m, s = _merge(m, s, om, os_, inv_t)  # noqa: F821
    return m, s


# a block: each warp reduces by shuffles, the warps' results meet in SLOTS
# shared entries, and every thread reads them all, so all hold the result.
# The barrier before the write lets a previous reduction finish reading.
def _max_block(v):
    slots = cuda.shared.array(SLOTS, _CT)  # noqa: F821
    t = cuda.threadIdx.x
    v = _max_warp(v)  # noqa: F821
    cuda.syncthreads()
    if t % 32 == 0:
        slots[t // 32] = v
    cuda.syncthreads()
    r = slots[0]
    for k in range(1, cuda.blockDim.x // 32):
        o = slots[k]
        r = o if o > r else r
    return r


def _sum_block(v):
    slots = cuda.shared.array(SLOTS, _CT)  # noqa: F821
    t = cuda.threadIdx.x
    v = _sum_warp(v)  # noqa: F821
    cuda.syncthreads()
    if t % 32 == 0:
        slots[t // 32] = v
    cuda.syncthreads()
    r = slots[0]
    for k in range(1, cuda.blockDim.x // 32):
        r += slots[k]
    return r


def _sum64_block(v):
    slots = cuda.shared.array(SLOTS, float64)
    t = cuda.threadIdx.x
    v = _sum_warp(v)  # noqa: F821
    cuda.syncthreads()
    if t % 32 == 0:
        slots[t // 32] = v
    cuda.syncthreads()
    r = slots[0]
    for k in range(1, cuda.blockDim.x // 32):
        r += slots[k]
    return r


def _ms_block(m, s, inv_t):
    sm = cuda.shared.array(SLOTS, _CT)  # noqa: F821
    ss = cuda.shared.array(SLOTS, _CT)  # noqa: F821
    t = cuda.threadIdx.x
    m, s = _ms_warp(m, s, inv_t)  # noqa: F821
    cuda.syncthreads()
    if t % 32 == 0:
        sm[t // 32] = m
        ss[t // 32] = s
    cuda.syncthreads()
    m, s = sm[0], ss[0]
    for k in range(1, cuda.blockDim.x // 32):
        m, s = _merge(m, s, sm[k], ss[k], inv_t)  # noqa: F821
    return m, s


# variant -> (worker, max, sum, float64 sum, (max, sum) merge) over a row's workers
_VARIANTS = {
    "thread": (_worker_thread, _same, _same, _same, _same_ms),
    "warp": (_worker_warp, _max_warp, _sum_warp, _sum_warp, _ms_warp),
    "block": (_worker_block, _max_block, _sum_block, _sum64_block, _ms_block),
    "block-shared": (_worker_block, _max_block, _sum_block, _sum64_block, _ms_block),
}


def helpers(ctype, variant):
    """Bindings for a row kernel template: _C (convert to ctype), _CT (its Numba
    type, for shared and local arrays), _INF, _HELD (how many elements of a row
    each worker keeps in registers: the warp variant's whole row in float32;
    0 otherwise: NVVM does not unroll the loops of float64's longer exp, and
    the row would sit in local memory),
    _scaled, _push, _finish, _row_offset, _worker, _max_all, _sum_all,
    _sum64_all (a float64 sum), _ms_all."""
    ctype = np.dtype(ctype)

    def build():
        dev = _cuda.device
        tag = f"{variant}.{ctype.name}"
        b = {"_C": ctype.type, "_CT": from_dtype(ctype), "_INF": ctype.type(np.inf), "_row_offset": dev(row_offset),
             "_HELD": WARP_ROWS_MAX // WARP if variant == "warp" and ctype == np.float32 else 0}

        def inst(fn, extra=()):
            return _compile.instantiate(fn, {**b, **dict(extra)}, tag, dev, ctype)

        b["_scaled"] = inst(_scaled)
        b["_merge"] = inst(_merge, {"_scaled": b["_scaled"]})
        b["_push"] = inst(_push, {"_scaled": b["_scaled"]})
        b["_finish"] = inst(_finish)
        worker, mx, sm, sm64, ms = _VARIANTS[variant]
        b["_worker"] = inst(worker)
        # the warp shuffles, also called by the block reductions (polymorphic:
        # _sum_warp sums float64 partials as well)
        warp = {"_max_warp": inst(_max_warp), "_sum_warp": inst(_sum_warp)}
        warp["_ms_warp"] = inst(_ms_warp, {"_merge": b["_merge"]})
        b["_max_all"] = inst(mx, warp)
        b["_sum_all"] = inst(sm, warp)
        b["_sum64_all"] = inst(sm64, warp)
        b["_ms_all"] = inst(ms, {**warp, "_merge": b["_merge"]})
        return b

    return cached(("row-helpers", ctype, variant), build)

