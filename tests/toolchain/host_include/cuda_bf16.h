// Host stand-in for CUDA's <cuda_bf16.h> (tests/toolchain/cuda_host.h, tests/toolchain/hostcuda.py):
// __nv_bfloat16 as its 16 bits, the upper half of a float, converted exactly
// as CUDA converts. float -> bfloat16 rounds to nearest even on the upper half
// (subnormals kept, a carry into the exponent is the right result, up to inf;
// NaN -> the canonical 0x7fff), bfloat16 -> float is exact: the algorithm of
// the host path of CUDA's cuda_bf16.hpp, restated. Arithmetic on
// __nv_bfloat16 rounds each result to bfloat16, as the device's bf16
// instructions do.
#pragma once
#include <cstring>

namespace gahost {
inline unsigned short float_to_bfloat16_bits(float f) {
    unsigned int x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN
    const unsigned int rem = x << 16;
    unsigned int r = x >> 16;
    if (rem > 0x80000000u || (rem == 0x80000000u && (r & 1u))) ++r;
    return (unsigned short)r;
}

inline float bfloat16_bits_to_float(unsigned short b) {
    const unsigned int u = (unsigned int)b << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
}  // namespace gahost

struct __nv_bfloat16_raw {
    unsigned short x;
};

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}
    __nv_bfloat16(float f) : __x(gahost::float_to_bfloat16_bits(f)) {}
    __nv_bfloat16& operator=(const __nv_bfloat16_raw& r) { __x = r.x; return *this; }
    __nv_bfloat16& operator=(float f) { __x = gahost::float_to_bfloat16_bits(f); return *this; }
    operator float() const { return gahost::bfloat16_bits_to_float(__x); }
    operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};

inline float __bfloat162float(__nv_bfloat16 b) { return gahost::bfloat16_bits_to_float(b.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    return __nv_bfloat16(__nv_bfloat16_raw{gahost::float_to_bfloat16_bits(f)});
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }

inline __nv_bfloat16 operator+(const __nv_bfloat16& a, const __nv_bfloat16& b) {
    return __float2bfloat16_rn(__bfloat162float(a) + __bfloat162float(b));
}
inline __nv_bfloat16 operator-(const __nv_bfloat16& a, const __nv_bfloat16& b) {
    return __float2bfloat16_rn(__bfloat162float(a) - __bfloat162float(b));
}
inline __nv_bfloat16 operator*(const __nv_bfloat16& a, const __nv_bfloat16& b) {
    return __float2bfloat16_rn(__bfloat162float(a) * __bfloat162float(b));
}
inline __nv_bfloat16 operator/(const __nv_bfloat16& a, const __nv_bfloat16& b) {
    return __float2bfloat16_rn(__bfloat162float(a) / __bfloat162float(b));
}
inline __nv_bfloat16 operator-(const __nv_bfloat16& a) {
    return __ushort_as_bfloat16((unsigned short)(a.__x ^ 0x8000u));
}
