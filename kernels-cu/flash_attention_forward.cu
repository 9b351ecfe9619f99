// flash_attention_forward.cu — fused causal attention forward (FlashAttention-2 style) on tensor cores: for every
// (batch b, head h, query t)
//   y[b, t, h·hd + d] = Σ_{u≤t} softmax_u(scale · q_t·k_u) · v_u[d],   scale = 1/√hd,
//   lse[b, h, t]      = ln Σ_{u≤t} exp(scale · q_t·k_u)                (fp32, for the backward pass),
// without ever writing the seq×seq scores: a block keeps 64·M queries (M = 2 for the d64 kernels, 1 for d128; each
// warp 16·M rows, whose Q fragments stay in registers), streams 64-key tiles of K and V through shared memory with
// cp.async, two stages deep (tile i+1 is in flight while tile i is multiplied), and keeps a running (max, Σexp,
// output) per query row (online softmax, base 2 with log2 e folded into the scale). Key tiles entirely above the
// diagonal are never visited; a warp skips tiles entirely above its own rows; only tiles that cross the diagonal are
// masked (key > query). Layout as ITensorOps.Attention: qkv is [batch, seq, 3·dim] (q, k, v side by side, head h at
// columns h·hd of each), y is [batch, seq, dim], dim = heads·hd. Storage T = sw_half or sw_bf16 (mma operands), fp32
// arithmetic; the probabilities are rounded to T before P·V, as FlashAttention does.
// CPU reference: runtime/Shardwise/Cpu/AttentionKernels.cs (ForwardHead) for y.
// Block-sparse (entry points flash_attention_forward_sparse_*, extra arguments tiles, cells, block: see
// flash_attention_common.cuh): key tiles that no query tile of the block keeps a pair of are neither copied nor
// visited, a warp skips tiles its query tile keeps nothing of, and partly kept tiles mask the dropped pairs like
// those above the diagonal. CPU reference: the same AttentionKernels with a BlockSparseLayout.
// Entry points flash_attention_forward_d{64,128}_{f16,bf16}: the d64 kernel takes head_dim 16…64, the d128 one
// head_dim 16…128, head_dim a multiple of 16; head columns past head_dim are staged as zeros
// (runtime/Shardwise/Cuda/CudaOps.FlashAttention.cs chooses). Grid (ceil(seq/(64·M)), batch·heads), block 128
// (4 warps); static shared memory 2 stages × (K, V) × 64·(D+8)·2 bytes (36 KiB for d64, 68 KiB for d128 — d128
// therefore takes dynamic shared memory). y and lse must be 4-byte aligned (y is written in pairs); qkv rows are
// copied with 16-byte cp.async when they are 16-byte aligned, else loaded by the threads.
#include "flash_attention_common.cuh"

template <typename T, int D, bool SPARSE>
SW_INLINE void flash_attention_forward(const T* qkv, T* y, float* lse, int seq, int heads, int head_dim,
                                       const unsigned char* sparse_tiles, const unsigned char* sparse_cells,
                                       int sparse_block, sw_bits16* shared)
{
    constexpr int M = SW_FLASH_ROW_TILES(D); // 16-row tiles per warp
    constexpr int ROWS = 4 * 16 * M;          // queries per block
    constexpr int STRIDE = D + 8;             // padded rows: conflict-free ldmatrix phases
    constexpr int STEPS = D / 16;             // k-steps of Q·Kᵀ
    constexpr int OUT_TILES = D / 8;          // 8-column tiles of the output
    constexpr int KEY_TILES = SW_FLASH_TILE / 8;
    constexpr int TILE = SW_FLASH_TILE * STRIDE; // elements of one K or V tile
    // Stage s holds K at shared + 2s·TILE and V right after it; Q is staged once through stage 1 (ROWS ≤ 128 rows
    // fit in its K and V).

    // The last query blocks see the most keys: start them first so the grid's tail is short.
    int q0 = (gridDim.x - 1 - blockIdx.x) * ROWS;
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    int key_end = min(q0 + ROWS, seq); // causal: no key past the block's last query
    int tiles = (key_end + SW_FLASH_TILE - 1) / SW_FLASH_TILE;
    const sw_flash_sparsity sparsity = sw_flash_sparsity_of(sparse_tiles, sparse_cells, sparse_block, head);
    // Block-sparse: the key tiles some query tile of this block keeps a pair of, in order (dense: every tile).
    auto needed_from = [&](int tile) {
        if (SPARSE)
            for (; tile < tiles; tile++)
                for (int query_tile = q0 / SW_FLASH_TILE; query_tile * SW_FLASH_TILE < key_end; query_tile++)
                    if (sparsity.kind(query_tile, tile) != SW_TILE_SKIP) return tile;
        return tile;
    };
    int first_tile = needed_from(0);

    sw_stage_tile_async(shared + 2 * TILE, STRIDE, ROWS, D, head.q + q0 * row_stride, row_stride, seq - q0, head_dim);
    sw_async_commit();
    if (first_tile < tiles)
        sw_flash_stage_keys<D>(shared, 0, first_tile * SW_FLASH_TILE, head);
    else
        sw_async_commit(); // an empty group: the wait below counts the same
    sw_async_wait<1>(); // Q has landed (the first key tile may still be in flight)
    __syncthreads();
    unsigned q_frag[M][STEPS][4];
    sw_load_warp_rows(q_frag, shared + 2 * TILE, STRIDE);
    __syncthreads(); // stage 1 is free for tile 1

    // Rows g (r = 0) and g+8 (r = 1) of each of the warp's row tiles: running max of the raw scores, this lane's part
    // of Σ2^(scale·(s−max)), and the unnormalised output columns 8j+2t, 8j+2t+1.
    const float scale_log2 = SW_LOG2E / sqrtf((float)head_dim);
    int first_query = q0 + 16 * M * warp, last_query = first_query + 16 * M - 1;
    float row_max[M][2], row_sum[M][2];
    float o[M][OUT_TILES][4];
    SW_UNROLL
    for (int m = 0; m < M; m++)
    {
        row_max[m][0] = row_max[m][1] = sw_negative_infinity();
        row_sum[m][0] = row_sum[m][1] = 0.0f;
        SW_UNROLL
        for (int j = 0; j < OUT_TILES; j++) o[m][j][0] = o[m][j][1] = o[m][j][2] = o[m][j][3] = 0.0f;
    }

    // Dense: tile i is in stage i & 1 and tile i + 1 follows; sparse: the stages alternate over the needed tiles.
    for (int i = first_tile, visit = 0, following; i < tiles; i = following, visit++)
    {
        int k0 = i * SW_FLASH_TILE;
        following = SPARSE ? needed_from(i + 1) : i + 1;
        bool next = following < tiles;
        int stage = SPARSE ? visit & 1 : i & 1;
        if (next) sw_flash_stage_keys<D>(shared, stage ^ 1, following * SW_FLASH_TILE, head);
        sw_flash_wait_current(next); // tile i has landed; the next one may still be in flight
        const sw_bits16* k_tile = shared + 2 * stage * TILE;
        const sw_bits16* v_tile = k_tile + TILE;
        // This warp's rows lie in one 64-query tile; rows past seq are never stored.
        int kind = SPARSE && first_query < seq ? sparsity.kind(first_query / SW_FLASH_TILE, i) : SW_TILE_FULL;

        if (k0 <= last_query && (!SPARSE || kind != SW_TILE_SKIP)) // a tile wholly above this warp's rows adds nothing to them
        {
            // s = Q·Kᵀ for 16·M queries × 64 keys; of a partly kept tile, only the 16-key groups the warp's rows keep
            // a pair in.
            bool partial = SPARSE && kind == SW_TILE_PARTIAL;
            unsigned groups = partial ? sparsity.groups(first_query, last_query, k0, false) : ~0u;
            float s[M][KEY_TILES][4];
            sw_warp_product_transposed<T>(s, q_frag, k_tile, STRIDE, groups);

            // Causal mask, only where the tile crosses the diagonal (this also masks the zero-filled keys past seq
            // for every real query); block-sparse, also the pairs of a partly kept tile whose layout cell is dropped
            // (their probability is 0, as above the diagonal; the skipped groups' are all dropped).
            bool crosses = k0 + SW_FLASH_TILE - 1 > first_query;
            if (crosses || partial)
            {
                SW_UNROLL
                for (int m = 0; m < M; m++)
                {
                    SW_UNROLL
                    for (int n = 0; n < KEY_TILES; n++)
                    {
                        SW_UNROLL
                        for (int e = 0; e < 4; e++)
                        {
                            int key = k0 + 8 * n + 2 * t + (e & 1), query = first_query + 16 * m + g + 8 * (e >> 1);
                            if (key > query || (partial && query < seq && !sparsity.keeps(query, key)))
                                s[m][n][e] = sw_negative_infinity();
                        }
                    }
                }
            }

            // Online softmax per row: the four lanes of a quad (same g) share the row, so max over the quad.
            SW_UNROLL
            for (int m = 0; m < M; m++)
            {
                SW_UNROLL
                for (int r = 0; r < 2; r++)
                {
                    float mx = row_max[m][r];
                    SW_UNROLL
                    for (int n = 0; n < KEY_TILES; n++) mx = fmaxf(mx, fmaxf(s[m][n][2 * r], s[m][n][2 * r + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(SW_FULL_MASK, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(SW_FULL_MASK, mx, 2));
                    // Dense: key 0 is visible to every row, so mx is finite from the first tile on; the guard keeps
                    // a row with nothing visible yet (block-sparse: possibly several tiles) from producing NaN
                    // (−inf − −inf).
                    float base = mx == sw_negative_infinity() ? 0.0f : mx * scale_log2;
                    float correction = sw_exp2(row_max[m][r] * scale_log2 - base);
                    row_max[m][r] = mx;
                    float sum = 0.0f;
                    SW_UNROLL
                    for (int n = 0; n < KEY_TILES; n++)
                    {
                        s[m][n][2 * r] = sw_exp2(fmaf(s[m][n][2 * r], scale_log2, -base));
                        s[m][n][2 * r + 1] = sw_exp2(fmaf(s[m][n][2 * r + 1], scale_log2, -base));
                        sum += s[m][n][2 * r] + s[m][n][2 * r + 1];
                    }
                    row_sum[m][r] = row_sum[m][r] * correction + sum;
                    SW_UNROLL
                    for (int j = 0; j < OUT_TILES; j++)
                    {
                        o[m][j][2 * r] *= correction;
                        o[m][j][2 * r + 1] *= correction;
                    }
                }
            }

            // o += P·V: the accumulators of key tiles 2kk and 2kk+1 are the A fragment of keys 16kk…16kk+15.
            sw_warp_accumulate_product<T>(o, s, v_tile, STRIDE, groups);
        }
        __syncthreads(); // every warp is done with this stage before tile i+2 is copied into it
    }

    SW_UNROLL
    for (int m = 0; m < M; m++)
    {
        SW_UNROLL
        for (int r = 0; r < 2; r++)
        {
            float l = row_sum[m][r];
            l += __shfl_xor_sync(SW_FULL_MASK, l, 1);
            l += __shfl_xor_sync(SW_FULL_MASK, l, 2);
            int query = first_query + 16 * m + g + 8 * r;
            if (query >= seq) continue;
            float inverse = 1.0f / l;
            unsigned* out = reinterpret_cast<unsigned*>(y + head.token_offset(query));
            SW_UNROLL
            for (int j = 0; j < OUT_TILES; j++)
                if (8 * j < head_dim)
                    out[4 * j + t] = sw_pack_float2<T>(o[m][j][2 * r] * inverse, o[m][j][2 * r + 1] * inverse);
            // ln Σ exp(scale·s) = ln(2^(scale·log2e·max) · l) = (scale·log2e·max + log2 l) · ln 2.
            if (t == 0) lse[head.row_offset(query)] = (row_max[m][r] * scale_log2 + log2f(l)) * SW_LN2;
        }
    }
}

#define SW_FLASH_FORWARD_KERNEL(suffix, T, D)                                                                 \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS)                                          \
        flash_attention_forward_d##D##_##suffix(const T* qkv, T* y, float* lse, int seq, int heads, int head_dim) \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_forward<T, D, false>(qkv, y, lse, seq, heads, head_dim, nullptr, nullptr, 0, shared); \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_forward_d##D##_##suffix)                                               \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS) flash_attention_forward_sparse_d##D##_##suffix( \
        const T* qkv, T* y, float* lse, int seq, int heads, int head_dim, const unsigned char* tiles,        \
        const unsigned char* cells, int block)                                                                \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_forward<T, D, true>(qkv, y, lse, seq, heads, head_dim, tiles, cells, block, shared);  \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_forward_sparse_d##D##_##suffix)

SW_FLASH_FORWARD_KERNEL(f16, sw_half, 64)
SW_FLASH_FORWARD_KERNEL(bf16, sw_bf16, 64)
SW_FLASH_FORWARD_KERNEL(f16, sw_half, 128)
SW_FLASH_FORWARD_KERNEL(bf16, sw_bf16, 128)
