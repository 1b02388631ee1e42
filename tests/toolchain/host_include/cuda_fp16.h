// Host stand-in for CUDA's <cuda_fp16.h> (tests/toolchain/cuda_host.h, tests/toolchain/hostcuda.py):
// __half as its 16 bits, converted exactly as CUDA converts. float -> half
// rounds to nearest even (subnormals kept, |x| >= 65520 -> inf, NaN -> the
// canonical 0x7fff), half -> float is exact (NaN -> 0x7fffffff): the
// algorithm of the host path of CUDA's cuda_fp16.hpp, restated. Arithmetic on
// __half rounds each result to half, as the device's f16 instructions do.
#pragma once
#include <cstring>
#include <math.h>

namespace gahost {
inline unsigned short float_to_half_bits(float f) {
    unsigned int x;
    std::memcpy(&x, &f, 4);
    unsigned int u = x & 0x7fffffffu, sign = (x >> 16) & 0x8000u, r, rem;
    if (u >= 0x7f800000u) {  // inf, NaN
        rem = 0;
        r = u == 0x7f800000u ? (sign | 0x7c00u) : 0x7fffu;
    } else if (u > 0x477fefffu) {  // rounds to inf
        rem = 0x80000000u;
        r = sign | 0x7bffu;
    } else if (u >= 0x38800000u) {  // normal
        rem = u << 19;
        u -= 0x38000000u;
        r = sign | (u >> 13);
    } else if (u < 0x33000001u) {  // rounds to +-0
        rem = u;
        r = sign;
    } else {  // subnormal
        const unsigned int e = u >> 23, shift = 0x7eu - e;
        const unsigned int mant = (u & 0x7fffffu) | 0x800000u;
        rem = mant << (32 - shift);
        r = (sign | (mant >> shift)) & 0xffffu;
    }
    if (rem > 0x80000000u || (rem == 0x80000000u && (r & 1u))) ++r;
    return (unsigned short)r;
}

inline float half_bits_to_float(unsigned short h) {
    unsigned int sign = (h >> 15) & 1u, e = (h >> 10) & 0x1fu, mant = (h & 0x3ffu) << 13;
    if (e == 0x1fu) {
        sign = mant ? 0u : sign;
        mant = mant ? 0x7fffffu : 0u;
        e = 0xffu;
    } else if (e == 0) {
        if (mant) {
            unsigned int msb;
            e = 0x71u;
            do {
                msb = mant & 0x400000u;
                mant <<= 1;
                --e;
            } while (!msb);
            mant &= 0x7fffffu;
        }
    } else {
        e += 0x70u;
    }
    const unsigned int u = (sign << 31) | (e << 23) | mant;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// double -> half in one rounding (CUDA's __double2half): pre-round to 11 bits
inline unsigned short double_to_half_bits(double a) {
    unsigned long long ua;
    std::memcpy(&ua, &a, 8);
    const unsigned long long absa = ua & 0x7fffffffffffffffULL;
    if (absa >= 0x40f0000000000000ULL || absa <= 0x3e60000000000000ULL) return float_to_half_bits((float)a);
    unsigned long long sb = absa >= 0x3f10000000000000ULL ? (ua & 0x7ff0000000000000ULL) + 0x02A0000000000000ULL
                                                          : 0x41B0000000000000ULL;
    sb |= 0x0008000000000000ULL;
    double shifter;
    std::memcpy(&shifter, &sb, 8);
    volatile double t = a + shifter;
    return float_to_half_bits((float)(t - shifter));
}
}  // namespace gahost

struct __half_raw {
    unsigned short x;
};

struct __half {
    unsigned short __x;
    __half() = default;
    __half(const __half_raw& r) : __x(r.x) {}
    __half(float f) : __x(gahost::float_to_half_bits(f)) {}
    __half(double d) : __x(gahost::double_to_half_bits(d)) {}
    __half& operator=(const __half_raw& r) { __x = r.x; return *this; }
    __half& operator=(float f) { __x = gahost::float_to_half_bits(f); return *this; }
    __half& operator=(double d) { __x = gahost::double_to_half_bits(d); return *this; }
    operator float() const { return gahost::half_bits_to_float(__x); }
    operator __half_raw() const { return __half_raw{__x}; }
};

inline float __half2float(__half h) { return gahost::half_bits_to_float(h.__x); }
inline __half __float2half_rn(float f) { return __half(__half_raw{gahost::float_to_half_bits(f)}); }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half __double2half(double d) { return __half(__half_raw{gahost::double_to_half_bits(d)}); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline short __half_as_short(__half h) { return (short)h.__x; }
inline __half __short_as_half(short s) { return __half(__half_raw{(unsigned short)s}); }

inline __half __hadd(__half a, __half b) { return __float2half_rn(__half2float(a) + __half2float(b)); }
inline __half __hsub(__half a, __half b) { return __float2half_rn(__half2float(a) - __half2float(b)); }
inline __half __hmul(__half a, __half b) { return __float2half_rn(__half2float(a) * __half2float(b)); }
inline __half __hdiv(__half a, __half b) { return __float2half_rn(__half2float(a) / __half2float(b)); }
inline __half __hneg(__half a) { return __half(__half_raw{(unsigned short)(a.__x ^ 0x8000u)}); }
inline __half __habs(__half a) { return __half(__half_raw{(unsigned short)(a.__x & 0x7fffu)}); }
inline bool __hisnan(__half a) { return (a.__x & 0x7fffu) > 0x7c00u; }
inline int __hisinf(__half a) { return a.__x == 0x7c00u ? 1 : (a.__x == 0xfc00u ? -1 : 0); }
inline bool __heq(__half a, __half b) { return __half2float(a) == __half2float(b); }
inline bool __hne(__half a, __half b) { return __half2float(a) != __half2float(b); }
inline bool __hlt(__half a, __half b) { return __half2float(a) < __half2float(b); }
inline bool __hle(__half a, __half b) { return __half2float(a) <= __half2float(b); }
inline bool __hgt(__half a, __half b) { return __half2float(a) > __half2float(b); }
inline bool __hge(__half a, __half b) { return __half2float(a) >= __half2float(b); }
inline __half __hmax(__half a, __half b) { return __float2half_rn(fmaxf(__half2float(a), __half2float(b))); }
inline __half __hmin(__half a, __half b) { return __float2half_rn(fminf(__half2float(a), __half2float(b))); }

inline __half operator+(const __half& a, const __half& b) { return __hadd(a, b); }
inline __half operator-(const __half& a, const __half& b) { return __hsub(a, b); }
inline __half operator*(const __half& a, const __half& b) { return __hmul(a, b); }
inline __half operator/(const __half& a, const __half& b) { return __hdiv(a, b); }
inline __half operator-(const __half& a) { return __hneg(a); }
inline __half operator+(const __half& a) { return a; }
inline __half& operator+=(__half& a, const __half& b) { return a = __hadd(a, b); }
inline __half& operator-=(__half& a, const __half& b) { return a = __hsub(a, b); }
inline __half& operator*=(__half& a, const __half& b) { return a = __hmul(a, b); }
inline __half& operator/=(__half& a, const __half& b) { return a = __hdiv(a, b); }
inline bool operator==(const __half& a, const __half& b) { return __heq(a, b); }
inline bool operator!=(const __half& a, const __half& b) { return __hne(a, b); }
inline bool operator<(const __half& a, const __half& b) { return __hlt(a, b); }
inline bool operator<=(const __half& a, const __half& b) { return __hle(a, b); }
inline bool operator>(const __half& a, const __half& b) { return __hgt(a, b); }
inline bool operator>=(const __half& a, const __half& b) { return __hge(a, b); }
