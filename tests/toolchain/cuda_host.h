// Host emulation of the CUDA C subset the CuPy backend's kernels use, so the
// real kernels/*.cu sources compile with g++ and run on the CPU (tests/toolchain/hostcuda.py
// builds them; tests/toolchain/test_gxx_kernels.py runs them). It is to kernels/ what the
// Numba CUDA simulator is to the Numba path.
//
// - qualifiers: __global__ __device__ __host__ __forceinline__ __noinline__
//   __restrict__. tests/toolchain/hostcuda.py preprocesses a translation unit with this
//   header, then resolves two markers left by it (so the kernels' own macros may
//   spell them): __shared__ becomes a static (blocks run one after another),
//   and at block scope the first thread of each block to reach the
//   declaration fills it with 0xFF bytes (NaN in every float type: shared
//   memory is never initialised); `extern __shared__ T name[];` becomes a
//   pointer to the launch's dynamic shared memory (0xFF-filled per block);
//   __launch_bounds__(N, ...) becomes a check, first in the kernel's body, that
//   the block has at most N threads (a real launch with more fails).
// - a block's threads are cooperative fibers (a small x86-64 context switch,
//   ucontext elsewhere or with -DGAHOST_UCONTEXT): a thread runs until it
//   reaches __syncthreads() or a warp-synchronous call (__shfl*_sync,
//   __syncwarp, votes), where it waits for the block or for its 32 lanes. Which
//   waiting-then-released thread runs next is the launch's schedule: FORWARD
//   (lowest thread index first: warp 0 runs as far as it can before warp 1
//   starts), REVERSE (highest first), RANDOM (a seeded choice at every
//   switch) or FIFO (round robin); blocks run in grid order, reversed or
//   shuffled likewise. A correct kernel gives bit-identical memory under every
//   schedule; a missing barrier makes some schedule read a value too early.
// - misuse fails the launch with a message (ga_host_error): a barrier that
//   not every thread of the block reaches (divergent __syncthreads, threads
//   that exited), warp-synchronous calls in a partial warp or with a mask
//   other than all 32 lanes, a block over 1024 threads or over the kernel's
//   __launch_bounds__, dynamic shared memory over 48 KiB.
// - __half with __half2float / __float2half_rn (round to nearest even, CUDA's
//   handling of subnormals, overflow, infinities and NaN), __nv_bfloat16 with
//   __bfloat162float / __float2bfloat16_rn likewise, uint4 (its copies are
//   counted: the 16-byte vector path of a launch is observable), dim3,
//   blockIdx/threadIdx/blockDim/gridDim, warpSize, the math library (<cmath>
//   overloads for float and double, CUDA's f-suffixed and __intrinsic names).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>

#include <cuda_bf16.h>  // tests/toolchain/host_include: __nv_bfloat16
#include <cuda_fp16.h>  // tests/toolchain/host_include: __half

#if !defined(__x86_64__) || defined(GAHOST_UCONTEXT)
#define GAHOST_USE_UCONTEXT 1
#include <ucontext.h>
#endif

#define GA_HOST_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __shared__ __gahost_shared__  // resolved by tests/toolchain/hostcuda.py after preprocessing
#define __constant__
#define __managed__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...) __gahost_launch_bounds__(__VA_ARGS__)  // likewise
#define __restrict__ __restrict
#define warpSize 32

#define GAHOST_EXPORT extern "C" __attribute__((visibility("default")))

// ================================================================ vector and index types
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int a = 1, unsigned int b = 1, unsigned int c = 1) : x(a), y(b), z(c) {}
};

namespace gahost {
struct Stats {
    long long vec_moves;       // uint4 copies: 16-byte loads and stores
    long long block_barriers;  // __syncthreads() calls (per thread)
    long long warp_syncs;      // warp-synchronous calls (per lane)
    long long blocks;
    long long threads;
};
inline Stats& stats() {
    static Stats s;
    return s;
}
}  // namespace gahost

// the 16-byte type of vector loads and stores; copies are counted
struct __attribute__((aligned(16))) uint4 {
    unsigned int x, y, z, w;
    uint4& operator=(const uint4& o) {
        x = o.x;
        y = o.y;
        z = o.z;
        w = o.w;
        ++gahost::stats().vec_moves;
        return *this;
    }
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) {
    uint4 r;
    r.x = x;
    r.y = y;
    r.z = z;
    r.w = w;
    return r;
}

// ================================================================ math
// <math.h> puts the float and double overloads of <cmath> in the global
// namespace, as CUDA's math headers do; CUDA's own spellings:
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline double __drcp_rn(double x) { return 1.0 / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float exp10f(float x) { return powf(10.0f, x); }
inline double exp10(double x) { return pow(10.0, x); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline int __float_as_int(float x) { int r; std::memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; std::memcpy(&r, &x, 4); return r; }
inline unsigned int __float_as_uint(float x) { unsigned int r; std::memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned int x) { float r; std::memcpy(&r, &x, 4); return r; }
inline long long __double_as_longlong(double x) { long long r; std::memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; std::memcpy(&r, &x, 8); return r; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float min(float a, float b) { return fminf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(double a, double b) { return fmin(a, b); }

// ================================================================ the execution model
namespace gahost {

enum Policy { FORWARD = 0, REVERSE = 1, RANDOM = 2, FIFO = 3 };
enum State { READY, RUNNING, WAIT_BLOCK, WAIT_WARP, DONE };

struct Config {
    unsigned int grid[3];
    unsigned int block[3];
    unsigned long long shared_bytes;
    int policy;
    int pad_;
    unsigned long long seed;
};

#if GAHOST_USE_UCONTEXT
typedef ucontext_t Context;
#else
typedef void* Context;  // the saved stack pointer
extern "C" void gahost_switch_(void** save_sp, void* new_sp);
#endif

struct Fiber {
    Context ctx;
    unsigned char* stack = nullptr;
    uint3 tid;
    int state = DONE;
    unsigned int warp_seq = 0;   // warp-synchronous calls so far
    unsigned int block_gen = 0;  // the barrier generation waited for
};

static const size_t STACK_BYTES = 256 * 1024;

// a small seeded generator (splitmix64) for the RANDOM schedule
struct Rng {
    unsigned long long s = 0;
    void seed(unsigned long long v) { s = v; }
    unsigned long long next() {
        unsigned long long z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    size_t below(size_t n) { return (size_t)(next() % n); }
};

// one launch at a time (the caller serialises: tests/toolchain/hostcuda.py holds a lock)
struct Machine {
    // the launch
    dim3 grid_dim, block_dim;
    uint3 block_idx;
    int nthreads = 0, nwarps = 0, policy = FORWARD;
    Rng rng;
    void (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
    // the block
    std::vector<Fiber> fib;
    int current = -1;
    Context sched;
    // ready threads, ordered per policy
    std::vector<char> ready;
    int lo = 0, hi = -1, nready = 0;
    std::vector<int> pool;
    std::vector<int> queue;  // FIFO from queue_head
    size_t queue_head = 0;
    // barriers
    int bar_arrived = 0;
    unsigned int bar_gen = 0;
    long long bar_acc[2] = {0, 0};
    std::vector<int> warp_arrived;
    std::vector<unsigned int> warp_seq;
    std::vector<unsigned long long> slots;  // [warp][2 banks][32 lanes]
    // shared memory
    unsigned long long epoch = 1;
    std::vector<unsigned char> dynamic;
    size_t dynamic_bytes = 0;
    // outcome
    bool failed = false;
    std::string error;
};

inline Machine& M() {
    static Machine m;
    return m;
}

inline void switch_to_scheduler();

// a launch error: recorded, and the thread never runs again (the launch is abandoned)
[[noreturn]] inline void fail(const std::string& msg) {
    Machine& m = M();
    if (!m.failed) {
        m.failed = true;
        char where[160];
        std::snprintf(where, sizeof where, " [block (%u,%u,%u), thread (%u,%u,%u)]", m.block_idx.x, m.block_idx.y,
                      m.block_idx.z, m.fib[m.current].tid.x, m.fib[m.current].tid.y, m.fib[m.current].tid.z);
        m.error = msg + where;
    }
    m.fib[m.current].state = DONE;
    switch_to_scheduler();
    std::abort();  // not reached
}

// ---------------------------------------------------------------- ready set
inline void make_ready(int i) {
    Machine& m = M();
    m.fib[i].state = READY;
    ++m.nready;
    switch (m.policy) {
        case FORWARD:
            m.ready[i] = 1;
            if (i < m.lo) m.lo = i;
            break;
        case REVERSE:
            m.ready[i] = 1;
            if (i > m.hi) m.hi = i;
            break;
        case RANDOM:
            m.pool.push_back(i);
            break;
        default:
            m.queue.push_back(i);
    }
}

inline int next_ready() {
    Machine& m = M();
    if (m.nready == 0) return -1;
    --m.nready;
    int i;
    switch (m.policy) {
        case FORWARD:
            while (!m.ready[m.lo]) ++m.lo;
            i = m.lo;
            m.ready[i] = 0;
            break;
        case REVERSE:
            while (!m.ready[m.hi]) --m.hi;
            i = m.hi;
            m.ready[i] = 0;
            break;
        case RANDOM: {
            const size_t k = m.rng.below(m.pool.size());
            i = m.pool[k];
            m.pool[k] = m.pool.back();
            m.pool.pop_back();
            break;
        }
        default:
            i = m.queue[m.queue_head++];
    }
    return i;
}

// ---------------------------------------------------------------- fibers
inline unsigned char* new_stack() {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "cuda_host.h: cannot map a fiber stack\n");
        std::abort();
    }
    mprotect(p, page, PROT_NONE);  // a guard page below the stack: an overflow faults
    return static_cast<unsigned char*>(p) + page;
}

inline void fiber_main() {
    Machine& m = M();
    m.body(m.body_ctx);
    m.fib[m.current].state = DONE;
    switch_to_scheduler();
    std::abort();  // a finished fiber is never resumed
}

#if GAHOST_USE_UCONTEXT
inline void init_fiber(Fiber& f) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK_BYTES;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, (void (*)())fiber_main, 0);
}
inline void switch_to_scheduler() {
    Machine& m = M();
    swapcontext(&m.fib[m.current].ctx, &m.sched);
}
inline void run_fiber(int i) {
    Machine& m = M();
    m.current = i;
    swapcontext(&m.sched, &m.fib[i].ctx);
}
#else
// gahost_switch_(save, to): push the callee-saved registers, save the stack
// pointer in *save, load `to`, pop the registers saved there, return there
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".hidden gahost_switch_\n"
    ".globl gahost_switch_\n"
    ".type gahost_switch_, @function\n"
    "gahost_switch_:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size gahost_switch_, .-gahost_switch_\n");

extern "C" inline void gahost_entry_() { fiber_main(); }

inline void init_fiber(Fiber& f) {
    // the stack as gahost_switch_ leaves it: six registers, then the return
    // address (the entry), then a slot that keeps the entry's frame ABI-aligned
    void** top = reinterpret_cast<void**>(f.stack + STACK_BYTES);
    top[-1] = nullptr;
    top[-2] = reinterpret_cast<void*>(&gahost_entry_);
    for (int k = 3; k <= 8; ++k) top[-k] = nullptr;
    f.ctx = static_cast<void*>(top - 8);
}
inline void switch_to_scheduler() {
    Machine& m = M();
    gahost_switch_(&m.fib[m.current].ctx, m.sched);
}
inline void run_fiber(int i) {
    Machine& m = M();
    m.current = i;
    gahost_switch_(&m.sched, m.fib[i].ctx);
}
#endif

// the running thread waits (its state already set) until released
inline void wait() { switch_to_scheduler(); }

inline const uint3& thread_idx() { return M().fib[M().current].tid; }
inline unsigned long long shared_epoch() { return M().epoch; }
inline void* dynamic_shared() { return M().dynamic.data(); }

// ---------------------------------------------------------------- barriers
inline std::string describe_wait() {
    Machine& m = M();
    int n[5] = {0, 0, 0, 0, 0};
    for (int i = 0; i < m.nthreads; ++i) ++n[m.fib[i].state];
    char b[200];
    std::snprintf(b, sizeof b, "%d at __syncthreads, %d at warp-synchronous calls, %d exited, of %d threads",
                  n[WAIT_BLOCK], n[WAIT_WARP], n[DONE], m.nthreads);
    return b;
}

// __syncthreads*(): every thread of the block; returns the count of nonzero predicates
inline long long block_barrier(int pred) {
    Machine& m = M();
    ++stats().block_barriers;
    Fiber& f = m.fib[m.current];
    const unsigned int gen = m.bar_gen;
    m.bar_acc[gen & 1] += pred != 0;
    f.block_gen = gen;
    f.state = WAIT_BLOCK;
    if (++m.bar_arrived == m.nthreads) {
        m.bar_arrived = 0;
        ++m.bar_gen;
        m.bar_acc[m.bar_gen & 1] = 0;
        for (int i = 0; i < m.nthreads; ++i)
            if (m.fib[i].state == WAIT_BLOCK) make_ready(i);
    }
    wait();
    return m.bar_acc[gen & 1];
}

// one warp-synchronous exchange: every lane of the warp deposits `v`; returns the 32 deposits
inline const unsigned long long* warp_exchange(unsigned int mask, unsigned long long v, const char* what) {
    Machine& m = M();
    ++stats().warp_syncs;
    const int me = m.current, w = me >> 5, lane = me & 31;
    if (mask != 0xffffffffu) {
        char b[160];
        std::snprintf(b, sizeof b, "%s with mask 0x%08x: only the full mask 0xffffffff is emulated (and used)", what,
                      mask);
        fail(b);
    }
    if ((w + 1) * 32 > m.nthreads) fail(std::string(what) + " in a partial warp (blockDim not a multiple of 32)");
    Fiber& f = m.fib[me];
    const unsigned int seq = f.warp_seq++;
    if (m.warp_arrived[w] == 0) {
        m.warp_seq[w] = seq;
    } else if (m.warp_seq[w] != seq) {
        fail(std::string(what) + ": the lanes of a warp are at different warp-synchronous calls");
    }
    unsigned long long* bank = &m.slots[((size_t)w * 2 + (seq & 1)) * 32];
    bank[lane] = v;
    f.state = WAIT_WARP;
    if (++m.warp_arrived[w] == 32) {
        m.warp_arrived[w] = 0;
        for (int l = 0; l < 32; ++l) make_ready(w * 32 + l);
    }
    wait();
    return bank;
}

template <typename T> inline unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move up to 8 bytes");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T> inline T from_bits(unsigned long long b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
inline int lane_id() { return M().current & 31; }

template <typename T> inline T shfl(unsigned int mask, T v, int src, const char* what) {
    const unsigned long long* bank = warp_exchange(mask, to_bits(v), what);
    return from_bits<T>(bank[src & 31]);
}

// a kernel's __launch_bounds__ (moved into its body by tests/toolchain/hostcuda.py): a
// real launch with more threads fails ("too many resources requested")
inline void check_bounds(long long max_threads) {
    Machine& m = M();
    if (m.nthreads > max_threads) {
        char b[160];
        std::snprintf(b, sizeof b,
                      "too many resources requested for launch: %d threads per block, __launch_bounds__(%lld)",
                      m.nthreads, max_threads);
        fail(b);
    }
}

// ---------------------------------------------------------------- the launch
inline bool run_block() {
    Machine& m = M();
    ++stats().blocks;
    ++m.epoch;
    if (m.dynamic_bytes) std::memset(m.dynamic.data(), 0xFF, m.dynamic_bytes);
    m.bar_arrived = 0;
    m.bar_gen = 0;
    m.bar_acc[0] = m.bar_acc[1] = 0;
    std::fill(m.warp_arrived.begin(), m.warp_arrived.end(), 0);
    std::fill(m.ready.begin(), m.ready.end(), 0);
    m.lo = m.nthreads;
    m.hi = -1;
    m.nready = 0;
    m.pool.clear();
    m.queue.clear();
    m.queue_head = 0;
    int i = 0;
    for (unsigned int z = 0; z < m.block_dim.z; ++z)
        for (unsigned int y = 0; y < m.block_dim.y; ++y)
            for (unsigned int x = 0; x < m.block_dim.x; ++x, ++i) {
                Fiber& f = m.fib[i];
                f.tid = uint3{x, y, z};
                f.warp_seq = 0;
                init_fiber(f);
                make_ready(i);
            }
    stats().threads += m.nthreads;
    for (;;) {
        const int k = next_ready();
        if (k < 0) break;
        m.fib[k].state = RUNNING;
        run_fiber(k);
        if (m.failed) return false;
    }
    for (int t = 0; t < m.nthreads; ++t) {
        if (m.fib[t].state != DONE) {
            m.failed = true;
            m.error = "deadlock: threads wait at a barrier that the others never reach (" + describe_wait() + ")";
            char b[80];
            std::snprintf(b, sizeof b, " [block (%u,%u,%u)]", m.block_idx.x, m.block_idx.y, m.block_idx.z);
            m.error += b;
            return false;
        }
    }
    return true;
}

inline int launch_body(void (*body)(void*), void* ctx, const Config& c) {
    Machine& m = M();
    m.failed = false;
    m.error.clear();
    const unsigned long long nthreads = (unsigned long long)c.block[0] * c.block[1] * c.block[2];
    char b[200];
    if (nthreads == 0 || c.grid[0] == 0 || c.grid[1] == 0 || c.grid[2] == 0) {
        m.error = "invalid configuration: a zero grid or block dimension";
        return 1;
    }
    if (nthreads > 1024 || c.block[0] > 1024 || c.block[1] > 1024 || c.block[2] > 64) {
        std::snprintf(b, sizeof b, "invalid configuration: block (%u,%u,%u) (at most 1024 threads, z <= 64)",
                      c.block[0], c.block[1], c.block[2]);
        m.error = b;
        return 1;
    }
    if (c.grid[0] > 2147483647u || c.grid[1] > 65535u || c.grid[2] > 65535u) {
        m.error = "invalid configuration: grid too large";
        return 1;
    }
    if (c.shared_bytes > 48 * 1024) {
        m.error = "too much dynamic shared memory (over 48 KiB needs an opt-in attribute)";
        return 1;
    }
    m.grid_dim = dim3(c.grid[0], c.grid[1], c.grid[2]);
    m.block_dim = dim3(c.block[0], c.block[1], c.block[2]);
    m.nthreads = (int)nthreads;
    m.nwarps = (m.nthreads + 31) / 32;
    m.policy = c.policy;
    m.rng.seed(c.seed);
    m.body = body;
    m.body_ctx = ctx;
    while ((int)m.fib.size() < m.nthreads) {
        m.fib.emplace_back();
        m.fib.back().stack = new_stack();
    }
    m.ready.assign(m.nthreads, 0);
    m.warp_arrived.assign(m.nwarps, 0);
    m.warp_seq.assign(m.nwarps, 0);
    m.slots.assign((size_t)m.nwarps * 2 * 32, 0);
    m.dynamic_bytes = c.shared_bytes;
    m.dynamic.assign(std::max<size_t>(c.shared_bytes, 16), 0xFF);
    // blocks in grid order, reversed, or shuffled
    const unsigned long long nblocks = (unsigned long long)c.grid[0] * c.grid[1] * c.grid[2];
    std::vector<unsigned long long> order(nblocks);
    for (unsigned long long k = 0; k < nblocks; ++k) order[k] = k;
    if (c.policy == REVERSE) std::reverse(order.begin(), order.end());
    if (c.policy == RANDOM)
        for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[m.rng.below(k)]);
    for (unsigned long long k : order) {
        m.block_idx = uint3{(unsigned int)(k % c.grid[0]), (unsigned int)((k / c.grid[0]) % c.grid[1]),
                            (unsigned int)(k / ((unsigned long long)c.grid[0] * c.grid[1]))};
        if (!run_block()) return 2;
    }
    return 0;
}

// ---------------------------------------------------------------- kernels called from a void** of arguments
template <typename... A> struct Call {
    void (*kernel)(A...);
    void** args;
    template <size_t... I> void invoke(std::index_sequence<I...>) {
        kernel(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
    }
    static void run(void* self) { static_cast<Call*>(self)->invoke(std::index_sequence_for<A...>{}); }
};

template <typename... A> inline int launch(void (*kernel)(A...), void** args, const Config* c) {
    Call<A...> call{kernel, args};
    return launch_body(&Call<A...>::run, &call, *c);
}

// ---------------------------------------------------------------- parameter type codes
// "p" + pointee for pointers ("c" appended when it points to const), then
// f2 (__half) bf2 (__nv_bfloat16) f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1, "?N" for anything else
template <typename T> struct Code;
template <typename T> inline std::string code_of();
template <typename T> inline std::string scalar_code() {
    typedef typename std::remove_cv<T>::type U;
    if (std::is_same<U, bool>::value) return "b1";
    if (std::is_same<U, __half>::value) return "f2";
    if (std::is_same<U, __nv_bfloat16>::value) return "bf2";
    if (std::is_floating_point<U>::value) return "f" + std::to_string(sizeof(U));
    if (std::is_integral<U>::value) return (std::is_signed<U>::value ? "i" : "u") + std::to_string(sizeof(U));
    return "?" + std::to_string(sizeof(U));
}
template <typename T> inline std::string code_of() {
    if (std::is_pointer<T>::value) {
        typedef typename std::remove_pointer<T>::type P;
        return "p" + code_of<typename std::remove_cv<P>::type>() + (std::is_const<P>::value ? "c" : "");
    }
    return scalar_code<T>();
}
template <typename... A> inline std::string signature(void (*)(A...)) {
    std::string s;
    const std::string parts[] = {code_of<A>()..., ""};
    for (size_t k = 0; k + 1 < sizeof(parts) / sizeof(parts[0]); ++k) s += (k ? "," : "") + parts[k];
    return s;
}

}  // namespace gahost

// ================================================================ CUDA built-ins
#define threadIdx (::gahost::thread_idx())
#define blockIdx (static_cast<const uint3&>(::gahost::M().block_idx))
#define blockDim (static_cast<const dim3&>(::gahost::M().block_dim))
#define gridDim (static_cast<const dim3&>(::gahost::M().grid_dim))

inline void __syncthreads() { ::gahost::block_barrier(0); }
inline int __syncthreads_count(int p) { return (int)::gahost::block_barrier(p); }
inline int __syncthreads_and(int p) { return ::gahost::block_barrier(p) == (long long)::gahost::M().nthreads; }
inline int __syncthreads_or(int p) { return ::gahost::block_barrier(p) != 0; }
inline void __syncwarp(unsigned int mask = 0xffffffffu) { ::gahost::warp_exchange(mask, 0, "__syncwarp"); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T> inline T __shfl_sync(unsigned int mask, T v, int src, int width = warpSize) {
    const int lane = ::gahost::lane_id();
    return ::gahost::shfl(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), "__shfl_sync");
}
template <typename T> inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = warpSize) {
    const int lane = ::gahost::lane_id();
    int src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return ::gahost::shfl(mask, v, src, "__shfl_xor_sync");
}
template <typename T> inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = warpSize) {
    const int lane = ::gahost::lane_id();
    int src = lane + (int)delta;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return ::gahost::shfl(mask, v, src, "__shfl_down_sync");
}
template <typename T> inline T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = warpSize) {
    const int lane = ::gahost::lane_id();
    int src = lane - (int)delta;
    if (src < (lane & ~(width - 1))) src = lane;
    return ::gahost::shfl(mask, v, src, "__shfl_up_sync");
}
inline unsigned int __ballot_sync(unsigned int mask, int pred) {
    const unsigned long long* b = ::gahost::warp_exchange(mask, pred != 0, "__ballot_sync");
    unsigned int r = 0;
    for (int l = 0; l < 32; ++l) r |= (b[l] ? 1u : 0u) << l;
    return r;
}
inline int __any_sync(unsigned int mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned int mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }
inline unsigned int __activemask() { return 0xffffffffu; }

// atomics: fibers never interleave inside one, so plain read-modify-write
template <typename T> inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> inline T atomicMax(T* p, T v) { T o = *p; *p = o > v ? o : v; return o; }
template <typename T> inline T atomicMin(T* p, T v) { T o = *p; *p = o < v ? o : v; return o; }
template <typename T> inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <typename T> inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }

template <typename T> inline T __ldg(const T* p) { return *p; }

// what tests/toolchain/hostcuda.py puts after a block-scope __shared__ declaration: the first
// thread of a block to reach it fills it with 0xFF bytes
namespace gahost {
inline void touch_shared(void* p, size_t bytes, unsigned long long& epoch) {
    if (epoch != shared_epoch()) {
        epoch = shared_epoch();
        std::memset(p, 0xFF, bytes);
    }
}
}  // namespace gahost
