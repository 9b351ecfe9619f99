// simt.hpp — runs CUDA kernels from kernels-cu/ on the CPU, for tests on machines without a GPU.
// Force-included before each kernel file (g++ -x c++ -include simt.hpp), it turns the CUDA dialect into C++:
// __global__/__device__ vanish, __shared__ becomes a function-local static (one block runs at a time), the built-in
// index variables are globals the scheduler sets, and barriers, warp shuffles and votes park the calling CUDA
// thread, which is a fiber (see simt.cpp), until its block or warp has arrived. See
// shared/reference/simt-emulation.md for the design and what it does and does not prove.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

struct dim3
{
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
using uint3 = dim3;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static

// Set by the scheduler before it resumes a CUDA thread (defined in simt.cpp).
extern dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace simt
{
enum class WarpOp : int { Sync, ShuffleIndex, ShuffleXor, ShuffleDown, ShuffleUp, Ballot };

void syncthreads();
std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int argument, int width);
void* dynamic_shared_memory();
[[noreturn]] void fail(const char* message);

template <typename T>
inline T shuffle(WarpOp op, unsigned mask, T value, int argument, int width)
{
    static_assert(sizeof(T) <= sizeof(std::uint64_t) && std::is_trivially_copyable_v<T>, "shuffle of a wide type");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = warp_op(op, mask, bits, argument, width);
    T result;
    std::memcpy(&result, &bits, sizeof(T));
    return result;
}

// ---- kernel registry: SW_KERNEL_REGISTER(name) records each extern "C" entry point with its parameter sizes, so
// tests launch by name with a cuLaunchKernel-style array of pointers to the arguments.
using Thunk = void (*)(void* kernel, void** arguments);

template <typename... A, std::size_t... I>
inline void call_unpacked(void (*kernel)(A...), void** arguments, std::index_sequence<I...>)
{
    kernel(*static_cast<std::remove_reference_t<A>*>(arguments[I])...);
}

template <typename... A>
inline void thunk(void* kernel, void** arguments)
{
    call_unpacked(reinterpret_cast<void (*)(A...)>(kernel), arguments, std::index_sequence_for<A...>{});
}

int register_kernel(const char* name, void* kernel, Thunk thunk, const unsigned* sizes, int count);

template <typename... A>
inline int register_kernel(const char* name, void (*kernel)(A...))
{
    static const unsigned sizes[] = {static_cast<unsigned>(sizeof(A))..., 0u};
    return register_kernel(name, reinterpret_cast<void*>(kernel), &thunk<A...>, sizes, static_cast<int>(sizeof...(A)));
}
} // namespace simt

#define SW_KERNEL_REGISTER(name) static const int simt_registered_##name = ::simt::register_kernel(#name, &name);
#define SW_EXTERN_SHARED(type, name) type* name = static_cast<type*>(::simt::dynamic_shared_memory())

// ---- barriers and warp-level primitives -------------------------------------------------------------------------
inline void __syncthreads() { simt::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { simt::warp_op(simt::WarpOp::Sync, mask, 0, 0, 32); }

template <typename T> inline T __shfl_sync(unsigned mask, T v, int lane, int width = 32)
{
    return simt::shuffle(simt::WarpOp::ShuffleIndex, mask, v, lane, width);
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    return simt::shuffle(simt::WarpOp::ShuffleXor, mask, v, lane_mask, width);
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return simt::shuffle(simt::WarpOp::ShuffleDown, mask, v, static_cast<int>(delta), width);
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return simt::shuffle(simt::WarpOp::ShuffleUp, mask, v, static_cast<int>(delta), width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate)
{
    return static_cast<unsigned>(simt::warp_op(simt::WarpOp::Ballot, mask, predicate != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, !predicate) == 0; }

// ---- atomics: blocks and threads never run at the same time, so a plain read-modify-write is atomic ------------
template <typename T> inline T atomicAdd(T* address, T value) { T old = *address; *address = old + value; return old; }
template <typename T> inline T atomicMax(T* address, T value) { T old = *address; if (value > old) *address = value; return old; }
template <typename T> inline T atomicMin(T* address, T value) { T old = *address; if (value < old) *address = value; return old; }
template <typename T> inline T atomicExch(T* address, T value) { T old = *address; *address = value; return old; }
template <typename T> inline T atomicOr(T* address, T value) { T old = *address; *address = old | value; return old; }
template <typename T> inline T atomicCAS(T* address, T compare, T value)
{
    T old = *address;
    if (old == compare) *address = value;
    return old;
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- math and bit intrinsics --------------------------------------------------------------------------------------
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
template <typename T> inline T __ldg(const T* address) { return *address; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
