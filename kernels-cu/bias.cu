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

// Stage 1. Columns per thread: one 16-byte vector's worth, SW_BIAS_COLUMNS(T) = 4 (fp32) or 8 (fp16/bf16) adjacent
// columns. Block (X, Y), X·Y ≤ SW_BIAS_MAX_THREADS (CudaOps: (32, 8)): the X threads of a row lane cover X·COLUMNS
// neighbouring columns (a warp reads 512 contiguous bytes of a row per load), the Y row lanes split the chunk's rows.
// Grid (ceil(dim / (X·COLUMNS)), chunks): rows split into gridDim.y equal chunks, the last one shorter.
// Thread (x, y) adds rows begin + y, begin + y + Y, … in order, loading SW_BIAS_ROWS_IN_FLIGHT of them before adding
// any (so several loads are in flight); the Y row-lane sums of each column are then added in order of y through
// shared memory and written by one thread per column. The order depends only on the launch shape, never on
// scheduling. The 16-byte loads need dy 16-byte aligned and dim a multiple of COLUMNS (so every row starts aligned);
// otherwise the same columns are read one element at a time, in the same order (bitwise the same sums).
// partials: fp32 [chunks][dim].
#define SW_BIAS_MAX_THREADS 256
#define SW_BIAS_ROWS_IN_FLIGHT 4
#define SW_BIAS_COLUMNS(T) ((int)(16 / sizeof(T)))

// sum[k] += Σ dy[r, first + k] over rows r = row, row + lanes, … < end, in that order (k < count; VECTOR: count is
// COLUMNS and the rows are 16-byte aligned).
template <bool VECTOR, int COLUMNS, typename T>
SW_INLINE void bias_column_sums(float (&sum)[COLUMNS], const T* dy, int dim, int first, int count, int row, int end,
                                int lanes)
{
    constexpr int IN_FLIGHT = SW_BIAS_ROWS_IN_FLIGHT;
    for (; row + (IN_FLIGHT - 1) * lanes < end; row += IN_FLIGHT * lanes)
    {
        float values[IN_FLIGHT][COLUMNS];
        SW_UNROLL
        for (int i = 0; i < IN_FLIGHT; i++)
            sw_load_elements<VECTOR>(dy + (long long)(row + i * lanes) * dim + first, values[i], count);
        SW_UNROLL
        for (int i = 0; i < IN_FLIGHT; i++)
        {
            SW_UNROLL
            for (int k = 0; k < COLUMNS; k++) sum[k] += values[i][k];
        }
    }
    for (; row < end; row += lanes)
    {
        float values[COLUMNS];
        sw_load_elements<VECTOR>(dy + (long long)row * dim + first, values, count);
        SW_UNROLL
        for (int k = 0; k < COLUMNS; k++) sum[k] += values[k];
    }
}

template <typename T>
SW_INLINE void add_bias_backward_partial(const T* dy, float* partials, int rows, int dim)
{
    constexpr int COLUMNS = SW_BIAS_COLUMNS(T);
    // Row-lane sums, COLUMNS per thread, padded to COLUMNS + 1 so that a warp's stores fall in distinct banks.
    __shared__ float lane_sums[SW_BIAS_MAX_THREADS * (COLUMNS + 1)];
    const int lanes = blockDim.y, block_columns = blockDim.x * COLUMNS;
    const int block_first = blockIdx.x * block_columns, first = block_first + threadIdx.x * COLUMNS;
    const int count = min(COLUMNS, dim - first);  // ≤ 0 for threads past the last column
    const int chunk = blockIdx.y, chunk_rows = (rows + gridDim.y - 1) / gridDim.y;
    const int begin = chunk * chunk_rows, end = min(rows, begin + chunk_rows);

    float sum[COLUMNS];
    SW_UNROLL
    for (int k = 0; k < COLUMNS; k++) sum[k] = 0.0f;
    // dim a multiple of COLUMNS: every thread with columns has COLUMNS of them.
    if (sw_vector_aligned<COLUMNS>(dy) && dim % COLUMNS == 0)
    {
        if (count > 0) bias_column_sums<true>(sum, dy, dim, first, count, begin + threadIdx.y, end, lanes);
    }
    else if (count > 0)
    {
        bias_column_sums<false>(sum, dy, dim, first, count, begin + threadIdx.y, end, lanes);
    }

    const int thread = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
    SW_UNROLL
    for (int k = 0; k < COLUMNS; k++) lane_sums[thread * (COLUMNS + 1) + k] = sum[k];
    __syncthreads();
    // Column j of the block belongs to thread x = j / COLUMNS of every row lane: add the lanes in order.
    for (int j = thread; j < block_columns && block_first + j < dim; j += threads)
    {
        int x = j / COLUMNS, k = j % COLUMNS;
        float total = 0.0f;
        for (int y = 0; y < lanes; y++) total += lane_sums[(y * blockDim.x + x) * (COLUMNS + 1) + k];
        partials[(long long)chunk * dim + block_first + j] = total;
    }
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
