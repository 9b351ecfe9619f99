// layernorm.cu — fused residual add + LayerNorm forward, and LayerNorm backward.
//   residual_layernorm_forward: s = a + b (rounded to storage, written to `residual`), then
//       y = (s − mean) · rstd · gamma + beta over the last dimension, rstd = 1/√(var + 1e-5), biased variance,
//       mean and rstd saved per row in fp32. With b = nullptr it is a plain LayerNorm of a (residual unused).
//   layernorm_backward_dx: dx (=|+=) rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · gamma, x̂ = (x − mean) · rstd
//   layernorm_backward_dparams_partial / _reduce: dGamma += Σ_rows dy · x̂, dBeta += Σ_rows dy, in two stages:
//       per-chunk column sums into an fp32 scratch buffer, then a fixed-order sum over the chunks (deterministic,
//       no atomics).
//   residual_layernorm_forward_v{1..4}, layernorm_backward_fused_v{1..4}: the same for rows of aligned 16-byte vectors,
//       up to 1024 wide, held in registers; the backward computes dx and the stage-1 partials in one pass.
// CPU reference: runtime/Shardwise/Cpu/LayerNormKernels.cs (CpuOps.LayerNorm / LayerNormBackward) and
// runtime/Shardwise/Cpu/AddKernels.cs for the residual sum.
#include "shardwise_common.cuh"

#define SW_LAYERNORM_EPSILON 1e-5f

// A lane's unit of a row in the vector kernels: 16 bytes (4 fp32 or 8 16-bit elements), one ld/st.global.v4.
typedef sw_raw_vector<16>::type sw_ln_raw;
template <typename T> using sw_ln_vector = sw_vector<T, 16 / sizeof(T)>;

// Rows of whole 16-byte vectors, ≤ 32·VECTORS of them: the vector kernels below keep a lane's vectors in registers.
#define SW_LN_FUSED_MAX_DIM 1024

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

// The same as residual_layernorm_forward for rows of whole 16-byte vectors (16-byte aligned pointers, dim a multiple
// of 16/sizeof(T), ≤ 32·VECTORS vectors; CudaOps checks and otherwise runs the kernel above): lane l keeps the row's
// vectors l, l + 32, … in registers, so the row is read once (the scalar kernel reads it three times, two bytes per
// load) and the centred variance costs no second read. Grid: one warp per row, as above.
template <typename T, int VECTORS>
SW_INLINE void residual_layernorm_forward_vectors(const T* a, const T* b, T* residual, const T* gamma, const T* beta,
                                                  T* y, float* mean_out, float* rstd_out, int rows, int dim)
{
    constexpr int PER_VECTOR = 16 / sizeof(T);
    int row = blockIdx.x * (blockDim.x / SW_WARP_SIZE) + threadIdx.x / SW_WARP_SIZE;
    int lane = threadIdx.x % SW_WARP_SIZE;
    if (row >= rows) return;  // whole warps leave together
    long long base = (long long)row * dim;
    int vectors = dim / PER_VECTOR;
    const sw_ln_raw* a_row = reinterpret_cast<const sw_ln_raw*>(a + base);
    const sw_ln_raw* b_row = reinterpret_cast<const sw_ln_raw*>(b + base);

    sw_ln_vector<T> xv[VECTORS], bv[VECTORS];
    SW_UNROLL
    for (int i = 0; i < VECTORS; i++)
    {
        int k = lane + i * SW_WARP_SIZE;
        if (k >= vectors) continue;
        xv[i].raw = a_row[k];
        if (b != nullptr) bv[i].raw = b_row[k];
    }

    // The residual sum rounded to storage (forward and backward see the same x), stored, and Σx.
    float sum = 0.0f;
    SW_UNROLL
    for (int i = 0; i < VECTORS; i++)
    {
        int k = lane + i * SW_WARP_SIZE;
        if (k >= vectors) continue;
        if (b != nullptr)
        {
            SW_UNROLL
            for (int e = 0; e < PER_VECTOR; e++)
                xv[i].element[e] = sw_from_float<T>(sw_to_float(xv[i].element[e]) + sw_to_float(bv[i].element[e]));
            reinterpret_cast<sw_ln_raw*>(residual + base)[k] = xv[i].raw;
        }
        SW_UNROLL
        for (int e = 0; e < PER_VECTOR; e++) sum += sw_to_float(xv[i].element[e]);
    }
    float mean = sw_warp_sum(sum) / dim;

    float squares = 0.0f;
    SW_UNROLL
    for (int i = 0; i < VECTORS; i++)
    {
        if (lane + i * SW_WARP_SIZE >= vectors) continue;
        SW_UNROLL
        for (int e = 0; e < PER_VECTOR; e++)
        {
            float centred = sw_to_float(xv[i].element[e]) - mean;
            squares += centred * centred;
        }
    }
    float rstd = rsqrtf(sw_warp_sum(squares) / dim + SW_LAYERNORM_EPSILON);

    SW_UNROLL
    for (int i = 0; i < VECTORS; i++)
    {
        int k = lane + i * SW_WARP_SIZE;
        if (k >= vectors) continue;
        sw_ln_vector<T> g, sh, out;
        g.raw = reinterpret_cast<const sw_ln_raw*>(gamma)[k];
        sh.raw = reinterpret_cast<const sw_ln_raw*>(beta)[k];
        SW_UNROLL
        for (int e = 0; e < PER_VECTOR; e++)
        {
            float normalised = (sw_to_float(xv[i].element[e]) - mean) * rstd;
            out.element[e] = sw_from_float<T>(normalised * sw_to_float(g.element[e]) + sw_to_float(sh.element[e]));
        }
        reinterpret_cast<sw_ln_raw*>(y + base)[k] = out.raw;
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

// ---- the fused backward: dx and the chunk's parameter-gradient partials in one pass over x and dy ----------------

// The fused backward computes what layernorm_backward_dx and layernorm_backward_dparams_partial do, reading x and dy
// once instead of twice: the separate kernels took 40 + 35 µs per LayerNorm of 16384 × 768 bf16 on an H200, for
// ~16 µs of traffic. A block owns one chunk of rows (as stage 1 above: rows split into gridDim.x equal chunks); each
// warp takes every (blockDim.x/32)-th row of it. Lane l holds the 16-byte vectors l, l + 32, … of a row (VECTORS of
// them, dim ≤ 32·VECTORS·16/sizeof(T)) and keeps running dGamma/dBeta sums for those columns in registers. At the end
// the warps add their sums into shared memory one warp after another (a fixed order: deterministic) and the block
// writes partials[chunk][2][dim]; layernorm_backward_dparams_reduce then sums the chunks. Needs dim a multiple of
// 16/sizeof(T) and x, dy, dx, gamma 16-byte aligned (CudaOps checks; otherwise it runs the separate kernels). dx may
// alias dy when accumulate is 0: a row's loads all come before its stores, and only one warp touches a row.
// Grid: gridDim.x = chunks, blockDim.x = SW_LN_FUSED_THREADS (or fewer, a multiple of 32). Two blocks per SM are asked
// of the register allocator (≤ 128 per thread): the kernel is memory-bound and needs warps in flight more than it
// needs the fourth vector's registers.
#define SW_LN_FUSED_THREADS 256

template <typename T, int VECTORS>
SW_INLINE void layernorm_backward_fused(const T* x, const T* gamma, const float* mean, const float* rstd, const T* dy,
                                        T* dx, float* partials, int rows, int dim, int accumulate)
{
    constexpr int PER_VECTOR = 16 / sizeof(T);
    __shared__ float block_gamma[SW_LN_FUSED_MAX_DIM];
    __shared__ float block_beta[SW_LN_FUSED_MAX_DIM];
    int warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE, warps = blockDim.x / SW_WARP_SIZE;
    int chunk_rows = (rows + gridDim.x - 1) / gridDim.x;
    int begin = blockIdx.x * chunk_rows, end = min(rows, begin + chunk_rows);
    int vectors = dim / PER_VECTOR;

    sw_ln_vector<T> gamma_v[VECTORS];
    float sum_gamma[VECTORS][PER_VECTOR], sum_beta[VECTORS][PER_VECTOR];
    SW_UNROLL
    for (int i = 0; i < VECTORS; i++)
    {
        int k = lane + i * SW_WARP_SIZE;
        if (k < vectors) gamma_v[i].raw = reinterpret_cast<const sw_ln_raw*>(gamma)[k];
        SW_UNROLL
        for (int e = 0; e < PER_VECTOR; e++) sum_gamma[i][e] = sum_beta[i][e] = 0.0f;
    }

    for (int row = begin + warp; row < end; row += warps)
    {
        const sw_ln_raw* x_row = reinterpret_cast<const sw_ln_raw*>(x + (long long)row * dim);
        const sw_ln_raw* dy_row = reinterpret_cast<const sw_ln_raw*>(dy + (long long)row * dim);
        sw_ln_raw* dx_row = reinterpret_cast<sw_ln_raw*>(dx + (long long)row * dim);
        // Every load of the row first, so they are all in flight together (see SW_LN_CACHED above).
        sw_ln_vector<T> xv[VECTORS], dyv[VECTORS], previous[VECTORS];
        SW_UNROLL
        for (int i = 0; i < VECTORS; i++)
        {
            int k = lane + i * SW_WARP_SIZE;
            if (k < vectors)
            {
                xv[i].raw = x_row[k];
                dyv[i].raw = dy_row[k];
                if (accumulate) previous[i].raw = dx_row[k];
            }
        }
        float row_mean = mean[row], row_rstd = rstd[row];

        float sum_g = 0.0f, sum_g_xhat = 0.0f;
        SW_UNROLL
        for (int i = 0; i < VECTORS; i++)
        {
            if (lane + i * SW_WARP_SIZE >= vectors) continue;
            SW_UNROLL
            for (int e = 0; e < PER_VECTOR; e++)
            {
                float d = sw_to_float(dyv[i].element[e]);
                float xhat = (sw_to_float(xv[i].element[e]) - row_mean) * row_rstd;
                float g = d * sw_to_float(gamma_v[i].element[e]);
                sum_g += g;
                sum_g_xhat += g * xhat;
                sum_gamma[i][e] += d * xhat;
                sum_beta[i][e] += d;
            }
        }
        float mean_g = sw_warp_sum(sum_g) / dim, mean_g_xhat = sw_warp_sum(sum_g_xhat) / dim;

        SW_UNROLL
        for (int i = 0; i < VECTORS; i++)
        {
            int k = lane + i * SW_WARP_SIZE;
            if (k >= vectors) continue;
            sw_ln_vector<T> out;
            SW_UNROLL
            for (int e = 0; e < PER_VECTOR; e++)
            {
                float xhat = (sw_to_float(xv[i].element[e]) - row_mean) * row_rstd;
                float g = sw_to_float(dyv[i].element[e]) * sw_to_float(gamma_v[i].element[e]);
                float gradient = row_rstd * (g - mean_g - xhat * mean_g_xhat);
                if (accumulate) gradient += sw_to_float(previous[i].element[e]);
                out.element[e] = sw_from_float<T>(gradient);
            }
            dx_row[k] = out.raw;
        }
    }

    // The warps' column sums, added into shared memory in warp order.
    for (int w = 0; w < warps; w++)
    {
        if (warp == w)
        {
            SW_UNROLL
            for (int i = 0; i < VECTORS; i++)
            {
                int k = lane + i * SW_WARP_SIZE;
                if (k >= vectors) continue;
                SW_UNROLL
                for (int e = 0; e < PER_VECTOR; e++)
                {
                    int column = k * PER_VECTOR + e;
                    block_gamma[column] = (w == 0 ? 0.0f : block_gamma[column]) + sum_gamma[i][e];
                    block_beta[column] = (w == 0 ? 0.0f : block_beta[column]) + sum_beta[i][e];
                }
            }
        }
        __syncthreads();
    }
    float* out = partials + (long long)blockIdx.x * 2 * dim;
    for (int column = threadIdx.x; column < dim; column += blockDim.x)
    {
        out[column] = block_gamma[column];
        out[dim + column] = block_beta[column];
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

// residual_layernorm_forward_v{1..4}_… and layernorm_backward_fused_v{1..4}_…: VECTORS 16-byte vectors per lane, dims
// up to 1024 (16-bit) or 512 (fp32); CudaOps picks the smallest that covers the row.
#define SW_LAYERNORM_VECTOR_KERNELS(suffix, T, V)                                                            \
    extern "C" __global__ void residual_layernorm_forward_v##V##_##suffix(                                   \
        const T* a, const T* b, T* residual, const T* gamma, const T* beta, T* y, float* mean, float* rstd,  \
        int rows, int dim)                                                                                   \
    {                                                                                                        \
        residual_layernorm_forward_vectors<T, V>(a, b, residual, gamma, beta, y, mean, rstd, rows, dim);     \
    }                                                                                                        \
    SW_KERNEL_REGISTER(residual_layernorm_forward_v##V##_##suffix)                                           \
    extern "C" __global__ void __launch_bounds__(SW_LN_FUSED_THREADS, 2)                                     \
        layernorm_backward_fused_v##V##_##suffix(                                                            \
        const T* x, const T* gamma, const float* mean, const float* rstd, const T* dy, T* dx, float* partials, \
        int rows, int dim, int accumulate)                                                                   \
    {                                                                                                        \
        layernorm_backward_fused<T, V>(x, gamma, mean, rstd, dy, dx, partials, rows, dim, accumulate);      \
    }                                                                                                        \
    SW_KERNEL_REGISTER(layernorm_backward_fused_v##V##_##suffix)

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
    SW_KERNEL_REGISTER(layernorm_backward_dparams_reduce_##suffix)                                           \
    SW_LAYERNORM_VECTOR_KERNELS(suffix, T, 1)                                                                \
    SW_LAYERNORM_VECTOR_KERNELS(suffix, T, 2)                                                                \
    SW_LAYERNORM_VECTOR_KERNELS(suffix, T, 3)                                                                \
    SW_LAYERNORM_VECTOR_KERNELS(suffix, T, 4)

SW_FOR_EACH_STORAGE(SW_LAYERNORM_KERNELS)
