// global_norm.cu — the squared global gradient norm for clipping, as per-block partial sums, and the fixed-order
// final sum.
//   global_norm_squared: partials[b] (=|+=) Σ g[i]² over the elements block b visits (fp32). Calling it once per
//       gradient buffer with accumulate = 1 after the first (and the same grid) sums any number of buffers.
//   sum_f32: out[0] = multiplier · Σ values[i] — the norm² from the partials (multiplier 1), or the mean loss from
//       per-row losses (multiplier 1/rows).
// CPU reference: runtime/Shardwise.Training/Optim/GradientClipping.cs (SumOfSquares, accumulated there in double).
// Deterministic for a fixed grid: no atomics, and every sum has a fixed order.
// Grid: global_norm_squared — blockDim.x a multiple of 32 (512 suggested), gridDim.x = the number of partials
// (e.g. 2 · SMs; keep it fixed across steps); sum_f32 — exactly one block, blockDim.x a multiple of 32 (1024).
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void global_norm_squared(const T* g, long long n, float* partials, int accumulate)
{
    float sum = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float v = sw_to_float(g[i]);
        sum += v * v;
    }
    sum = sw_block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = accumulate ? partials[blockIdx.x] + sum : sum;
}

#define SW_GLOBAL_NORM_KERNELS(suffix, T)                                                                   \
    extern "C" __global__ void global_norm_squared_##suffix(const T* g, long long n, float* partials,       \
                                                            int accumulate)                                 \
    {                                                                                                       \
        global_norm_squared<T>(g, n, partials, accumulate);                                                 \
    }                                                                                                       \
    SW_KERNEL_REGISTER(global_norm_squared_##suffix)

SW_FOR_EACH_STORAGE(SW_GLOBAL_NORM_KERNELS)

extern "C" __global__ void sum_f32(const float* values, int n, float* out, float multiplier)
{
    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += values[i];
    sum = sw_block_sum(sum);
    if (threadIdx.x == 0) out[0] = sum * multiplier;
}
SW_KERNEL_REGISTER(sum_f32)
