// quantize_rows.cu — activation quantization of a Linear's input (DeepSpeed Compression, dynamic ranges): each row
// (token) of x [rows, dim] goes onto a grid of 2^bits levels over its own range, written dequantized to y:
//   symmetric:  scale = 2·max|x| / 2^bits,   y = clamp(rint(x / scale), −2^(bits−1), 2^(bits−1) − 1) · scale
//   asymmetric: scale = (max − min) / 2^bits, zero = rint(min / scale) · scale,
//               y = clamp(rint((x − zero) / scale), 0, 2^bits − 1) · scale + zero
// rint rounds half to even, as torch.round. A row whose scale is 0 (all zeros; constant, asymmetric) is copied.
// y must not alias x (every thread reads the row again after the reductions).
// CPU reference: runtime/Shardwise.Training/ModelCompression/WeightQuantizer.cs with one group per row
// (ActivationQuantizer.Quantize, which CpuOps.Linear calls).
// Grid: one block per row; blockDim.x a multiple of 32, at most 1024 (256 suggested).
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void quantize_rows(const T* x, T* y, int dim, int bits, int asymmetric)
{
    const T* row = x + (long long)blockIdx.x * dim;
    T* out = y + (long long)blockIdx.x * dim;
    float high = sw_negative_infinity(), negatedLow = sw_negative_infinity();
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
    {
        float v = sw_to_float(row[i]);
        high = fmaxf(high, v);
        negatedLow = fmaxf(negatedLow, -v);
    }
    high = sw_block_max(high);
    float low = -sw_block_max(negatedLow);

    float levels = (float)(1 << bits);
    float scale, zero, first, last;
    if (asymmetric)
    {
        scale = (high - low) / levels;
        zero = scale == 0.0f ? 0.0f : rintf(low / scale) * scale;
        first = 0.0f;
        last = levels - 1.0f;
    }
    else
    {
        scale = 2.0f * fmaxf(fabsf(high), fabsf(low)) / levels;
        zero = 0.0f;
        first = -levels / 2.0f;
        last = levels / 2.0f - 1.0f;
    }
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
    {
        float v = sw_to_float(row[i]);
        out[i] = scale == 0.0f ? row[i] : sw_from_float<T>(fminf(fmaxf(rintf((v - zero) / scale), first), last) * scale + zero);
    }
}

#define SW_QUANTIZE_ROWS_KERNELS(suffix, T)                                                                 \
    extern "C" __global__ void quantize_rows_##suffix(const T* x, T* y, int dim, int bits, int asymmetric)  \
    {                                                                                                       \
        quantize_rows<T>(x, y, dim, bits, asymmetric);                                                      \
    }                                                                                                       \
    SW_KERNEL_REGISTER(quantize_rows_##suffix)

SW_FOR_EACH_STORAGE(SW_QUANTIZE_ROWS_KERNELS)
