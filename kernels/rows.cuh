// Shared machinery of the row-wise kernels (softmax family, cross-entropy).
//
// A launch covers `rows` rows of length n. Row r = i*Q + k starts at
// p + i*sP + k*sQ and its element j sits at j*sn (strides in elements, any
// sign): the caller merges the array's other axes into (P, Q), so any axis of
// any strided array is reduced in place, without transpose copies.
//
// A "team" reduces one row: one thread (TEAM_THREAD: rows side by side in
// memory, e.g. a non-last axis), one warp (TEAM_WARP: warp shuffles) or one
// block (TEAM_BLOCK: shuffles, then shared memory across warps). Rows are
// unbounded: every pass streams the row; the max and the sum of exponentials
// come from one online pass (online.cuh: running max, sum rescaled when the
// max grows).
// Contiguous rows whose operands are 16-byte aligned are read and written
// 16 bytes at a time.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "online.cuh"

namespace ga {

typedef long long i64;

template <typename T> struct Acc { typedef T type; };
// float16 and bfloat16 are computed in float: loads widen exactly, stores round to nearest even
template <> struct Acc<__half> { typedef float type; };
template <> struct Acc<__nv_bfloat16> { typedef float type; };

__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ double load(const double* p) { return *p; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }

// ------------------------------------------------ warp shuffles of the reduced values
__device__ __forceinline__ float shfl(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
template <typename C> __device__ __forceinline__ MaxSum<C> shfl(MaxSum<C> v, int o) {
    return MaxSum<C>{shfl(v.m, o), shfl(v.s, o)};
}

template <typename V, class Op> __device__ __forceinline__ V warp_reduce(V v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, shfl(v, o));
    return v;
}

// ------------------------------------------------ teams
enum { TEAM_THREAD = 0, TEAM_WARP = 1, TEAM_BLOCK = 2 };
// A warp team's rows have at most 32 * WARP_HELD elements (the launcher's
// WARP_MAX): a lane that keeps its elements of a row in registers needs WARP_HELD
enum { WARP_HELD = 32 };

// Launch bounds of a team's kernels for compute type C: at most MAX threads
// per block (gpu_act/backends/cupy/_launch.py launches within them: THREADS,
// BLOCK_MAX), and MIN_BLOCKS resident per SM, so ptxas may use up to
// 65,536 / (MAX * MIN_BLOCKS) registers without spilling to reach a higher
// occupancy than that (a bound of MAX alone made it spill). Blocks that
// reduce a row of double get 512 threads: 64 registers do not hold them.
template <int TEAM, typename C> struct TeamThreads {
    enum {
        MAX = TEAM != TEAM_BLOCK ? 256 : sizeof(C) == 8 ? 512 : 1024,
        MIN_BLOCKS = TEAM != TEAM_BLOCK ? 2 : 1
    };
};
#define GA_BOUNDS(TEAM, T) __launch_bounds__(TeamThreads<TEAM, typename Acc<T>::type>::MAX, \
                                             TeamThreads<TEAM, typename Acc<T>::type>::MIN_BLOCKS)

template <int TEAM> struct Team;

template <> struct Team<TEAM_THREAD> {
    __device__ __forceinline__ int lane() const { return 0; }
    __device__ __forceinline__ int size() const { return 1; }
    __device__ __forceinline__ i64 first_row() const { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
    __device__ __forceinline__ i64 row_step() const { return (i64)gridDim.x * blockDim.x; }
    template <typename V, class Op> __device__ __forceinline__ V reduce(V v, Op) const { return v; }
};

template <> struct Team<TEAM_WARP> {
    __device__ __forceinline__ int lane() const { return threadIdx.x & 31; }
    __device__ __forceinline__ int size() const { return 32; }
    __device__ __forceinline__ i64 first_row() const { return ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; }
    __device__ __forceinline__ i64 row_step() const { return ((i64)gridDim.x * blockDim.x) >> 5; }
    template <typename V, class Op> __device__ __forceinline__ V reduce(V v, Op op) const { return warp_reduce(v, op); }
};

template <> struct Team<TEAM_BLOCK> {
    __device__ __forceinline__ int lane() const { return threadIdx.x; }
    __device__ __forceinline__ int size() const { return blockDim.x; }
    __device__ __forceinline__ i64 first_row() const { return blockIdx.x; }
    __device__ __forceinline__ i64 row_step() const { return gridDim.x; }
    // each warp reduces, warp leaders meet in shared memory, then every warp
    // reduces the leaders' values, so all threads hold the result
    template <typename V, class Op> __device__ __forceinline__ V reduce(V v, Op op) const {
        __shared__ __align__(16) unsigned char raw[32 * sizeof(double) * 2];
        V* sh = reinterpret_cast<V*>(raw);
        const int warps = (blockDim.x + 31) >> 5;
        v = warp_reduce(v, op);
        __syncthreads();  // the previous reduction has read `sh`
        if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
        __syncthreads();
        V w = sh[0];
        for (int k = 1; k < warps; ++k) w = op(w, sh[k]);
        return w;
    }
};

// ------------------------------------------------ row traversal
template <typename T> __device__ __forceinline__ bool aligned16(const T* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// 16 bytes of T: 8 halves (float16 or bfloat16), 4 floats, 2 doubles
template <typename T> struct Pack {
    enum { N = 16 / sizeof(T) };
    union {
        uint4 raw;
        T v[N];
    };
    __device__ __forceinline__ Pack() {}
};

// f(j, x_j) for the elements of this lane
template <typename T, class Tm, class F>
__device__ __forceinline__ void each(const Tm& team, i64 n, const T* x, i64 sx, F f) {
    i64 j0 = 0;
    if (sx == 1 && aligned16(x)) {
        const int N = Pack<T>::N;
        const i64 nv = n / N;
        for (i64 v = team.lane(); v < nv; v += team.size()) {
            Pack<T> a;
            a.raw = reinterpret_cast<const uint4*>(x)[v];
#pragma unroll
            for (int q = 0; q < N; ++q) f(v * N + q, load(&a.v[q]));
        }
        j0 = nv * N;
    }
    for (i64 j = j0 + team.lane(); j < n; j += team.size()) f(j, load(x + j * sx));
}

// f(j, a_j, b_j)
template <typename T, typename U, class Tm, class F>
__device__ __forceinline__ void each2(const Tm& team, i64 n, const T* a, i64 sa, const U* b, i64 sb, F f) {
    i64 j0 = 0;
    if constexpr (sizeof(T) == sizeof(U)) {
        if (sa == 1 && sb == 1 && aligned16(a) && aligned16(b)) {
            const int N = Pack<T>::N;
            const i64 nv = n / N;
            for (i64 v = team.lane(); v < nv; v += team.size()) {
                Pack<T> pa;
                Pack<U> pb;
                pa.raw = reinterpret_cast<const uint4*>(a)[v];
                pb.raw = reinterpret_cast<const uint4*>(b)[v];
#pragma unroll
                for (int q = 0; q < N; ++q) f(v * N + q, load(&pa.v[q]), load(&pb.v[q]));
            }
            j0 = nv * N;
        }
    }
    for (i64 j = j0 + team.lane(); j < n; j += team.size()) f(j, load(a + j * sa), load(b + j * sb));
}

// y_j = f(j) for the elements of this lane
template <typename T, class Tm, class F>
__device__ __forceinline__ void write(const Tm& team, i64 n, T* y, i64 sy, F f) {
    i64 j0 = 0;
    if (sy == 1 && aligned16(y)) {
        const int N = Pack<T>::N;
        const i64 nv = n / N;
        for (i64 v = team.lane(); v < nv; v += team.size()) {
            Pack<T> r;
#pragma unroll
            for (int q = 0; q < N; ++q) store(&r.v[q], f(v * N + q));
            reinterpret_cast<uint4*>(y)[v] = r.raw;
        }
        j0 = nv * N;
    }
    for (i64 j = j0 + team.lane(); j < n; j += team.size()) store(y + j * sy, f(j));
}

// y_j = f(j, x_j); y may be x itself (each element is read, then written, by one thread)
template <typename T, class Tm, class F>
__device__ __forceinline__ void map1(const Tm& team, i64 n, const T* x, i64 sx, T* y, i64 sy, F f) {
    i64 j0 = 0;
    if (sx == 1 && sy == 1 && aligned16(x) && aligned16(y)) {
        const int N = Pack<T>::N;
        const i64 nv = n / N;
        for (i64 v = team.lane(); v < nv; v += team.size()) {
            Pack<T> a, r;
            a.raw = reinterpret_cast<const uint4*>(x)[v];
#pragma unroll
            for (int q = 0; q < N; ++q) store(&r.v[q], f(v * N + q, load(&a.v[q])));
            reinterpret_cast<uint4*>(y)[v] = r.raw;
        }
        j0 = nv * N;
    }
    for (i64 j = j0 + team.lane(); j < n; j += team.size()) store(y + j * sy, f(j, load(x + j * sx)));
}

// y_j = f(j, a_j, b_j)
template <typename T, typename U, class Tm, class F>
__device__ __forceinline__ void map2(const Tm& team, i64 n, const T* a, i64 sa, const U* b, i64 sb, T* y, i64 sy, F f) {
    i64 j0 = 0;
    if constexpr (sizeof(T) == sizeof(U)) {
        if (sa == 1 && sb == 1 && sy == 1 && aligned16(a) && aligned16(b) && aligned16(y)) {
            const int N = Pack<T>::N;
            const i64 nv = n / N;
            for (i64 v = team.lane(); v < nv; v += team.size()) {
                Pack<T> pa, r;
                Pack<U> pb;
                pa.raw = reinterpret_cast<const uint4*>(a)[v];
                pb.raw = reinterpret_cast<const uint4*>(b)[v];
#pragma unroll
                for (int q = 0; q < N; ++q) store(&r.v[q], f(v * N + q, load(&pa.v[q]), load(&pb.v[q])));
                reinterpret_cast<uint4*>(y)[v] = r.raw;
            }
            j0 = nv * N;
        }
    }
    for (i64 j = j0 + team.lane(); j < n; j += team.size())
        store(y + j * sy, f(j, load(a + j * sa), load(b + j * sb)));
}

// ------------------------------------------------ masks
// The entries of one row that take part: its mask row (bool, element stride n
// along the row; 0 where the mask is broadcast), read only where `on`
// (a kernel without a mask gets on = 0 and a stand-in pointer never read)
struct RowMask {
    const bool* r;
    i64 n;
    int on;
    __device__ __forceinline__ bool operator()(i64 j) const { return !on || r[j * n]; }
};

template <typename C> struct Sum {
    __device__ __forceinline__ C operator()(C a, C b) const { return a + b; }
};
// the larger of two values; a NaN sticks (as in MaxSum)
template <typename C> struct Max {
    __device__ __forceinline__ C operator()(C a, C b) const { return a != a ? a : (b > a || b != b) ? b : a; }
};
template <typename C> struct Merge {
    C inv_t;
    __device__ __forceinline__ MaxSum<C> operator()(MaxSum<C> a, MaxSum<C> b) const { return MaxSum<C>::merge(a, b, inv_t); }
};

}  // namespace ga
