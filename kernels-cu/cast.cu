// cast.cu — element conversions between fp32 and the 16-bit storage types (round to nearest even; widening exact):
//   cast_f32_to_f16, cast_f32_to_bf16, cast_f16_to_f32, cast_bf16_to_f32: out[i] = convert(in[i]).
// CPU reference: runtime/Shardwise/Precision/Float16Conversion.cs and BFloat16Conversion.cs.
// Grid: a grid-stride loop; 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

template <typename From, typename To>
SW_INLINE void cast(const From* in, To* out, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = sw_from_float<To>(sw_to_float(in[i]));
}

#define SW_CAST_KERNEL(name, From, To)                                                                      \
    extern "C" __global__ void name(const From* in, To* out, long long n) { cast<From, To>(in, out, n); }   \
    SW_KERNEL_REGISTER(name)

SW_CAST_KERNEL(cast_f32_to_f16, float, sw_half)
SW_CAST_KERNEL(cast_f32_to_bf16, float, sw_bf16)
SW_CAST_KERNEL(cast_f16_to_f32, sw_half, float)
SW_CAST_KERNEL(cast_bf16_to_f32, sw_bf16, float)
