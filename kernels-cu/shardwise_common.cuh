// shardwise_common.cuh — what every kernel file shares: warp and block reductions (sum, max, and the
// (max, sum-of-exponentials) pair of an online softmax) built on __shfl_xor_sync, the non-finite test, and the
// two hooks the CPU emulation harness (tests/kernels-harness/simt.hpp) fills in for its own build, lane-group sums,
// and vector loads/stores of N elements with their element-by-element fallback.
// CPU reference: none of its own; the reductions and vector accesses are checked through every kernel that uses them.
#pragma once
#include "shardwise_half.cuh"

#define SW_WARP_SIZE 32
#define SW_FULL_MASK 0xffffffffu

// Dynamic shared memory as an array of `type`. Declared through one byte array so that kernels templated over the
// storage type never declare conflicting `extern __shared__` arrays; the emulation maps it to its per-launch buffer.
#ifndef SW_EXTERN_SHARED
#define SW_EXTERN_SHARED(type, name)                                                                         \
    extern __shared__ __align__(16) unsigned char sw_dynamic_shared_bytes[];                                \
    type* name = reinterpret_cast<type*>(sw_dynamic_shared_bytes)
#endif

// Marks an extern "C" entry point. Nothing on the GPU (NVRTC finds entry points by name); the emulation harness
// records the name and signature so tests launch kernels by the names the runtime uses with cuLaunchKernel.
#ifndef SW_KERNEL_REGISTER
#define SW_KERNEL_REGISTER(name)
#endif

SW_INLINE float sw_negative_infinity() { return sw_bits_float(0xff800000u); }

// True for ±inf and NaN: all exponent bits set (the same test as Shardwise.Training's OverflowCheck).
SW_INLINE bool sw_is_nonfinite(float v) { return (sw_float_bits(v) & 0x7f800000u) == 0x7f800000u; }

// ---- warp reductions: every lane of a full warp calls them and every lane gets the result ----------------------

SW_INLINE float sw_warp_sum(float v)
{
    for (int offset = SW_WARP_SIZE / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(SW_FULL_MASK, v, offset);
    return v;
}

SW_INLINE float sw_warp_max(float v)
{
    for (int offset = SW_WARP_SIZE / 2; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(SW_FULL_MASK, v, offset));
    return v;
}

// Running state of a numerically safe softmax: the largest value seen and Σ exp(value − max).
struct sw_softmax_state
{
    float max;
    float sum;
};

SW_INLINE sw_softmax_state sw_softmax_empty() { return sw_softmax_state{sw_negative_infinity(), 0.0f}; }

// Adds one value, rescaling the sum when the maximum grows.
SW_INLINE void sw_softmax_add(sw_softmax_state& s, float v)
{
    if (v > s.max)
    {
        s.sum = s.sum * expf(s.max - v) + 1.0f;  // exp(−inf) = 0 when s was empty
        s.max = v;
    }
    else
    {
        s.sum += expf(v - s.max);
    }
}

SW_INLINE sw_softmax_state sw_softmax_merge(sw_softmax_state a, sw_softmax_state b)
{
    float m = fmaxf(a.max, b.max);
    if (m == sw_negative_infinity()) return a;  // both empty
    return sw_softmax_state{m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

SW_INLINE sw_softmax_state sw_warp_softmax(sw_softmax_state s)
{
    for (int offset = SW_WARP_SIZE / 2; offset > 0; offset >>= 1)
    {
        sw_softmax_state other{__shfl_xor_sync(SW_FULL_MASK, s.max, offset),
                               __shfl_xor_sync(SW_FULL_MASK, s.sum, offset)};
        s = sw_softmax_merge(s, other);
    }
    return s;
}

// ---- block reductions: blockDim.x a multiple of 32 (≤ 1024, blockDim.y = blockDim.z = 1); every thread of the
// block calls them (they contain __syncthreads) and every thread gets the result. They may be called back to back:
// the first barrier keeps a new call from overwriting partials that a previous call is still reading.

SW_INLINE float sw_block_sum(float v)
{
    __shared__ float partials[SW_WARP_SIZE];
    int lane = threadIdx.x % SW_WARP_SIZE, warp = threadIdx.x / SW_WARP_SIZE;
    int warps = blockDim.x / SW_WARP_SIZE;
    v = sw_warp_sum(v);
    __syncthreads();
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    return sw_warp_sum(lane < warps ? partials[lane] : 0.0f);
}

SW_INLINE float sw_block_max(float v)
{
    __shared__ float partials[SW_WARP_SIZE];
    int lane = threadIdx.x % SW_WARP_SIZE, warp = threadIdx.x / SW_WARP_SIZE;
    int warps = blockDim.x / SW_WARP_SIZE;
    v = sw_warp_max(v);
    __syncthreads();
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    return sw_warp_max(lane < warps ? partials[lane] : sw_negative_infinity());
}

SW_INLINE sw_softmax_state sw_block_softmax(sw_softmax_state s)
{
    __shared__ float maxima[SW_WARP_SIZE];
    __shared__ float sums[SW_WARP_SIZE];
    int lane = threadIdx.x % SW_WARP_SIZE, warp = threadIdx.x / SW_WARP_SIZE;
    int warps = blockDim.x / SW_WARP_SIZE;
    s = sw_warp_softmax(s);
    __syncthreads();
    if (lane == 0)
    {
        maxima[warp] = s.max;
        sums[warp] = s.sum;
    }
    __syncthreads();
    return sw_warp_softmax(lane < warps ? sw_softmax_state{maxima[lane], sums[lane]} : sw_softmax_empty());
}

// ---- column sums over chunks of rows (stage 2 of the deterministic parameter-gradient reductions) -------------

// Σ_{c < chunks} partials[c·stride + column] for the 32 neighbouring columns of a block: blockDim = (32, Y), Y ≤ 32,
// column = blockIdx.x·32 + threadIdx.x. Thread (x, y) adds chunks y, y + Y, …; the Y sums are then added in order
// of y, so the result depends only on the chunk count, never on scheduling. Many threads per column keep the loads
// in flight (one thread walking all chunks would be latency-bound). Every thread of the block calls it; the result
// is valid where threadIdx.y == 0.
SW_INLINE float sw_column_sum_over_chunks(const float* partials, long long stride, int chunks, int column, int columns)
{
    __shared__ float terms[SW_WARP_SIZE][SW_WARP_SIZE + 1];
    float sum = 0.0f;
    if (column < columns)
    {
        // Four loads issued before any is added (a thread has 8 of them at 256 chunks and 32 lanes): the sum keeps
        // the order c = y, y + Y, … either way.
        const int step = blockDim.y;
        int c = threadIdx.y;
        for (; c + 3 * step < chunks; c += 4 * step)
        {
            float v0 = partials[(long long)c * stride + column], v1 = partials[(long long)(c + step) * stride + column];
            float v2 = partials[(long long)(c + 2 * step) * stride + column];
            float v3 = partials[(long long)(c + 3 * step) * stride + column];
            sum += v0;
            sum += v1;
            sum += v2;
            sum += v3;
        }
        for (; c < chunks; c += step) sum += partials[(long long)c * stride + column];
    }
    __syncthreads();  // a previous call's readers are done with terms
    terms[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0)
        for (int k = 1; k < (int)blockDim.y; k++) sum += terms[k][threadIdx.x];
    return sum;
}

// ---- lane groups: reductions over aligned groups of LANES neighbouring lanes (LANES a power of two ≤ 32) --------

// Σ v over the LANES lanes of this lane's group, every lane of the group getting the result; the additions run in a
// fixed butterfly order (offsets LANES/2, …, 1). Every lane of the full warp calls it.
template <int LANES> SW_INLINE float sw_lane_group_sum(float v)
{
    static_assert(LANES >= 1 && LANES <= SW_WARP_SIZE && (LANES & (LANES - 1)) == 0, "LANES: a power of two ≤ 32");
    SW_UNROLL
    for (int offset = LANES / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(SW_FULL_MASK, v, offset);
    return v;
}

// ---- vector access: N adjacent elements of T as one 4-, 8- or 16-byte load or store ---------------------------
// Memory-bound kernels move 16 bytes per thread and instruction instead of 2 or 4. A pointer is only taken as a
// vector after sw_vector_aligned says its address allows it (arena slices may start at any element); otherwise the
// same elements are moved one by one, in the same order, so both paths compute bitwise the same values. The choice is
// a template argument (VECTOR), made once per kernel: a kernel body instantiated for each keeps its loads in one
// basic block, where the compiler issues them all before the first use instead of waiting on each in turn.

// The raw bits of one vector: on the GPU the built-in unsigned / uint2 / uint4 (so a copy is one ld/st.global.v2 or
// .v4); in the emulation an aligned byte array.
#ifdef SW_DEVICE_PASS
template <int BYTES> struct sw_raw_vector;
template <> struct sw_raw_vector<4> { typedef unsigned type; };
template <> struct sw_raw_vector<8> { typedef uint2 type; };
template <> struct sw_raw_vector<16> { typedef uint4 type; };
#else
template <int BYTES> struct sw_raw_vector
{
    struct alignas(BYTES) type
    {
        unsigned char bytes[BYTES];
    };
};
#endif

template <typename T, int N> union sw_vector
{
    typename sw_raw_vector<(int)(N * sizeof(T))>::type raw;
    T element[N];
};

// Whether p can be read or written as vectors of N elements of T: its address a multiple of the vector's size.
template <int N, typename T> SW_INLINE bool sw_vector_aligned(const T* p)
{
    return reinterpret_cast<unsigned long long>(p) % (N * sizeof(T)) == 0;
}

// out[k] = p[k] widened to float. VECTOR: one vector load of all N (p sw_vector_aligned; count is N). Otherwise
// element by element, any alignment, k < count; elements at or past `count` read as 0.
template <bool VECTOR, int N, typename T> SW_INLINE void sw_load_elements(const T* p, float (&out)[N], int count)
{
    if constexpr (VECTOR)
    {
        sw_vector<T, N> v;
        v.raw = *reinterpret_cast<const typename sw_raw_vector<(int)(N * sizeof(T))>::type*>(p);
        SW_UNROLL
        for (int k = 0; k < N; k++) out[k] = sw_to_float(v.element[k]);
    }
    else
    {
        SW_UNROLL
        for (int k = 0; k < N; k++) out[k] = k < count ? sw_to_float(p[k]) : 0.0f;
    }
}

// p[k] = in[k] rounded to T. VECTOR: one vector store of all N (p sw_vector_aligned); otherwise element by element,
// k < count.
template <bool VECTOR, int N, typename T> SW_INLINE void sw_store_elements(T* p, const float (&in)[N], int count)
{
    if constexpr (VECTOR)
    {
        sw_vector<T, N> v;
        SW_UNROLL
        for (int k = 0; k < N; k++) v.element[k] = sw_from_float<T>(in[k]);
        *reinterpret_cast<typename sw_raw_vector<(int)(N * sizeof(T))>::type*>(p) = v.raw;
    }
    else
    {
        SW_UNROLL
        for (int k = 0; k < N; k++)
            if (k < count) p[k] = sw_from_float<T>(in[k]);
    }
}
