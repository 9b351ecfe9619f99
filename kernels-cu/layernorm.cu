// layernorm.cu — fused residual add + LayerNorm forward, and LayerNorm backward.
//   residual_layernorm_forward: s = a + b (rounded to storage, written to `residual`), then
//       y = (s − mean) · rstd · gamma + beta over the last dimension, rstd = 1/√(var + 1e-5), biased variance,
//       mean and rstd saved per row in fp32. With b = nullptr it is a plain LayerNorm of a (residual unused).
//   layernorm_backward_dx: dx (=|+=) rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · gamma, x̂ = (x − mean) · rstd
//   layernorm_backward_dparams_partial / _reduce: dGamma += Σ_rows dy · x̂, dBeta += Σ_rows dy, in two stages:
//       per-chunk column sums into an fp32 scratch buffer, then a fixed-order sum over the chunks (deterministic,
//       no atomics).
// CPU reference: runtime/Shardwise/Cpu/LayerNormKernels.cs (CpuOps.LayerNorm / LayerNormBackward) and
// runtime/Shardwise/Cpu/AddKernels.cs for the residual sum.
#include "shardwise_common.cuh"

#define SW_LAYERNORM_EPSILON 1e-5f

// Grid: one warp per row. blockDim.x a multiple of 32 (256 suggested: 8 rows per block),
// gridDim.x = ceil(rows / (blockDim.x / 32)). `residual` may alias `a` (in-place residual stream update).
template <typename T>
SW_INLINE void residual_layernorm_forward(const T* a, const T* b, T* residual, const T* gamma, const T* beta,
                                          T* y, float* mean_out, float* rstd_out, int rows, int dim)
{
    int row = blockIdx.x * (blockDim.x / SW_WARP_SIZE) + threadIdx.x / SW_WARP_SIZE;
    int lane = threadIdx.x % SW_WARP_SIZE;
    if (row >= rows) return;  // whole warps leave together
    long long base = (long long)row * dim;

    // Pass 1: the residual sum (stored, then read back as stored so forward and backward see the same x) and Σx.
    float sum = 0.0f;
    for (int j = lane; j < dim; j += SW_WARP_SIZE)
    {
        float v = sw_to_float(a[base + j]);
        if (b != nullptr)
        {
            T stored = sw_from_float<T>(v + sw_to_float(b[base + j]));
            residual[base + j] = stored;
            v = sw_to_float(stored);
        }
        sum += v;
    }
    const T* x = (b != nullptr ? residual : a) + base;
    float mean = sw_warp_sum(sum) / dim;

    // Pass 2: the variance of the centred values (free of the cancellation in E[x²] − mean²).
    float squares = 0.0f;
    for (int j = lane; j < dim; j += SW_WARP_SIZE)
    {
        float centred = sw_to_float(x[j]) - mean;
        squares += centred * centred;
    }
    float rstd = rsqrtf(sw_warp_sum(squares) / dim + SW_LAYERNORM_EPSILON);

    // Pass 3: normalise, scale, shift.
    for (int j = lane; j < dim; j += SW_WARP_SIZE)
    {
        float normalised = (sw_to_float(x[j]) - mean) * rstd;
        y[base + j] = sw_from_float<T>(normalised * sw_to_float(gamma[j]) + sw_to_float(beta[j]));
    }
    if (lane == 0)
    {
        if (mean_out != nullptr) mean_out[row] = mean;
        if (rstd_out != nullptr) rstd_out[row] = rstd;
    }
}

// Grid: one warp per row, as the forward. dx may alias dy when accumulate is 0.
// A lane keeps its elements of the row (dim ≤ 32·SW_LN_CACHED, i.e. 1024) in registers: each input is read once, and
// every load of the row is issued before the first store. Interleaving loads with stores to dx (which may alias the
// inputs) kept the compiler from overlapping the loads: each waited for memory on its own, and with accumulate the
// kernel ran at a twentieth of the bandwidth (418 µs instead of ~35 µs for 16384 × 768 bf16 on an H200, measured with
// ncu). Wider rows take the loop below, which reads the inputs twice.
#define SW_LN_CACHED 32

template <typename T>
SW_INLINE void layernorm_backward_dx(const T* x, const T* gamma, const float* mean, const float* rstd, const T* dy,
                                     T* dx, int rows, int dim, int accumulate)
{
    int row = blockIdx.x * (blockDim.x / SW_WARP_SIZE) + threadIdx.x / SW_WARP_SIZE;
    int lane = threadIdx.x % SW_WARP_SIZE;
    if (row >= rows) return;
    long long base = (long long)row * dim;
    float row_mean = mean[row], row_rstd = rstd[row];

    if (dim <= SW_LN_CACHED * SW_WARP_SIZE)
    {
        float g[SW_LN_CACHED], xhat[SW_LN_CACHED], previous[SW_LN_CACHED];
        float sum_g = 0.0f, sum_g_xhat = 0.0f;
        SW_UNROLL
        for (int i = 0; i < SW_LN_CACHED; i++)
        {
            int j = lane + i * SW_WARP_SIZE;
            g[i] = 0.0f;
            xhat[i] = 0.0f;
            previous[i] = 0.0f;
            if (j < dim)
            {
                g[i] = sw_to_float(dy[base + j]) * sw_to_float(gamma[j]);
                xhat[i] = (sw_to_float(x[base + j]) - row_mean) * row_rstd;
                if (accumulate) previous[i] = sw_to_float(dx[base + j]);
                sum_g += g[i];
                sum_g_xhat += g[i] * xhat[i];
            }
        }
        float mean_g = sw_warp_sum(sum_g) / dim, mean_g_xhat = sw_warp_sum(sum_g_xhat) / dim;
        SW_UNROLL
        for (int i = 0; i < SW_LN_CACHED; i++)
        {
            int j = lane + i * SW_WARP_SIZE;
            if (j < dim) dx[base + j] = sw_from_float<T>(row_rstd * (g[i] - mean_g - xhat[i] * mean_g_xhat) + previous[i]);
        }
        return;
    }

    float sum_g = 0.0f, sum_g_xhat = 0.0f;
    for (int j = lane; j < dim; j += SW_WARP_SIZE)
    {
        float g = sw_to_float(dy[base + j]) * sw_to_float(gamma[j]);
        sum_g += g;
        sum_g_xhat += g * (sw_to_float(x[base + j]) - row_mean) * row_rstd;
    }
    float mean_g = sw_warp_sum(sum_g) / dim, mean_g_xhat = sw_warp_sum(sum_g_xhat) / dim;

    for (int j = lane; j < dim; j += SW_WARP_SIZE)
    {
        float xhat = (sw_to_float(x[base + j]) - row_mean) * row_rstd;
        float g = sw_to_float(dy[base + j]) * sw_to_float(gamma[j]);
        float gradient = row_rstd * (g - mean_g - xhat * mean_g_xhat);
        if (accumulate) gradient += sw_to_float(dx[base + j]);
        dx[base + j] = sw_from_float<T>(gradient);
    }
}

// Stage 1. Grid: blockDim = (32, Y) with Y ≤ 32 (32 × 8 suggested); gridDim = (ceil(dim / 32), chunks).
// Block (bx, c) sums columns bx·32 … bx·32+31 over the rows of chunk c (rows split into gridDim.y equal chunks);
// threadIdx.y strides over the chunk's rows and the Y partial sums are added in a fixed order.
// partials: fp32 [chunks][2][dim] — dGamma terms, then dBeta terms.
template <typename T>
SW_INLINE void layernorm_backward_dparams_partial(const T* x, const float* mean, const float* rstd, const T* dy,
                                                  float* partials, int rows, int dim)
{
    __shared__ float gamma_terms[SW_WARP_SIZE][SW_WARP_SIZE + 1];
    __shared__ float beta_terms[SW_WARP_SIZE][SW_WARP_SIZE + 1];
    int column = blockIdx.x * SW_WARP_SIZE + threadIdx.x;
    int chunk = blockIdx.y, chunk_rows = (rows + gridDim.y - 1) / gridDim.y;
    int begin = chunk * chunk_rows, end = min(rows, begin + chunk_rows);

    float sum_gamma = 0.0f, sum_beta = 0.0f;
    if (column < dim)
    {
        for (int r = begin + threadIdx.y; r < end; r += blockDim.y)
        {
            long long index = (long long)r * dim + column;
            float d = sw_to_float(dy[index]);
            sum_gamma += d * (sw_to_float(x[index]) - mean[r]) * rstd[r];
            sum_beta += d;
        }
    }
    gamma_terms[threadIdx.y][threadIdx.x] = sum_gamma;
    beta_terms[threadIdx.y][threadIdx.x] = sum_beta;
    __syncthreads();
    if (threadIdx.y == 0 && column < dim)
    {
        for (int k = 1; k < (int)blockDim.y; k++)
        {
            sum_gamma += gamma_terms[k][threadIdx.x];
            sum_beta += beta_terms[k][threadIdx.x];
        }
        float* out = partials + (long long)chunk * 2 * dim;
        out[column] = sum_gamma;
        out[dim + column] = sum_beta;
    }
}

// Stage 2. Grid: ceil(dim / 32) blocks of (32, 32) threads (sw_column_sum_over_chunks).
template <typename T>
SW_INLINE void layernorm_backward_dparams_reduce(const float* partials, int chunks, T* d_gamma, T* d_beta, int dim)
{
    int column = blockIdx.x * SW_WARP_SIZE + threadIdx.x;
    float sum_gamma = sw_column_sum_over_chunks(partials, 2LL * dim, chunks, column, dim);
    float sum_beta = sw_column_sum_over_chunks(partials + dim, 2LL * dim, chunks, column, dim);
    if (threadIdx.y != 0 || column >= dim) return;
    d_gamma[column] = sw_from_float<T>(sw_to_float(d_gamma[column]) + sum_gamma);
    d_beta[column] = sw_from_float<T>(sw_to_float(d_beta[column]) + sum_beta);
}

#define SW_LAYERNORM_KERNELS(suffix, T)                                                                      \
    extern "C" __global__ void residual_layernorm_forward_##suffix(                                          \
        const T* a, const T* b, T* residual, const T* gamma, const T* beta, T* y, float* mean, float* rstd,  \
        int rows, int dim)                                                                                   \
    {                                                                                                        \
        residual_layernorm_forward<T>(a, b, residual, gamma, beta, y, mean, rstd, rows, dim);                \
    }                                                                                                        \
    SW_KERNEL_REGISTER(residual_layernorm_forward_##suffix)                                                  \
    extern "C" __global__ void layernorm_backward_dx_##suffix(const T* x, const T* gamma, const float* mean, \
                                                              const float* rstd, const T* dy, T* dx,         \
                                                              int rows, int dim, int accumulate)             \
    {                                                                                                        \
        layernorm_backward_dx<T>(x, gamma, mean, rstd, dy, dx, rows, dim, accumulate);                       \
    }                                                                                                        \
    SW_KERNEL_REGISTER(layernorm_backward_dx_##suffix)                                                       \
    extern "C" __global__ void layernorm_backward_dparams_partial_##suffix(                                  \
        const T* x, const float* mean, const float* rstd, const T* dy, float* partials, int rows, int dim)   \
    {                                                                                                        \
        layernorm_backward_dparams_partial<T>(x, mean, rstd, dy, partials, rows, dim);                       \
    }                                                                                                        \
    SW_KERNEL_REGISTER(layernorm_backward_dparams_partial_##suffix)                                          \
    extern "C" __global__ void layernorm_backward_dparams_reduce_##suffix(const float* partials, int chunks, \
                                                                          T* d_gamma, T* d_beta, int dim)    \
    {                                                                                                        \
        layernorm_backward_dparams_reduce<T>(partials, chunks, d_gamma, d_beta, dim);                        \
    }                                                                                                        \
    SW_KERNEL_REGISTER(layernorm_backward_dparams_reduce_##suffix)

SW_FOR_EACH_STORAGE(SW_LAYERNORM_KERNELS)
