// bias.cu — the bias of a Linear layer as a separate step: after a cuBLAS GEMM that has no bias (CudaOps.Linear),
// and after the all-reduce of a row-parallel Linear's partial sums (ITensorOps.AddBias).
//   add_bias:                  y[r, :] += bias
//   add_bias_backward_partial: stage 1: partials[c, j] = Σ dy[r, j] over the rows r of chunk c (fp32)
//   add_bias_backward_reduce:  stage 2: dBias[j] += Σ_c partials[c, j], chunks in order
// The gradient is deterministic and uses no atomics: every sum has a fixed order for a fixed chunk count.
// CPU reference: runtime/Shardwise/Cpu/LinearKernels.cs (AddBias / AddBiasBackward, and the bias of Forward /
// Backward; CpuOps.AddBias / AddBiasBackward / Linear / LinearBackward).
#include "shardwise_common.cuh"

// Grid: a grid-stride loop over rows · dim elements; 256 threads suggested, any grid size. y is read and written
// by the same thread only.
template <typename T>
SW_INLINE void add_bias(T* y, const T* bias, long long rows, int dim)
{
    long long n = rows * dim;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = sw_from_float<T>(sw_to_float(y[i]) + sw_to_float(bias[i % dim]));
}

// Stage 1. Grid: (ceil(dim / blockDim.x), chunks); one thread per column of one chunk of rows (rows split into
// gridDim.y equal chunks, the last one shorter); it walks its chunk's rows in order. Neighbouring threads read
// neighbouring columns, so the loads coalesce. partials: fp32 [chunks][dim].
template <typename T>
SW_INLINE void add_bias_backward_partial(const T* dy, float* partials, int rows, int dim)
{
    int column = blockIdx.x * blockDim.x + threadIdx.x;
    if (column >= dim) return;
    int chunk = blockIdx.y, chunk_rows = (rows + gridDim.y - 1) / gridDim.y;
    int begin = chunk * chunk_rows, end = min(rows, begin + chunk_rows);
    float sum = 0.0f;
    for (int r = begin; r < end; r++) sum += sw_to_float(dy[(long long)r * dim + column]);
    partials[(long long)chunk * dim + column] = sum;
}

// Stage 2. Grid: ceil(dim / 32) blocks of (32, 32) threads (sw_column_sum_over_chunks).
template <typename T>
SW_INLINE void add_bias_backward_reduce(const float* partials, int chunks, T* d_bias, int dim)
{
    int column = blockIdx.x * SW_WARP_SIZE + threadIdx.x;
    float sum = sw_column_sum_over_chunks(partials, dim, chunks, column, dim);
    if (threadIdx.y == 0 && column < dim) d_bias[column] = sw_from_float<T>(sw_to_float(d_bias[column]) + sum);
}

#define SW_BIAS_KERNELS(suffix, T)                                                                          \
    extern "C" __global__ void add_bias_##suffix(T* y, const T* bias, long long rows, int dim)             \
    {                                                                                                       \
        add_bias<T>(y, bias, rows, dim);                                                                    \
    }                                                                                                       \
    SW_KERNEL_REGISTER(add_bias_##suffix)                                                                   \
    extern "C" __global__ void add_bias_backward_partial_##suffix(const T* dy, float* partials, int rows,  \
                                                                  int dim)                                  \
    {                                                                                                       \
        add_bias_backward_partial<T>(dy, partials, rows, dim);                                              \
    }                                                                                                       \
    SW_KERNEL_REGISTER(add_bias_backward_partial_##suffix)                                                  \
    extern "C" __global__ void add_bias_backward_reduce_##suffix(const float* partials, int chunks,        \
                                                                 T* d_bias, int dim)                        \
    {                                                                                                       \
        add_bias_backward_reduce<T>(partials, chunks, d_bias, dim);                                         \
    }                                                                                                       \
    SW_KERNEL_REGISTER(add_bias_backward_reduce_##suffix)

SW_FOR_EACH_STORAGE(SW_BIAS_KERNELS)
