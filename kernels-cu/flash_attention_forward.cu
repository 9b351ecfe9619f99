// flash_attention_forward.cu — fused causal attention forward (FlashAttention-2 style) on tensor cores: for every
// (batch b, head h, query t)
//   y[b, t, h·hd + d] = Σ_{u≤t} softmax_u(scale · q_t·k_u) · v_u[d],   scale = 1/√hd,
//   lse[b, h, t]      = ln Σ_{u≤t} exp(scale · q_t·k_u)                (fp32, for the backward pass),
// without ever writing the seq×seq scores: a block keeps 64 queries, streams 64-key tiles of K and V through shared
// memory, and keeps a running (max, Σexp, output) per query row (online softmax, base 2 with log2 e folded into
// the scale). Key tiles entirely above the diagonal are never visited; the diagonal tile is masked key > query.
// Layout as ITensorOps.Attention: qkv is [batch, seq, 3·dim] (q, k, v side by side, head h at columns h·hd of
// each), y is [batch, seq, dim], dim = heads·hd. Storage T = sw_half or sw_bf16 (mma operands), fp32 arithmetic;
// the probabilities are rounded to T before P·V, as FlashAttention does.
// CPU reference: runtime/Shardwise/Cpu/AttentionKernels.cs (ForwardHead) for y.
// Entry points flash_attention_forward_d{64,128}_{f16,bf16}: the d64 kernel takes head_dim 16…64, the d128 one
// head_dim 16…128, head_dim a multiple of 16 (runtime/Shardwise/Cuda/CudaOps.FlashAttention.cs chooses).
// Grid (ceil(seq/64), batch·heads), block 128 (4 warps × 16 query rows); static shared memory 2·64·(D+8)·2 bytes
// (18 KiB for d64, 34 KiB for d128). y and lse must be 4-byte aligned (y is written in pairs); qkv rows are staged
// with 16-byte loads when they are 16-byte aligned, else 2-byte ones.
#include "flash_attention_common.cuh"

template <typename T, int MAX_DIM>
SW_INLINE void flash_attention_forward(const T* qkv, T* y, float* lse, int seq, int heads, int head_dim)
{
    constexpr int STRIDE = MAX_DIM + 8;    // padded rows: conflict-free fragment reads
    constexpr int DIM_STEPS = MAX_DIM / 16; // k-steps of Q·Kᵀ
    constexpr int DIM_TILES = MAX_DIM / 8;  // 8-column tiles of the output
    constexpr int KEY_TILES = SW_FLASH_TILE / 8;
    __shared__ sw_bits128 k_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* k_tile = reinterpret_cast<sw_bits16*>(k_tile_storage);
    __shared__ sw_bits128 v_tile_storage[(SW_FLASH_TILE * STRIDE) / 8];
    sw_bits16* v_tile = reinterpret_cast<sw_bits16*>(v_tile_storage);

    // The last query blocks see the most keys: start them first so the grid's tail is short.
    int q0 = (gridDim.x - 1 - blockIdx.x) * SW_FLASH_ROWS;
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;

    // This warp's 16 query rows as A fragments, kept in registers for the whole key loop (staged through k_tile).
    unsigned q_frag[DIM_STEPS][4];
    sw_stage_tile(k_tile, STRIDE, SW_FLASH_ROWS, head.q + q0 * row_stride, row_stride, seq - q0, head_dim);
    __syncthreads();
    sw_load_warp_rows(q_frag, k_tile, STRIDE, head_dim);
    __syncthreads();

    // Rows g (r = 0) and g+8 (r = 1) of the warp's 16: running max (log2 domain), this lane's part of Σ2^(s−max),
    // and the unnormalised output columns 8j+2t, 8j+2t+1.
    const float scale_log2 = SW_LOG2E / sqrtf((float)head_dim);
    int query[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};
    float row_max[2] = {sw_negative_infinity(), sw_negative_infinity()}, row_sum[2] = {0.0f, 0.0f};
    float o[DIM_TILES][4];
    SW_UNROLL
    for (int j = 0; j < DIM_TILES; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

    int key_end = min(q0 + SW_FLASH_ROWS, seq); // causal: no key past the block's last query
    for (int k0 = 0; k0 < key_end; k0 += SW_FLASH_TILE)
    {
        sw_stage_tile(k_tile, STRIDE, SW_FLASH_TILE, head.k + k0 * row_stride, row_stride, seq - k0, head_dim);
        sw_stage_tile(v_tile, STRIDE, SW_FLASH_TILE, head.v + k0 * row_stride, row_stride, seq - k0, head_dim);
        __syncthreads();

        // s = Q·Kᵀ for 16 queries × 64 keys: eight 16×8 accumulator tiles.
        float s[KEY_TILES][4];
        sw_warp_product_transposed<T>(s, q_frag, k_tile, STRIDE, head_dim);

        // Scale into the log2 domain; on the diagonal tile mask keys after the query (this also masks the zero-filled
        // keys past seq for every real query).
        bool diagonal = k0 + SW_FLASH_TILE > q0;
        SW_UNROLL
        for (int n = 0; n < KEY_TILES; n++)
        {
            SW_UNROLL
            for (int e = 0; e < 4; e++)
            {
                int key = k0 + 8 * n + 2 * t + (e & 1);
                s[n][e] = diagonal && key > query[e >> 1] ? sw_negative_infinity() : s[n][e] * scale_log2;
            }
        }

        // Online softmax per row: the four lanes of a quad (same g) share the row, so max over the quad.
        SW_UNROLL
        for (int r = 0; r < 2; r++)
        {
            float m = row_max[r];
            SW_UNROLL
            for (int n = 0; n < KEY_TILES; n++) m = fmaxf(m, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
            m = fmaxf(m, __shfl_xor_sync(SW_FULL_MASK, m, 1));
            m = fmaxf(m, __shfl_xor_sync(SW_FULL_MASK, m, 2));
            // Key 0 is visible to every row, so m is finite from the first tile on; the guard keeps a fully masked
            // row (which cannot happen) from producing NaN (−inf − −inf).
            float base = m == sw_negative_infinity() ? 0.0f : m;
            float correction = exp2f(row_max[r] - base);
            row_max[r] = m;
            float sum = 0.0f;
            SW_UNROLL
            for (int n = 0; n < KEY_TILES; n++)
            {
                s[n][2 * r] = exp2f(s[n][2 * r] - base);
                s[n][2 * r + 1] = exp2f(s[n][2 * r + 1] - base);
                sum += s[n][2 * r] + s[n][2 * r + 1];
            }
            row_sum[r] = row_sum[r] * correction + sum;
            SW_UNROLL
            for (int j = 0; j < DIM_TILES; j++)
            {
                o[j][2 * r] *= correction;
                o[j][2 * r + 1] *= correction;
            }
        }

        // o += P·V: the accumulators of key tiles 2kk and 2kk+1 are the A fragment of keys 16kk…16kk+15.
        sw_warp_accumulate_product<T>(o, s, v_tile, STRIDE, head_dim);
        __syncthreads(); // every warp is done with this tile before the next one overwrites it
    }

    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        float l = row_sum[r];
        l += __shfl_xor_sync(SW_FULL_MASK, l, 1);
        l += __shfl_xor_sync(SW_FULL_MASK, l, 2);
        if (query[r] >= seq) continue;
        float inverse = 1.0f / l;
        unsigned* out = reinterpret_cast<unsigned*>(y + head.token_offset(query[r]));
        SW_UNROLL
        for (int j = 0; j < DIM_TILES; j++)
            if (8 * j < head_dim) out[4 * j + t] = sw_pack_float2<T>(o[j][2 * r] * inverse, o[j][2 * r + 1] * inverse);
        // ln Σ exp(scale·s) = ln(2^max · l) = (max + log2 l) · ln 2.
        if (t == 0) lse[head.row_offset(query[r])] = (row_max[r] + log2f(l)) * SW_LN2;
    }
}

#define SW_FLASH_FORWARD_KERNEL(suffix, T, D)                                                                 \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS)                                          \
        flash_attention_forward_d##D##_##suffix(const T* qkv, T* y, float* lse, int seq, int heads, int head_dim) \
    {                                                                                                         \
        flash_attention_forward<T, D>(qkv, y, lse, seq, heads, head_dim);                                     \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_forward_d##D##_##suffix)

SW_FLASH_FORWARD_KERNEL(f16, sw_half, 64)
SW_FLASH_FORWARD_KERNEL(bf16, sw_bf16, 64)
SW_FLASH_FORWARD_KERNEL(f16, sw_half, 128)
SW_FLASH_FORWARD_KERNEL(bf16, sw_bf16, 128)
