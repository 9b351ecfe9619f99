// shardwise_half.cuh — the project's own 16-bit storage types and their conversions to and from float32.
//   sw_half: IEEE binary16 bits; sw_bf16: bfloat16 bits (the upper half of a float32).
// Narrowing rounds to nearest, ties to even, as the hardware and the C# CPU reference do
// (runtime/Shardwise/Precision/Float16Conversion.cs, BFloat16Conversion.cs); widening is exact.
// On the GPU (NVRTC, or nvcc's device pass) the conversions are single PTX cvt instructions. Everywhere else
// (the CPU emulation harness in tests/kernels-harness, plain C++) they are written out in C++ with the same results
// for every finite value and infinity; a NaN stays a NaN (its payload may differ from the PTX one).
// No toolkit header is used: NVRTC 11.8 has no cuda_fp16.h, and the emulation must not need one.
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)
#define SW_DEVICE_PASS 1
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SW_INLINE __device__ __forceinline__
#else
#define SW_INLINE inline
#endif

// Full unrolling of a loop with a constant trip count (so that arrays indexed by its counter stay in registers); the
// emulation's g++ has no such pragma and needs none.
#ifdef SW_DEVICE_PASS
#define SW_UNROLL _Pragma("unroll")
#else
#define SW_UNROLL
#endif

struct sw_half { unsigned short bits; };
struct sw_bf16 { unsigned short bits; };

SW_INLINE unsigned sw_float_bits(float f)
{
#ifdef SW_DEVICE_PASS
    return __float_as_uint(f);
#else
    unsigned u;
    __builtin_memcpy(&u, &f, sizeof u);
    return u;
#endif
}

SW_INLINE float sw_bits_float(unsigned u)
{
#ifdef SW_DEVICE_PASS
    return __uint_as_float(u);
#else
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// ---- binary16 -------------------------------------------------------------------------------------------------

SW_INLINE sw_half sw_float_to_half(float f)
{
#ifdef SW_DEVICE_PASS
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return sw_half{h};
#else
    unsigned x = sw_float_bits(f);
    unsigned short sign = (unsigned short)((x >> 16) & 0x8000u);
    unsigned a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sw_half{(unsigned short)(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};  // quiet NaN
    if (a >= 0x477ff000u) return sw_half{(unsigned short)(sign | 0x7c00u)};  // ≥ 65520 (or inf) rounds to inf
    if (a >= 0x38800000u)
    {
        // Normal: rebias the exponent (127 → 15) and round the 23-bit mantissa to 10 bits, ties to even;
        // a carry out of the mantissa correctly bumps the exponent.
        unsigned rounded = a + 0xfffu + ((a >> 13) & 1u);
        return sw_half{(unsigned short)(sign | ((rounded >> 13) - (112u << 10)))};
    }
    if (a < 0x33000000u) return sw_half{sign};  // below 2^-25: rounds to zero (2^-25 itself ties to even zero)
    // Subnormal: the value in units of 2^-24 is mantissa >> shift, rounded to nearest even.
    unsigned exponent = a >> 23, mantissa = (a & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - exponent;  // 14 … 24
    unsigned q = mantissa >> shift, remainder = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (q & 1u))) q++;
    return sw_half{(unsigned short)(sign | q)};
#endif
}

SW_INLINE float sw_half_to_float(sw_half h)
{
#ifdef SW_DEVICE_PASS
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
#else
    unsigned sign = (unsigned)(h.bits & 0x8000u) << 16;
    unsigned exponent = (h.bits >> 10) & 0x1fu, mantissa = h.bits & 0x3ffu;
    if (exponent == 0x1fu) return sw_bits_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0)
    {
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;  // mantissa · 2^-24, exact
        return sign ? -magnitude : magnitude;
    }
    return sw_bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

// ---- bfloat16 -------------------------------------------------------------------------------------------------

SW_INLINE sw_bf16 sw_float_to_bf16(float f)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned short b;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
    return sw_bf16{b};
#else
    unsigned x = sw_float_bits(f);
    // A NaN whose payload sits only in the low bits would truncate to infinity: force the quiet bit.
    if ((x & 0x7fffffffu) > 0x7f800000u) return sw_bf16{(unsigned short)((x >> 16) | 0x40u)};
    // Adding 0x7fff plus the lowest kept bit rounds half-way cases to the even neighbour (carries reach inf).
    return sw_bf16{(unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16)};
#endif
}

SW_INLINE float sw_bf16_to_float(sw_bf16 b) { return sw_bits_float((unsigned)b.bits << 16); }

// ---- storage-generic access: kernels are templates over T = float, sw_half or sw_bf16 -------------------------

SW_INLINE float sw_to_float(float v) { return v; }
SW_INLINE float sw_to_float(sw_half v) { return sw_half_to_float(v); }
SW_INLINE float sw_to_float(sw_bf16 v) { return sw_bf16_to_float(v); }

template <typename T> struct sw_storage;
template <> struct sw_storage<float> { SW_INLINE static float from_float(float v) { return v; } };
template <> struct sw_storage<sw_half> { SW_INLINE static sw_half from_float(float v) { return sw_float_to_half(v); } };
template <> struct sw_storage<sw_bf16> { SW_INLINE static sw_bf16 from_float(float v) { return sw_float_to_bf16(v); } };

// Rounds a float32 to storage type T (round to nearest even for the 16-bit types).
template <typename T> SW_INLINE T sw_from_float(float v) { return sw_storage<T>::from_float(v); }

// Instantiates X(suffix, T) for each storage type: every kernel has _f32, _f16 and _bf16 entry points.
#define SW_FOR_EACH_STORAGE(X) X(f32, float) X(f16, sw_half) X(bf16, sw_bf16)
