"""Vectorizable exp, expm1, log1p, tanh and erfc for the CPU kernels.

Numba has no vector math library (SVML is gone since 0.62), so ``math.exp``
in a loop stays a scalar call and the loop does not vectorize. These versions
are branch-free (comparisons become selects) and call nothing but other
inlinable functions, so LLVM turns a loop over them into packed AVX/AVX-512
code. Each is built per compute dtype from one template: the templates'
constants (polynomial coefficients, cut-offs, bit layouts) are bound for
float32 or float64 and their float literals retyped, so float32 work never
touches float64.

Methods (x the argument, all with special values handled by selects):
- exp:   n = round(x/ln2), r = x - n ln2 (Cody-Waite split, n*LN2_HI exact),
         e^x = 2^n (1 + r q(r)), q a near-minimax fit of (e^r - 1)/r on
         |r| <= ln2/2 (tools/fit_vmath.py; error < 1 ulp; one degree and two
         operations fewer than Taylor's r + r^2 P(r) + 1, which expm1 keeps for
         its accuracy near 0). The 2^n scaling is llvm.ldexp where the
         CPU has it as one instruction (AVX-512 vscalef), else two normal
         powers of two 2^(n/2) 2^(n - n/2), which reach subnormal results too.
- expm1: 2^n q + (2^n - 1), q = e^r - 1 (Taylor): exact scalings, one rounding,
         and q itself for n = 0.
- log1p: u = 1 + x = 2^k m, m in [sqrt(1/2), sqrt 2), f = m - 1, s = f/(2+f):
         log m = f - s (f - R), R = 2s^2/3 + 2s^4/5 + ... (atanh series),
         plus c/u, c = (1 + x) - u, for the rounding of u.
- tanh:  tanh|x| = -e/(2 + e), e = expm1(-2|x|); sign copied from x.
- max_key/from_max_key: a float's bits as an integer that orders like the
         float, so a row maximum is an integer max reduction (native, cheap),
         where a float max reduction either does not vectorize or, through
         llvm.maximum, costs ~60 ns per row in its final reduction.
- erfc:  a = |x|: e^{-a^2} times a Chebyshev fit in t = (a - K)/(a + K) of
         erfcx (tools/fit_vmath.py): float32 from a = 0, one branch, with one
         division u = 1/(a + K); float64 from a = 0.5 (1 - erf(a), erf from
         its Taylor series, below). The rounding error of a^2 (exact by FMA)
         joins exp's reduced argument, so it does not reach e^{-a^2}. Beyond
         ERFC_HI the argument is clamped there, where the result rounds to 0;
         erfc(-x) = 2 - erfc(x).
"""

import math
import threading

import numba
import numpy as np
import llvmlite.binding as llvmbind
import llvmlite.ir as llvmir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ... import _compile
from . import _fits
from ._numba import SOURCE_HASH, device


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret int32/int64 bits as float32/float64."""
    ft = {types.int32: types.float32, types.int64: types.float64}[bits]

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(ft))

    return ft(bits), codegen


@intrinsic
def _float_as_bits(typingctx, x):
    """Reinterpret float32/float64 as int32/int64 bits."""
    it = {types.float32: types.int32, types.float64: types.int64}[x]

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(it))

    return it(x), codegen


def _call_llvm(name, builder, args):
    ty = args[0].type
    suffix = "f32" if ty == llvmir.FloatType() else "f64"
    fn = cgutils.get_or_insert_function(builder.module, llvmir.FunctionType(ty, [ty] * len(args)), f"llvm.{name}.{suffix}")
    return builder.call(fn, args)


_FLOATS = (types.float32, types.float64)


@intrinsic
def fma(typingctx, a, b, c):
    """a*b + c with one rounding (LLVM's ``llvm.fma``)."""
    if a in _FLOATS and b == a and c == a:
        return a(a, b, c), lambda context, builder, sig, args: _call_llvm("fma", builder, args)


@intrinsic
def ldexp(typingctx, y, n):
    """y 2^n, one rounding (LLVM's ``llvm.ldexp``: one ``vscalef`` with AVX-512)."""
    if y in _FLOATS and isinstance(n, types.Integer):

        def codegen(context, builder, sig, args):
            ty = args[0].type
            it = llvmir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, llvmir.FunctionType(ty, [ty, it]), f"llvm.ldexp.{'f32' if ty == llvmir.FloatType() else 'f64'}.i32"
            )
            return builder.call(fn, [args[0], builder.trunc(args[1], it) if args[1].type.width > 32 else args[1]])

        return y(y, n), codegen


def _has_avx512():
    # llvm.ldexp is one instruction with AVX-512 (vscalef); elsewhere a libm call per
    # element, which keeps loops scalar: then 2^n is built from exponent bits instead
    if numba.config.CPU_NAME is not None:  # a portable (NUMBA_CPU_NAME) build
        return False
    return bool(llvmbind.get_host_cpu_features().get("avx512f"))


LDEXP_NATIVE = _has_avx512()


def _taylor_exp(n):
    # 1/2!, 1/3!, ..., 1/n!, highest order first (for Horner)
    return tuple(1.0 / math.factorial(k) for k in range(n, 1, -1))


def _atanh_series(n):
    # 2/3, 2/5, ..., 2/(2n+1), highest order first
    return tuple(2.0 / (2 * k + 1) for k in range(n, 0, -1))


def _erf_series(n):
    # erf x = x * sum_k (-1)^k 2/sqrt(pi) x^(2k) / (k! (2k+1)), highest order first
    return tuple((-1) ** k * 2.0 / math.sqrt(math.pi) / (math.factorial(k) * (2 * k + 1)) for k in range(n, -1, -1))



_CONSTANTS = {
    np.float64: dict(
        INT=np.int64,
        MBITS=np.int64(52),
        BIAS=np.int64(1023),
        ONE_I=np.int64(1),
        MANT=np.int64((1 << 52) - 1),
        SIGN_SHIFT=np.int64(63),
        ABS_MASK=np.int64((1 << 63) - 1),
        SQRTH_BITS=np.int64(0x3FE6A09E667F3BCD),
        ONE_BITS=np.int64(0x3FF0000000000000),
        LOG2E=1.4426950408889634,
        SHIFTER=1.5 * 2.0**52,
        LN2_HI=6.93147180369123816490e-01,
        LN2_LO=1.9082149292705877e-10,
        EXP_LO=-746.0,  # e^x rounds to 0 below
        EXP_HI=710.0,  # and to inf above
        EXPM1_LO=-40.0,  # e^x - 1 rounds to -1 below
        N_BIG=np.int64(60),  # 2^n - 1 == 2^n to working precision above
        EXPM1_POLY=_taylor_exp(13),
        LOG_POLY=_atanh_series(10),
        ERFC_HI=27.3,  # erfc rounds to 0 beyond
        ERF_POLY=_erf_series(13),
        **_fits.FITS[np.float64],
    ),
    np.float32: dict(
        INT=np.int32,
        MBITS=np.int32(23),
        BIAS=np.int32(127),
        ONE_I=np.int32(1),
        MANT=np.int32((1 << 23) - 1),
        SIGN_SHIFT=np.int32(31),
        ABS_MASK=np.int32((1 << 31) - 1),
        SQRTH_BITS=np.int32(0x3F3504F3),
        ONE_BITS=np.int32(0x3F800000),
        LOG2E=1.4426950408889634,
        SHIFTER=1.5 * 2.0**23,
        LN2_HI=0.693359375,
        LN2_LO=-0.00021219444170128554,
        EXP_LO=-104.0,
        EXP_HI=89.0,
        EXPM1_LO=-20.0,
        N_BIG=np.int32(30),
        EXPM1_POLY=_taylor_exp(7),
        LOG_POLY=_atanh_series(5),
        ERFC_HI=10.1,  # also where tools/fit_vmath.py ends float32's fit
        ERF_POLY=_erf_series(8),  # compiled, never taken: float32's fit starts at 0 (ERF_CUT)
        **_fits.FITS[np.float32],
    ),
}


# ---------------------------------------------------------------- templates
# Free names (upper case, _poly, _pow2, ...) are bound per dtype by ``functions``.


def _poly(x, c):
    # Horner, c highest order first. c is a constant tuple and LLVM unrolls the loops,
    # but only up to ~16 trips: longer polynomials run as two loops.
    acc = c[0]
    for k in range(1, min(len(c), 12)):
        acc = acc * x + c[k]
    for k in range(12, len(c)):
        acc = acc * x + c[k]
    return acc


def _pow2(n):
    # 2^n for n in the normal exponent range
    return _bits_as_float(INT((n + BIAS) << MBITS))  # noqa: F821


def _split(x):
    # (n, r) with x = n ln2 + r, |r| <= ln2/2, for x in [EXP_LO, EXP_HI] (or NaN: r is
    # NaN). n = round(x/ln2) by adding SHIFTER = 1.5 2^MBITS: the sum's low mantissa
    # bits are n, read without a float->int conversion (which would be undefined for NaN)
    t = x * LOG2E + SHIFTER  # noqa: F821
    nf = t - SHIFTER  # noqa: F821
    r = (x - nf * LN2_HI) - nf * LN2_LO  # noqa: F821
    return INT(_float_as_bits(t) - _float_as_bits(SHIFTER)), r  # noqa: F821


def _reduce(x, lo):
    # _split of x clamped to [lo, EXP_HI]; a NaN passes the clamps (x86 min/max order)
    xc = lo if x < lo else x
    return _split(EXP_HI if xc > EXP_HI else xc)  # noqa: F821


def _exp_small(r):
    # e^r for |r| <= ln2/2: 1 + r q(r), q a near-minimax fit of (e^r - 1)/r (tools/fit_vmath.py)
    return 1.0 + r * _poly(r, EXP_POLY)  # noqa: F821


def _expm1_small(r):
    # e^r - 1 for |r| <= ln2/2
    return r + r * r * _poly(r, EXPM1_POLY)  # noqa: F821


def _scale2(y, n):
    # y 2^n for n down to subnormal results: two normal powers of two
    h = n >> ONE_I  # noqa: F821
    return y * _pow2(h) * _pow2(n - h)


def _exp(x):
    n, r = _reduce(x, EXP_LO)  # noqa: F821
    return _ldexp(_exp_small(r), n)  # noqa: F821


def _expm1(x):
    n, r = _reduce(x, EXPM1_LO)  # noqa: F821
    q = _expm1_small(r)
    s = _pow2(n if n < N_BIG else N_BIG)  # noqa: F821
    small = s * q + (s - 1.0)
    big = _ldexp(q + 1.0, n)  # noqa: F821
    y = small if n < N_BIG else big  # noqa: F821
    return y if x == x and x != 0.0 else x  # NaN and +-0 are their own expm1


def _log1p(x):
    u = 1.0 + x
    # c = (1 + x) - u exactly (Sterbenz in both branches)
    c = (1.0 - (u - x)) if u >= 2.0 else (x - (u - 1.0))
    ib = _float_as_bits(u) + (ONE_BITS - SQRTH_BITS)  # noqa: F821
    k = (ib >> MBITS) - BIAS  # noqa: F821
    f = _bits_as_float(INT((ib & MANT) + SQRTH_BITS)) - 1.0  # noqa: F821
    s = f / (2.0 + f)
    z = s * s
    logm = f - s * (f - z * _poly(z, LOG_POLY))  # noqa: F821
    kf = FLOAT(k)  # noqa: F821
    y = kf * LN2_HI + (logm + (kf * LN2_LO + c / u))  # noqa: F821
    y = y if u < INF else u  # noqa: F821  (u = inf or NaN)
    y = -INF if u == 0.0 else y  # noqa: F821
    return NAN if u < 0.0 else y  # noqa: F821


def _tanh(x):
    e = _expm1(-2.0 * abs(x))
    return math.copysign(-e / (2.0 + e), x)


def _erfc(x):
    a = abs(x)
    ac = ERFC_HI if a > ERFC_HI else a  # noqa: F821  (erfc rounds to 0 beyond; a NaN passes)
    # e^{-a^2} = e^{-p - e}, a^2 = p + e exactly (p = a*a rounded, e by FMA): e joins the
    # reduced argument, so the rounding of a^2 does not reach e^{-a^2}. -p lies in
    # [-ERFC_HI^2, 0] (or is NaN): no clamps needed
    p = ac * ac
    n, r = _split(-p)
    g = _ldexp(_exp_small(r - fma(ac, ac, -p)), n)  # noqa: F821
    if ERFC_U_FORM:  # noqa: F821  (float32) e^{-a^2} u G, u = 1/(a + K), G a polynomial in u - 1/(2K)
        u = 1.0 / (ac + ERFC_K)  # noqa: F821
        y = g * (u * _poly(u - 0.5 / ERFC_K, ERFC_POLY))  # noqa: F821  (g last: it may be subnormal)
    else:  # (float64) e^{-a^2} E(t)/(1 + 2a), t = (a - K)/(a + K): one division for both
        d1 = ac + ERFC_K  # noqa: F821
        d2 = 1.0 + 2.0 * ac
        inv = 1.0 / (d1 * d2)
        y = g * (_poly((ac - ERFC_K) * d2 * inv, ERFC_POLY) * (d1 * inv))  # noqa: F821
    if ERF_CUT > 0.0:  # noqa: F821  near 0: 1 - erf|x|, erf from its Taylor series
        y = (1.0 - a * _poly(a * a, ERF_POLY)) if a < ERF_CUT else y  # noqa: F821
    # erfc(-x) = 2 - erfc(x); NaN has come through
    return y if x >= 0.0 else 2.0 - y


def _max_key(x):
    # x's bits as an integer ordered as the floats are (an involution: it also maps back);
    # NaN with the sign bit clear sorts above +inf, with it set below -inf
    b = _float_as_bits(x)  # noqa: F821
    return INT(b ^ ((b >> SIGN_SHIFT) & ABS_MASK))  # noqa: F821


def _from_max_key(k):
    return _bits_as_float(_max_key(_bits_as_float(k)))  # noqa: F821


def _row_max(xr):
    # a 1-D array's maximum as an integer max reduction over max_key; a NaN it skips
    # still makes the callers' rows NaN through their sums of e^(x - max)
    k = _max_key(xr[0])
    for j in range(1, xr.shape[0]):
        k = max(k, _max_key(xr[j]))
    return _from_max_key(k)


_TEMPLATES = (_poly, _pow2, _scale2, _split, _reduce, _exp_small, _expm1_small, _exp, _expm1, _log1p, _tanh, _erfc, _max_key, _from_max_key, _row_max)
EXPORTED = ("exp", "expm1", "log1p", "tanh", "erfc", "max_key", "from_max_key", "row_max")

_lock = threading.Lock()
_built = {}


def _decorate(fn):
    # contraction (FMA) only: reassociation would undo the Cody-Waite and log1p corrections;
    # always inlined (LLVM alwaysinline), as a call would stop the caller's loop from vectorizing
    return device(fn, fastmath={"contract"}, error_model="numpy", forceinline=True)


def functions(ctype, native_ldexp=None):
    """{"exp": ..., "expm1": ..., "log1p": ..., "tanh": ..., "erfc": ..., "max_key": ...,
    "from_max_key": ..., "row_max": ...} compiled for ``ctype``; 2^n scaling by ``llvm.ldexp`` or by
    exponent bits (``native_ldexp``, default: what this CPU does in one instruction)."""
    ctype = np.dtype(ctype).type
    native = LDEXP_NATIVE if native_ldexp is None else native_ldexp
    with _lock:
        if (ctype, native) not in _built:
            ft = ctype
            bound = {
                "FLOAT": ft,
                "INF": ft(np.inf),
                "NAN": ft(np.nan),
                "_bits_as_float": _bits_as_float,
                "_float_as_bits": _float_as_bits,
                "fma": fma,
            }
            for k, v in _CONSTANTS[ctype].items():
                if isinstance(v, float):
                    v = ft(v)
                elif isinstance(v, tuple):
                    v = tuple(ft(c) for c in v)
                bound[k] = v
            tag = f"{ft.__name__}.{SOURCE_HASH}.{'ldexp' if native else 'bits'}"
            for t in _TEMPLATES:
                bound[t.__name__] = _compile.instantiate(t, bound, tag, _decorate, ft)
                if t is _scale2:  # the templates after it see the chosen scaling as _ldexp
                    bound["_ldexp"] = ldexp if native else bound["_scale2"]
            _built[ctype, native] = {name: bound["_" + name] for name in EXPORTED}
        return _built[ctype, native]
