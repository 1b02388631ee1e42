"""Storage codecs: how a CPU kernel reads and writes the elements of an array.

Numba has no 16-bit float type. A float16 array reaches a kernel as its
``uint16`` view, and the kernel converts each element on the way in and out:
``load`` decodes a storage element to the compute dtype, ``store`` encodes a
compute value to a storage element. float32 and float64 arrays are stored as
themselves (their codec is a cast, a no-op where storage and compute dtype
agree). So no array is ever converted as a whole: a float16 operand costs no
float32 copy, only a few integer operations per element, which LLVM vectorizes
with the rest of the loop (every conversion below is branch-free: comparisons
become selects).

A codec is chosen by the array's dtype (``codec``) and bound into the kernel
templates as functions ``load(v)``/``store(c)`` (``functions``); the kernels are compiled once
per combination of operand codecs (``Codec.name`` goes into their tags).
bfloat16 (ml_dtypes') is float32's upper half: ``load`` is a 16-bit shift,
``store`` rounds to nearest even on the upper half (adding 0x7FFF plus the
lowest kept bit before the shift, a carry into the exponent being the right
result, up to inf) and keeps a NaN NaN (its top payload bits, quieted).

float16 <-> float32, bit for bit as NumPy's ``astype`` (its ``npy_half``
routines):

- load: the 5-bit exponent is rebiased (+112) into float32's 8 bits and the
  10-bit mantissa shifted up by 13; exponent 31 (inf, NaN: the payload is kept)
  maps to 255; exponent 0 (zero, subnormal) is renormalized by a float
  subtraction: the bits of 2^-14 (1 + m/2^10) minus 2^-14 is m 2^-24 exactly.
- store: with a = |x|'s bits,
  a >= 2^16 (incl. inf, NaN): inf, or NaN with the mantissa's top 10 bits as
  its payload (at least 1, so it stays NaN);
  2^-14 <= a: rebiased exponent and mantissa, rounded to nearest even by adding
  0xFFF plus the lowest kept bit before the shift by 13; a carry into the
  exponent is the right result, up to inf for 65520 <= |x| < 2^16;
  a < 2^-14 (subnormal, zero): |x| + 0.5 in float32 rounds |x| to a multiple of
  2^-24 (the float add rounds to nearest even), whose count is the low bits of
  the sum (and 2^10 where it rounds up to the smallest normal).
  The sign is copied.
"""

import threading
from typing import NamedTuple

import llvmlite.ir as llvmir
import numpy as np
from numba import types
from numba.extending import intrinsic

from ... import _compile
from ..._dtypes import is_bfloat16
from . import _vmath
from ._numba import SOURCE_HASH, device


def _exact(fn):
    # no fastmath (the float operations here are exact only as written), always inlined
    return device(fn, fastmath=False, forceinline=True)


# The conversions are written as LLVM IR on i32 (Numba would widen integer
# arithmetic to int64, which vectorizes at half the width).
_I16, _I32, _F32 = llvmir.IntType(16), llvmir.IntType(32), llvmir.FloatType()


def _i32(v):
    return llvmir.Constant(_I32, v)


@intrinsic
def f16_to_f32(typingctx, h):
    """float16 bits (uint16) -> float32, exact."""

    def codegen(context, builder, sig, args):
        b = builder.zext(args[0], _I32)
        em = builder.shl(builder.and_(b, _i32(0x7FFF)), _i32(13))  # exponent, mantissa in float32's place
        e = builder.and_(em, _i32(0x0F800000))
        normal = builder.add(em, _i32(0x38000000))  # exponent + (127 - 15)
        special = builder.add(em, _i32(0x70000000))  # exponent 31 -> 255: inf, NaN with its payload
        scaled = builder.bitcast(builder.add(em, _i32(0x38800000)), _F32)  # 2^-14 (1 + m/2^10)
        sub = builder.bitcast(builder.fsub(scaled, llvmir.Constant(_F32, 2.0**-14)), _I32)  # m 2^-24
        r = builder.select(builder.icmp_unsigned("==", e, _i32(0x0F800000)), special, normal)
        r = builder.select(builder.icmp_unsigned("==", e, _i32(0)), sub, r)
        r = builder.or_(r, builder.shl(builder.and_(b, _i32(0x8000)), _i32(16)))
        return builder.bitcast(r, _F32)

    if h == types.uint16:
        return types.float32(h), codegen


@intrinsic
def f32_to_f16(typingctx, x):
    """float32 -> float16 bits (uint16), rounded to nearest even as NumPy's astype."""

    def codegen(context, builder, sig, args):
        u = builder.bitcast(args[0], _I32)
        sign = builder.and_(builder.lshr(u, _i32(16)), _i32(0x8000))
        a = builder.and_(u, _i32(0x7FFFFFFF))
        odd = builder.and_(builder.lshr(a, _i32(13)), _i32(1))
        # - (127 - 15) << 23 + 0xFFF + odd, then the top bits
        normal = builder.lshr(builder.add(builder.sub(a, _i32(0x37FFF001)), odd), _i32(13))
        half = builder.fadd(builder.bitcast(a, _F32), llvmir.Constant(_F32, 0.5))
        sub = builder.sub(builder.bitcast(half, _I32), _i32(0x3F000000))
        payload = builder.lshr(builder.and_(a, _i32(0x7FFFFF)), _i32(13))
        payload = builder.select(builder.icmp_unsigned("==", payload, _i32(0)), _i32(1), payload)
        nan = builder.icmp_unsigned(">", a, _i32(0x7F800000))
        special = builder.add(_i32(0x7C00), builder.select(nan, payload, _i32(0)))
        r = builder.select(builder.icmp_unsigned(">=", a, _i32(0x38800000)), normal, sub)
        r = builder.select(builder.icmp_unsigned(">=", a, _i32(0x47800000)), special, r)
        return builder.trunc(builder.or_(r, sign), _I16)

    if x == types.float32:
        return types.uint16(x), codegen


@intrinsic
def key16(typingctx, h):
    """The bits of a 16-bit float (uint16) as an int16 ordered as the floats are
    (as ``_vmath._max_key``; NaN with the sign bit clear above +inf, set below -inf);
    its own inverse, read back as uint16 bits."""

    def codegen(context, builder, sig, args):
        v = args[0]
        k = builder.xor(v, builder.and_(builder.ashr(v, llvmir.Constant(_I16, 15)), llvmir.Constant(_I16, 0x7FFF)))
        return k

    if h == types.uint16:
        return types.int16(h), codegen
    if h == types.int16:
        return types.uint16(h), codegen


@intrinsic
def bf16_to_f32(typingctx, h):
    """bfloat16 bits (uint16) -> float32, exact."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(builder.shl(builder.zext(args[0], _I32), _i32(16)), _F32)

    if h == types.uint16:
        return types.float32(h), codegen


@intrinsic
def f32_to_bf16(typingctx, x):
    """float32 -> bfloat16 bits (uint16), rounded to nearest even as ml_dtypes' astype."""

    def codegen(context, builder, sig, args):
        u = builder.bitcast(args[0], _I32)
        odd = builder.and_(builder.lshr(u, _i32(16)), _i32(1))
        rounded = builder.lshr(builder.add(builder.add(u, _i32(0x7FFF)), odd), _i32(16))
        quiet = builder.or_(builder.lshr(u, _i32(16)), _i32(0x40))
        nan = builder.icmp_unsigned(">", builder.and_(u, _i32(0x7FFFFFFF)), _i32(0x7F800000))
        return builder.trunc(builder.select(nan, quiet, rounded), _I16)

    if x == types.float32:
        return types.uint16(x), codegen


class Codec:
    """How arrays of one dtype are stored for the kernels; one instance per dtype
    (``codec``), so it hashes and compares by identity in the kernel caches' keys."""

    __slots__ = ("name", "dtype", "storage", "native")

    def __init__(self, name, dtype, storage, native):
        self.name = name  # goes into kernel tags
        self.dtype = dtype  # the arrays' dtype
        self.storage = storage  # what the kernels see
        self.native = native  # storage elements are compute values (float32, float64)

    def __repr__(self):
        return f"Codec({self.name})"


# 16-bit formats: codec name -> (load to float32, store from float32)
_SIXTEEN = {"f16": (f16_to_f32, f32_to_f16), "bf16": (bf16_to_f32, f32_to_bf16)}


def _sixteen(dt):
    """The codec name of a 16-bit float dtype, or None."""
    if dt == np.float16:
        return "f16"
    if is_bfloat16(dt):
        return "bf16"
    return None


_codecs = {}


def codec(dtype):
    """The codec of arrays of ``dtype`` (asked on every call: one dict lookup)."""
    c = _codecs.get(dtype)
    if c is None:
        dt = np.dtype(dtype)
        name = _sixteen(dt)
        if name is not None:
            c = Codec(name, dt, np.dtype(np.uint16), False)
        else:
            c = Codec(dt.name, dt, dt, True)
        _codecs[dtype] = c
    return c


def storage(a, c=None):
    """``a`` as its kernels see it: a view of its storage dtype."""
    c = c or codec(a.dtype)
    return a if c.native else a.view(c.storage)


def _load(v):
    return _C(_DECODE(v))  # noqa: F821


def _store(c):
    return _ENCODE(_S(c))  # noqa: F821


def _key(v):
    return _max_key(_load(v))  # noqa: F821


def _value(k):
    return _from_max_key(k)  # noqa: F821


def _value16(k):
    return _load(key16(k))  # noqa: F821


@_exact
def identity(v):
    return v


class Functions(NamedTuple):
    """A codec's always-inlined functions for one compute dtype."""

    load: object  # storage element -> compute value
    store: object  # compute value -> storage element
    key: object  # storage element -> an integer ordered as the values (a max reduction's key)
    value: object  # key -> compute value


_lock = threading.Lock()
_functions = {}


def functions(c, ctype):
    """The ``Functions`` of codec ``c`` for compute dtype ``ctype``. A row maximum is
    a max reduction over ``key`` (integers: native, cheap; see ``_vmath._max_key``),
    read back by ``value``; 16-bit formats order their bits directly (``key16``)."""
    ctype = np.dtype(ctype)
    key = (c, ctype)
    with _lock:
        if key in _functions:
            return _functions[key]
        vm = _vmath.functions(ctype)
        bound = {"_C": ctype.type, "_max_key": vm["max_key"], "_from_max_key": vm["from_max_key"], "key16": key16}
        if c.native:
            st = identity if c.dtype == ctype else c.dtype.type
            bound.update({"_DECODE": identity, "_ENCODE": identity, "_S": st})
        else:
            decode, encode = _SIXTEEN[c.name]
            bound.update({"_DECODE": decode, "_ENCODE": encode, "_S": np.float32})
        tag = f"{c.name}.{ctype.name}.{SOURCE_HASH}"
        fns = {}
        for t in (_load, _store, _key, _value, _value16):
            fns[t.__name__] = bound[t.__name__] = _compile.instantiate(t, bound, tag, _exact)
        if c.native:
            out = Functions(fns["_load"], fns["_store"], fns["_key"], fns["_value"])
        else:
            out = Functions(fns["_load"], fns["_store"], key16, fns["_value16"])
        _functions[key] = out
        return out
