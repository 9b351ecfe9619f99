// flash_attention_backward.cu — the backward pass of flash_attention_forward.cu (FlashAttention-2 style), on
// tensor cores, recomputing the probabilities from the saved log-sum-exp instead of reading a seq×seq matrix:
//   P[t, u]  = exp(scale·q_t·k_u − lse[t]) for u ≤ t, else 0          (scale = 1/√hd)
//   dV_u     = Σ_t P[t, u] · dy_t
//   dP[t, u] = dy_t · v_u,   dS[t, u] = P[t, u] · (dP[t, u] − D[t]),   D[t] = Σ_d dy_t[d] · y_t[d]
//   dQ_t     = scale · Σ_u dS[t, u] · k_u,   dK_u = scale · Σ_t dS[t, u] · q_t
// per (batch, head), written into dqkv (same [batch, seq, 3·dim] layout as qkv), overwriting or, with accumulate,
// adding (one rounding to T of old + new). Three kernels, no atomics (bitwise reproducible):
//   flash_attention_backward_dot_{f16,bf16}: D[b, h, t] (fp32) from y (the forward's output) and dy.
//       Grid ceil(batch·seq·heads / 8), block 256 (one warp per row of one head).
//   flash_attention_backward_dkdv_d{64,128}_{f16,bf16}: one block per 64-key tile; walks the query tiles at or after
//       it (causal), accumulates dK and dV in registers. Grid (ceil(seq/64), batch·heads), block 128 (4 warps × 16
//       keys), static shared memory 2·64·(D+8)·2 + 512 bytes (18.5 KiB for d64, 34.5 KiB for d128).
//   flash_attention_backward_dq_d{64,128}_{f16,bf16}: one block per 64-query tile; walks the key tiles up to the
//       diagonal, accumulates dQ in registers. Grid (ceil(seq/64), batch·heads), block 128 (4 warps × 16 queries),
//       static shared memory 2·64·(D+8)·2 bytes.
//   The dkdv and dq kernels write disjoint columns of dqkv and may run in either order, after the dot kernel.
// The d64 kernels take head_dim 16…64, the d128 ones 16…128, head_dim a multiple of 16. No pointer needs more than
// its element's alignment (16-byte aligned rows are staged with vector loads). P and dS are rounded to T as mma
// operands, as FlashAttention does.
// CPU reference: runtime/Shardwise/Cpu/AttentionKernels.cs (BackwardHead).
#include "flash_attention_common.cuh"

#define SW_FLASH_DOT_THREADS 256

template <typename T>
SW_INLINE void flash_attention_backward_dot(const T* y, const T* dy, float* delta, int rows, int seq, int heads,
                                            int head_dim)
{
    int row = blockIdx.x * (blockDim.x / SW_WARP_SIZE) + threadIdx.x / SW_WARP_SIZE;
    int lane = threadIdx.x % SW_WARP_SIZE;
    if (row >= rows) return;
    // row = (b·seq + t)·heads + h: neighbouring warps read neighbouring heads of one token.
    int h = row % heads, bt = row / heads, b = bt / seq, t = bt % seq;
    long long offset = (long long)bt * heads * head_dim + h * head_dim;
    float sum = 0.0f;
    for (int d = lane; d < head_dim; d += SW_WARP_SIZE) sum += sw_to_float(dy[offset + d]) * sw_to_float(y[offset + d]);
    sum = sw_warp_sum(sum);
    if (lane == 0) delta[((long long)b * heads + h) * seq + t] = sum;
}

// dqkv[i] = (accumulate ? dqkv[i] : 0) + low, dqkv[i+1] likewise with high. Two 2-byte stores, so dqkv needs no
// alignment beyond its element's (this runs once per output element, after the tile loops).
template <typename T> SW_INLINE void flash_store_pair(T* dqkv, long long i, float low, float high, int accumulate)
{
    if (accumulate)
    {
        low += sw_to_float(dqkv[i]);
        high += sw_to_float(dqkv[i + 1]);
    }
    dqkv[i] = sw_from_float<T>(low);
    dqkv[i + 1] = sw_from_float<T>(high);
}

template <typename T, int MAX_DIM>
SW_INLINE void flash_attention_backward_dkdv(const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv,
                                             int seq, int heads, int head_dim, int accumulate)
{
    constexpr int STRIDE = MAX_DIM + 8;
    constexpr int DIM_STEPS = MAX_DIM / 16;
    constexpr int DIM_TILES = MAX_DIM / 8;
    constexpr int QUERY_TILES = SW_FLASH_TILE / 8;
    __shared__ sw_bits128 q_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* q_tile = reinterpret_cast<sw_bits16*>(q_tile_storage);
    __shared__ sw_bits128 dy_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* dy_tile = reinterpret_cast<sw_bits16*>(dy_tile_storage);
    __shared__ float lse_tile[SW_FLASH_TILE];   // log2 domain; +inf past seq, so P = 0 there
    __shared__ float delta_tile[SW_FLASH_TILE];

    // Key block 0 sees every query tile: the heaviest blocks come first.
    int k0 = blockIdx.x * SW_FLASH_ROWS;
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int dim = head.dim, warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    const sw_bits16* dyh = reinterpret_cast<const sw_bits16*>(dy) + head.token_offset(0);
    const float* lse_h = lse + head.row_offset(0);
    const float* delta_h = delta + head.row_offset(0);

    // This warp's 16 keys of K and V as A fragments (Sᵀ = K·Qᵀ, dPᵀ = V·dYᵀ), staged through the query tiles.
    unsigned k_frag[DIM_STEPS][4], v_frag[DIM_STEPS][4];
    sw_stage_tile(q_tile, STRIDE, SW_FLASH_ROWS, head.k + k0 * row_stride, row_stride, seq - k0, head_dim);
    sw_stage_tile(dy_tile, STRIDE, SW_FLASH_ROWS, head.v + k0 * row_stride, row_stride, seq - k0, head_dim);
    __syncthreads();
    sw_load_warp_rows(k_frag, q_tile, STRIDE, head_dim);
    sw_load_warp_rows(v_frag, dy_tile, STRIDE, head_dim);
    __syncthreads();

    const float scale = 1.0f / sqrtf((float)head_dim), scale_log2 = scale * SW_LOG2E;
    int key[2] = {k0 + 16 * warp + g, k0 + 16 * warp + g + 8};
    float dk[DIM_TILES][4], dv[DIM_TILES][4];
    SW_UNROLL
    for (int j = 0; j < DIM_TILES; j++)
    {
        dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = 0.0f;
        dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;
    }

    for (int q0 = k0; q0 < seq; q0 += SW_FLASH_TILE) // query tiles before k0 see none of these keys
    {
        sw_stage_tile(q_tile, STRIDE, SW_FLASH_TILE, head.q + q0 * row_stride, row_stride, seq - q0, head_dim);
        sw_stage_tile(dy_tile, STRIDE, SW_FLASH_TILE, dyh + (long long)q0 * dim, dim, seq - q0, head_dim);
        for (int i = threadIdx.x; i < SW_FLASH_TILE; i += blockDim.x)
        {
            bool real = q0 + i < seq;
            lse_tile[i] = real ? lse_h[q0 + i] * SW_LOG2E : -sw_negative_infinity();
            delta_tile[i] = real ? delta_h[q0 + i] : 0.0f;
        }
        __syncthreads();

        // Pᵀ (16 keys × 64 queries): lane holds keys g, g+8 and queries 8n+2t, 8n+2t+1 of the tile.
        float p[QUERY_TILES][4];
        sw_warp_product_transposed<T>(p, k_frag, q_tile, STRIDE, head_dim);
        SW_UNROLL
        for (int n = 0; n < QUERY_TILES; n++)
        {
            SW_UNROLL
            for (int e = 0; e < 4; e++)
            {
                int column = 8 * n + 2 * t + (e & 1);
                p[n][e] = key[e >> 1] > q0 + column ? 0.0f : exp2f(p[n][e] * scale_log2 - lse_tile[column]);
            }
        }

        // dV += Pᵀ·dY: accumulator tiles 2kk, 2kk+1 form the A fragment of queries 16kk…16kk+15.
        sw_warp_accumulate_product<T>(dv, p, dy_tile, STRIDE, head_dim);

        // dSᵀ = Pᵀ ⊙ (dPᵀ − D), dPᵀ = V·dYᵀ.
        float ds[QUERY_TILES][4];
        sw_warp_product_transposed<T>(ds, v_frag, dy_tile, STRIDE, head_dim);
        SW_UNROLL
        for (int n = 0; n < QUERY_TILES; n++)
        {
            SW_UNROLL
            for (int e = 0; e < 4; e++) ds[n][e] = p[n][e] * (ds[n][e] - delta_tile[8 * n + 2 * t + (e & 1)]);
        }

        // dK += dSᵀ·Q (scaled at the end).
        sw_warp_accumulate_product<T>(dk, ds, q_tile, STRIDE, head_dim);
        __syncthreads(); // the next tile overwrites q_tile, dy_tile, lse_tile and delta_tile
    }

    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        if (key[r] >= seq) continue;
        long long row = head.qkv_offset(key[r]);
        SW_UNROLL
        for (int j = 0; j < DIM_TILES; j++)
        {
            if (8 * j >= head_dim) continue;
            int column = 8 * j + 2 * t;
            flash_store_pair(dqkv, row + dim + column, scale * dk[j][2 * r], scale * dk[j][2 * r + 1], accumulate);
            flash_store_pair(dqkv, row + 2 * dim + column, dv[j][2 * r], dv[j][2 * r + 1], accumulate);
        }
    }
}

template <typename T, int MAX_DIM>
SW_INLINE void flash_attention_backward_dq(const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv,
                                           int seq, int heads, int head_dim, int accumulate)
{
    constexpr int STRIDE = MAX_DIM + 8;
    constexpr int DIM_STEPS = MAX_DIM / 16;
    constexpr int DIM_TILES = MAX_DIM / 8;
    constexpr int KEY_TILES = SW_FLASH_TILE / 8;
    __shared__ sw_bits128 k_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* k_tile = reinterpret_cast<sw_bits16*>(k_tile_storage);
    __shared__ sw_bits128 v_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* v_tile = reinterpret_cast<sw_bits16*>(v_tile_storage);

    int q0 = (gridDim.x - 1 - blockIdx.x) * SW_FLASH_ROWS; // the last query tiles see the most keys: first
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int dim = head.dim, warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    const sw_bits16* dyh = reinterpret_cast<const sw_bits16*>(dy) + head.token_offset(0);

    // This warp's 16 queries of Q and dY as A fragments (S = Q·Kᵀ, dP = dY·Vᵀ).
    unsigned q_frag[DIM_STEPS][4], dy_frag[DIM_STEPS][4];
    sw_stage_tile(k_tile, STRIDE, SW_FLASH_ROWS, head.q + q0 * row_stride, row_stride, seq - q0, head_dim);
    sw_stage_tile(v_tile, STRIDE, SW_FLASH_ROWS, dyh + (long long)q0 * dim, dim, seq - q0, head_dim);
    __syncthreads();
    sw_load_warp_rows(q_frag, k_tile, STRIDE, head_dim);
    sw_load_warp_rows(dy_frag, v_tile, STRIDE, head_dim);
    __syncthreads();

    const float scale = 1.0f / sqrtf((float)head_dim), scale_log2 = scale * SW_LOG2E;
    int query[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};
    // Rows past seq (zero Q and dY) get lse 0 and D 0: finite, and their dQ is never stored.
    float row_lse[2], row_delta[2];
    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        bool real = query[r] < seq;
        long long at = head.row_offset(query[r]);
        row_lse[r] = real ? lse[at] * SW_LOG2E : 0.0f;
        row_delta[r] = real ? delta[at] : 0.0f;
    }
    float dq[DIM_TILES][4];
    SW_UNROLL
    for (int j = 0; j < DIM_TILES; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;

    int key_end = min(q0 + SW_FLASH_ROWS, seq);
    for (int k0 = 0; k0 < key_end; k0 += SW_FLASH_TILE)
    {
        sw_stage_tile(k_tile, STRIDE, SW_FLASH_TILE, head.k + k0 * row_stride, row_stride, seq - k0, head_dim);
        sw_stage_tile(v_tile, STRIDE, SW_FLASH_TILE, head.v + k0 * row_stride, row_stride, seq - k0, head_dim);
        __syncthreads();

        bool diagonal = k0 + SW_FLASH_TILE > q0;
        float ds[KEY_TILES][4];
        SW_UNROLL
        for (int n = 0; n < KEY_TILES; n++)
        {
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            ds[n][0] = ds[n][1] = ds[n][2] = ds[n][3] = 0.0f;
            SW_UNROLL
            for (int kk = 0; kk < DIM_STEPS; kk++)
            {
                if (16 * kk >= head_dim) continue;
                unsigned b_frag[2];
                sw_load_b_transposed(b_frag, k_tile, STRIDE, 8 * n, 16 * kk);
                sw_mma_16816<T>(s, q_frag[kk], b_frag);
                sw_load_b_transposed(b_frag, v_tile, STRIDE, 8 * n, 16 * kk);
                sw_mma_16816<T>(ds[n], dy_frag[kk], b_frag); // dP = dY·Vᵀ
            }
            SW_UNROLL
            for (int e = 0; e < 4; e++)
            {
                int r = e >> 1, key = k0 + 8 * n + 2 * t + (e & 1);
                float p = diagonal && key > query[r] ? 0.0f : exp2f(s[e] * scale_log2 - row_lse[r]);
                ds[n][e] = p * (ds[n][e] - row_delta[r]);
            }
        }

        // dQ += dS·K (scaled at the end): accumulator tiles 2kk, 2kk+1 form the A fragment of keys 16kk…16kk+15.
        sw_warp_accumulate_product<T>(dq, ds, k_tile, STRIDE, head_dim);
        __syncthreads();
    }

    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        if (query[r] >= seq) continue;
        long long row = head.qkv_offset(query[r]);
        SW_UNROLL
        for (int j = 0; j < DIM_TILES; j++)
            if (8 * j < head_dim)
                flash_store_pair(dqkv, row + 8 * j + 2 * t, scale * dq[j][2 * r], scale * dq[j][2 * r + 1], accumulate);
    }
}

#define SW_FLASH_DOT_KERNEL(suffix, T)                                                                        \
    extern "C" __global__ void flash_attention_backward_dot_##suffix(const T* y, const T* dy, float* delta,   \
                                                                     int rows, int seq, int heads, int head_dim) \
    {                                                                                                         \
        flash_attention_backward_dot<T>(y, dy, delta, rows, seq, heads, head_dim);                            \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dot_##suffix)

#define SW_FLASH_BACKWARD_KERNELS(suffix, T, D)                                                               \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS) flash_attention_backward_dkdv_d##D##_##suffix( \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, int seq, int heads,        \
        int head_dim, int accumulate)                                                                         \
    {                                                                                                         \
        flash_attention_backward_dkdv<T, D>(qkv, dy, lse, delta, dqkv, seq, heads, head_dim, accumulate);     \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dkdv_d##D##_##suffix)                                         \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS) flash_attention_backward_dq_d##D##_##suffix( \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, int seq, int heads,        \
        int head_dim, int accumulate)                                                                         \
    {                                                                                                         \
        flash_attention_backward_dq<T, D>(qkv, dy, lse, delta, dqkv, seq, heads, head_dim, accumulate);       \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dq_d##D##_##suffix)

SW_FLASH_DOT_KERNEL(f16, sw_half)
SW_FLASH_DOT_KERNEL(bf16, sw_bf16)
SW_FLASH_BACKWARD_KERNELS(f16, sw_half, 64)
SW_FLASH_BACKWARD_KERNELS(bf16, sw_bf16, 64)
SW_FLASH_BACKWARD_KERNELS(f16, sw_half, 128)
SW_FLASH_BACKWARD_KERNELS(bf16, sw_bf16, 128)
