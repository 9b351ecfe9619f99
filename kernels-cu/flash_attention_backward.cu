// flash_attention_backward.cu — the backward pass of flash_attention_forward.cu (FlashAttention-2 style), on
// tensor cores, recomputing the probabilities from the saved log-sum-exp instead of reading a seq×seq matrix:
//   P[t, u]  = exp(scale·q_t·k_u − lse[t]) for u ≤ t, else 0          (scale = 1/√hd)
//   dV_u     = Σ_t P[t, u] · dy_t
//   dP[t, u] = dy_t · v_u,   dS[t, u] = P[t, u] · (dP[t, u] − D[t]),   D[t] = Σ_d dy_t[d] · y_t[d]
//   dQ_t     = scale · Σ_u dS[t, u] · k_u,   dK_u = scale · Σ_t dS[t, u] · q_t
// per (batch, head), written into dqkv (same [batch, seq, 3·dim] layout as qkv), overwriting or, with accumulate,
// adding (one rounding to T of old + new). Three kernels, no atomics (bitwise reproducible):
//   flash_attention_backward_dot_{f16,bf16}: D[b, h, t] (fp32) from y (the forward's output) and dy.
//       Grid ceil(batch·seq·heads · 8 / blockDim.x), any block size that is a multiple of 32 (CudaOps: 256, 32 rows
//       per block): 8 threads per row of one head, 16-byte loads where y and dy allow them.
//   flash_attention_backward_dkdv_d{64,128}_{f16,bf16}: one block per 64-key tile; walks the query tiles at or after
//       it (causal), accumulates dK and dV in registers. Grid (ceil(seq/64), batch·heads), block 128 (4 warps × 16
//       keys), dynamic shared memory 2 stages × ((Q, dY) × 64·(D+8)·2 + (lse, D) × 64·4) bytes (37 KiB for d64,
//       69 KiB for d128), plus 4 warps × 16 × 72 × 2 bytes (9 KiB) of dSᵀ staging where scores is not null. The
//       d64 build is bounded to three blocks per SM (SW_FLASH_DKDV_MIN_BLOCKS).
//   flash_attention_backward_dq_d{64,128}_{f16,bf16}: one block per 64-query tile; walks the key tiles up to the
//       diagonal, accumulates dQ in registers. Grid (ceil(seq/64), batch·heads), block 128 (4 warps × 16 queries),
//       dynamic shared memory 2 stages × (K, V) × 64·(D+8)·2 bytes (36 KiB for d64, 68 KiB for d128).
//   The dkdv and dq kernels write disjoint columns of dqkv and may run in either order, after the dot kernel.
// Both tile loops copy tile i+1 with cp.async while they multiply tile i (two stages), and mask only tiles that cross
// the diagonal. Block-sparse (flash_attention_backward_{dkdv,dq}_sparse_*, extra arguments tiles, cells, block: see
// flash_attention_common.cuh; dkdv stores no dSᵀ): the loops copy and visit only the tiles the table keeps a pair of,
// and set P = 0 for the dropped pairs of partly kept tiles (so dS = 0 there too). The d64 kernels take head_dim 16…64, the d128 ones 16…128, head_dim a multiple of 16 (columns past it
// are staged as zeros). No pointer needs more than its element's alignment (16-byte aligned rows are copied with
// cp.async, others by the threads). P and dS are rounded to T as mma operands, as FlashAttention does.
// CPU reference: runtime/Shardwise/Cpu/AttentionKernels.cs (BackwardHead).
#include "flash_attention_common.cuh"

// The dot kernel: SW_FLASH_DOT_LANES neighbouring threads per (batch, head, token) row, each reading
// SW_FLASH_DOT_VECTOR elements (16 bytes) of y and of dy per step: elements part·8 … part·8 + 7, then 64 further on,
// and so on (head_dim 64: one 16-byte load of each per thread; 128: two). The lanes' sums are then added by a
// 3-step butterfly (sw_lane_group_sum).
#define SW_FLASH_DOT_LANES 8
#define SW_FLASH_DOT_VECTOR 8

// Σ dy[d]·y[d] over this lane's elements of one row, in order. VECTOR: y and dy rows 16-byte aligned, head_dim a
// multiple of 8.
template <bool VECTOR, typename T>
SW_INLINE float flash_dot_lane(const T* y, const T* dy, int part, int head_dim)
{
    constexpr int LANES = SW_FLASH_DOT_LANES, WIDTH = SW_FLASH_DOT_VECTOR;
    float sum = 0.0f;
    for (int d = part * WIDTH; d < head_dim; d += LANES * WIDTH)
    {
        float a[WIDTH], g[WIDTH];
        int count = min(WIDTH, head_dim - d);
        sw_load_elements<VECTOR>(dy + d, g, count);
        sw_load_elements<VECTOR>(y + d, a, count);
        SW_UNROLL
        for (int k = 0; k < WIDTH; k++) sum += g[k] * a[k];  // past count: 0·0
    }
    return sum;
}

template <typename T>
SW_INLINE void flash_attention_backward_dot(const T* y, const T* dy, float* delta, int rows, int seq, int heads,
                                            int head_dim)
{
    // Rows in delta's order, row = (b·heads + h)·seq + t: neighbouring groups write neighbouring floats of delta,
    // and each reads whole rows of y and dy (128 bytes at head_dim 64), so both sides stay coalesced.
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / SW_FLASH_DOT_LANES;
    int part = threadIdx.x % SW_FLASH_DOT_LANES;
    float sum = 0.0f;
    if (row < rows)
    {
        int t = (int)(row % seq);
        long long bh = row / seq;
        long long offset = ((bh / heads * seq + t) * heads + bh % heads) * head_dim;
        // 16-byte loads need both bases 16-byte aligned and head_dim a multiple of 8 (so every row starts aligned);
        // the element-by-element path reads the same elements in the same order, so D is bitwise the same.
        if (sw_vector_aligned<SW_FLASH_DOT_VECTOR>(y) && sw_vector_aligned<SW_FLASH_DOT_VECTOR>(dy) &&
            head_dim % SW_FLASH_DOT_VECTOR == 0)
            sum = flash_dot_lane<true>(y + offset, dy + offset, part, head_dim);
        else
            sum = flash_dot_lane<false>(y + offset, dy + offset, part, head_dim);
    }
    // Whole warps reach the shuffles (no early return): rows past the end add zeros and write nothing.
    sum = sw_lane_group_sum<SW_FLASH_DOT_LANES>(sum);
    if (row < rows && part == 0) delta[row] = sum;
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

// Shared-memory elements (16-bit) of one stage of the dK/dV kernel: the Q and dY tiles, then the fp32 lse and D of
// their 64 rows.
#define SW_FLASH_DKDV_STAGE(D) (2 * SW_FLASH_TILE * ((D) + 8) + 4 * SW_FLASH_TILE)

// Stores a warp's dSᵀ values (its 16 keys first_key…first_key+15: key[0], key[1] at rows g, g+8; queries
// q0 + 8n + 2t and the next) into this head's [seq keys][seq queries] block of `scores`, rounded to T exactly as the
// dK product takes them, for flash_attention_backward_dq_stored. Keys and queries past seq are not stored.
// Where seq is a multiple of 8 and `scores` 16-byte aligned (every 8-query run of a row is then one aligned 16-byte
// vector), the warp first writes its 16 × 64 block into its own `staging` rows (SW_FLASH_SCORE_STAGING_STRIDE apart:
// the pair stores of a warp fall in 32 distinct banks) and then copies whole 128-byte row runs out with 16-byte
// stores: 4 fully used stores per lane instead of 16 pair stores that each touch 8 rows (run 11 measured the pair
// stores at +1.2 ms per step in this kernel). Otherwise pair stores (4 bytes when seq is even) or single elements.
#define SW_FLASH_SCORE_STAGING_STRIDE (SW_FLASH_TILE + 8)
template <typename T, int N>
SW_INLINE void flash_store_scores(sw_bits16* scores_head, const float (&ds)[1][N][4], const int (&key)[2],
                                  int first_key, int q0, int seq, int g, int t, sw_bits16* staging)
{
    constexpr int STAGING = SW_FLASH_SCORE_STAGING_STRIDE;
    static_assert(8 * N == SW_FLASH_TILE, "a warp's dS rows span one query tile");
    if ((seq & 7) == 0 && sw_vector_aligned<8>(scores_head))
    {
        SW_UNROLL
        for (int r = 0; r < 2; r++)
        {
            SW_UNROLL
            for (int n = 0; n < N; n++)
                *reinterpret_cast<unsigned*>(staging + (g + 8 * r) * STAGING + 8 * n + 2 * t) =
                    sw_pack_float2<T>(ds[0][n][2 * r], ds[0][n][2 * r + 1]);
        }
        __syncwarp();
        const int lane = 4 * g + t;
        SW_UNROLL
        for (int i = 0; i < 16 * N / SW_WARP_SIZE; i++)
        {
            int run = lane + SW_WARP_SIZE * i, row = run / N, column = 8 * (run % N);
            if (first_key + row < seq && q0 + column < seq)
            {
                typedef sw_raw_vector<16>::type run_bits;
                *reinterpret_cast<run_bits*>(scores_head + (long long)(first_key + row) * seq + q0 + column) =
                    *reinterpret_cast<const run_bits*>(staging + row * STAGING + column);
            }
        }
        __syncwarp(); // every lane has copied its runs out before the next tile's values overwrite them
        return;
    }
    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        if (key[r] >= seq) continue;
        sw_bits16* row = scores_head + (long long)key[r] * seq + q0;
        SW_UNROLL
        for (int n = 0; n < N; n++)
        {
            int column = 8 * n + 2 * t;
            float low = ds[0][n][2 * r], high = ds[0][n][2 * r + 1];
            if ((seq & 1) == 0 && q0 + column < seq)
            {
                *reinterpret_cast<unsigned*>(row + column) = sw_pack_float2<T>(low, high);
                continue;
            }
            if (q0 + column < seq) row[column] = sw_from_float<T>(low).bits;
            if (q0 + column + 1 < seq) row[column + 1] = sw_from_float<T>(high).bits;
        }
    }
}

// scores: null, or [batch·heads][seq][seq] 16-bit (plus 8 elements of padding) for the dSᵀ tiles (see
// flash_attention_backward_dq_stored).
template <typename T, int D, bool SPARSE>
SW_INLINE void flash_attention_backward_dkdv(const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv,
                                             T* scores, int seq, int heads, int head_dim, int accumulate,
                                             const unsigned char* sparse_tiles, const unsigned char* sparse_cells,
                                             int sparse_block, sw_bits16* shared)
{
    constexpr int STRIDE = D + 8;
    constexpr int STEPS = D / 16;
    constexpr int OUT_TILES = D / 8;
    constexpr int QUERY_TILES = SW_FLASH_TILE / 8;
    constexpr int TILE = SW_FLASH_TILE * STRIDE;
    constexpr int STAGE = SW_FLASH_DKDV_STAGE(D);

    // Key block 0 sees every query tile: the heaviest blocks come first.
    int k0 = blockIdx.x * SW_FLASH_ROWS;
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int dim = head.dim, warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    const sw_bits16* dyh = reinterpret_cast<const sw_bits16*>(dy) + head.token_offset(0);
    const float* lse_h = lse + head.row_offset(0);
    const float* delta_h = delta + head.row_offset(0);

    // Stage s: Q tile, dY tile, lse[64], D[64] (lse and D zero past seq: those rows have zero Q and dY, so they add
    // exact zeros to dK and dV whatever their P).
    auto stage_queries = [&](int stage, int q0) {
        sw_bits16* base = shared + stage * STAGE;
        sw_stage_tile_async(base, STRIDE, SW_FLASH_TILE, D, head.q + q0 * row_stride, row_stride, seq - q0, head_dim);
        sw_stage_tile_async(base + TILE, STRIDE, SW_FLASH_TILE, D, dyh + (long long)q0 * dim, dim, seq - q0, head_dim);
        float* rows = reinterpret_cast<float*>(base + 2 * TILE);
        for (int i = threadIdx.x; i < SW_FLASH_TILE; i += blockDim.x)
        {
            bool real = q0 + i < seq;
            sw_copy_async4(rows + i, lse_h + (real ? q0 + i : 0), real ? 4 : 0);
            sw_copy_async4(rows + SW_FLASH_TILE + i, delta_h + (real ? q0 + i : 0), real ? 4 : 0);
        }
        sw_async_commit();
    };

    // This warp's 16 keys of K and V as A fragments (Pᵀ = K·Qᵀ, dPᵀ = V·dYᵀ), staged through stage 1 and held in
    // registers for the whole loop. (Keeping them in shared memory instead, for three blocks per SM rather than two,
    // measured the same on the H200: 3.97 against 4.04 ms per step, docs/gpu-results.md run 10.)
    sw_bits16* kv_tiles = shared + STAGE;
    sw_stage_tile_async(kv_tiles, STRIDE, SW_FLASH_ROWS, D, head.k + k0 * row_stride, row_stride, seq - k0, head_dim);
    sw_stage_tile_async(kv_tiles + TILE, STRIDE, SW_FLASH_ROWS, D, head.v + k0 * row_stride, row_stride, seq - k0,
                        head_dim);
    sw_async_commit();
    // Query tiles before k0 see none of these keys; block-sparse, nor do the tiles that keep none of their pairs.
    int tiles = (seq - k0 + SW_FLASH_TILE - 1) / SW_FLASH_TILE;
    const sw_flash_sparsity sparsity = sw_flash_sparsity_of(sparse_tiles, sparse_cells, sparse_block, head);
    auto needed_from = [&](int i) {
        if (SPARSE)
            while (i < tiles && sparsity.kind(k0 / SW_FLASH_TILE + i, k0 / SW_FLASH_TILE) == SW_TILE_SKIP) i++;
        return i;
    };
    int first_tile = needed_from(0);
    if (first_tile < tiles)
        stage_queries(0, k0 + first_tile * SW_FLASH_TILE);
    else
        sw_async_commit(); // an empty group: the wait below counts the same
    sw_async_wait<1>();
    __syncthreads();
    unsigned k_frag[1][STEPS][4], v_frag[1][STEPS][4];
    sw_load_warp_rows(k_frag, kv_tiles, STRIDE);
    sw_load_warp_rows(v_frag, kv_tiles + TILE, STRIDE);
    __syncthreads(); // stage 1 is free for the second query tile

    const float scale = 1.0f / sqrtf((float)head_dim), scale_log2 = scale * SW_LOG2E;
    int first_key = k0 + 16 * warp;
    int key[2] = {first_key + g, first_key + g + 8};
    float dk[1][OUT_TILES][4], dv[1][OUT_TILES][4];
    SW_UNROLL
    for (int j = 0; j < OUT_TILES; j++)
    {
        dk[0][j][0] = dk[0][j][1] = dk[0][j][2] = dk[0][j][3] = 0.0f;
        dv[0][j][0] = dv[0][j][1] = dv[0][j][2] = dv[0][j][3] = 0.0f;
    }

    // Dense: query tile i is in stage i & 1 and tile i + 1 follows; sparse: the stages alternate over the needed tiles.
    for (int i = first_tile, visit = 0, following; i < tiles; i = following, visit++)
    {
        int q0 = k0 + i * SW_FLASH_TILE;
        following = SPARSE ? needed_from(i + 1) : i + 1;
        bool next = following < tiles;
        int stage = SPARSE ? visit & 1 : i & 1;
        if (next) stage_queries(stage ^ 1, k0 + following * SW_FLASH_TILE);
        sw_flash_wait_current(next);
        const sw_bits16* q_tile = shared + stage * STAGE;
        bool partial = SPARSE && sparsity.kind(q0 / SW_FLASH_TILE, k0 / SW_FLASH_TILE) == SW_TILE_PARTIAL;
        const sw_bits16* dy_tile = q_tile + TILE;
        const float* lse_tile = reinterpret_cast<const float*>(q_tile + 2 * TILE);
        const float* delta_tile = lse_tile + SW_FLASH_TILE;

        // Pᵀ (16 keys × 64 queries): lane holds keys g, g+8 and queries 8n+2t, 8n+2t+1 of the tile.
        // Of a partly kept tile, only the 16-query groups the warp's keys keep a pair in.
        unsigned groups = partial ? sparsity.groups(first_key, first_key + 15, q0, true) : ~0u;
        float p[1][QUERY_TILES][4];
        sw_warp_product_transposed<T>(p, k_frag, q_tile, STRIDE, groups);
        bool diagonal = q0 < first_key + 15; // some query of the tile precedes some key of the warp
        SW_UNROLL
        for (int n = 0; n < QUERY_TILES; n++)
        {
            SW_UNROLL
            for (int e = 0; e < 4; e++)
            {
                int column = 8 * n + 2 * t + (e & 1);
                float value = sw_exp2(fmaf(p[0][n][e], scale_log2, -SW_LOG2E * lse_tile[column]));
                p[0][n][e] = diagonal && key[e >> 1] > q0 + column ? 0.0f : value;
                // Block-sparse: a dropped pair's P is 0 (its exp(s − lse) may be anything: the pair is not in lse).
                if (partial && key[e >> 1] <= q0 + column && q0 + column < seq && !sparsity.keeps(q0 + column, key[e >> 1]))
                    p[0][n][e] = 0.0f;
            }
        }

        // dV += Pᵀ·dY: accumulator tiles 2kk, 2kk+1 form the A fragment of queries 16kk…16kk+15.
        sw_warp_accumulate_product<T>(dv, p, dy_tile, STRIDE, groups);

        // dSᵀ = Pᵀ ⊙ (dPᵀ − D), dPᵀ = V·dYᵀ.
        float ds[1][QUERY_TILES][4];
        sw_warp_product_transposed<T>(ds, v_frag, dy_tile, STRIDE, groups);
        SW_UNROLL
        for (int n = 0; n < QUERY_TILES; n++)
        {
            SW_UNROLL
            for (int e = 0; e < 4; e++) ds[0][n][e] = p[0][n][e] * (ds[0][n][e] - delta_tile[8 * n + 2 * t + (e & 1)]);
        }
        if (scores != nullptr)
            flash_store_scores<T>(reinterpret_cast<sw_bits16*>(scores) + (long long)blockIdx.y * seq * seq, ds, key,
                                  first_key, q0, seq, g, t, shared + 2 * STAGE + warp * 16 * SW_FLASH_SCORE_STAGING_STRIDE);

        // dK += dSᵀ·Q (scaled at the end).
        sw_warp_accumulate_product<T>(dk, ds, q_tile, STRIDE, groups);
        __syncthreads(); // every warp is done with this stage before tile i+2 is copied into it
    }

    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        if (key[r] >= seq) continue;
        long long row = head.qkv_offset(key[r]);
        SW_UNROLL
        for (int j = 0; j < OUT_TILES; j++)
        {
            if (8 * j >= head_dim) continue;
            int column = 8 * j + 2 * t;
            flash_store_pair(dqkv, row + dim + column, scale * dk[0][j][2 * r], scale * dk[0][j][2 * r + 1], accumulate);
            flash_store_pair(dqkv, row + 2 * dim + column, dv[0][j][2 * r], dv[0][j][2 * r + 1], accumulate);
        }
    }
}

template <typename T, int D, bool SPARSE>
SW_INLINE void flash_attention_backward_dq(const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv,
                                           int seq, int heads, int head_dim, int accumulate,
                                           const unsigned char* sparse_tiles, const unsigned char* sparse_cells,
                                           int sparse_block, sw_bits16* shared)
{
    constexpr int STRIDE = D + 8;
    constexpr int STEPS = D / 16;
    constexpr int OUT_TILES = D / 8;
    constexpr int KEY_TILES = SW_FLASH_TILE / 8;
    constexpr int TILE = SW_FLASH_TILE * STRIDE;

    int q0 = (gridDim.x - 1 - blockIdx.x) * SW_FLASH_ROWS; // the last query tiles see the most keys: first
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const long long row_stride = head.row_stride;
    int dim = head.dim, warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    const sw_bits16* dyh = reinterpret_cast<const sw_bits16*>(dy) + head.token_offset(0);
    int key_end = min(q0 + SW_FLASH_ROWS, seq);
    int tiles = (key_end + SW_FLASH_TILE - 1) / SW_FLASH_TILE;
    // Block-sparse: the key tiles this query tile keeps a pair of, in order (dense: every tile).
    const sw_flash_sparsity sparsity = sw_flash_sparsity_of(sparse_tiles, sparse_cells, sparse_block, head);
    auto needed_from = [&](int i) {
        if (SPARSE)
            while (i < tiles && sparsity.kind(q0 / SW_FLASH_TILE, i) == SW_TILE_SKIP) i++;
        return i;
    };
    int first_tile = needed_from(0);

    // Stage s: K tile, V tile (sw_flash_stage_keys). Q and dY are staged once through stage 1.
    sw_stage_tile_async(shared + 2 * TILE, STRIDE, SW_FLASH_ROWS, D, head.q + q0 * row_stride, row_stride, seq - q0,
                        head_dim);
    sw_stage_tile_async(shared + 3 * TILE, STRIDE, SW_FLASH_ROWS, D, dyh + (long long)q0 * dim, dim, seq - q0, head_dim);
    sw_async_commit();
    if (first_tile < tiles)
        sw_flash_stage_keys<D>(shared, 0, first_tile * SW_FLASH_TILE, head);
    else
        sw_async_commit(); // an empty group: the wait below counts the same
    sw_async_wait<1>();
    __syncthreads();
    // This warp's 16 queries of Q and dY as A fragments (S = Q·Kᵀ, dP = dY·Vᵀ).
    unsigned q_frag[1][STEPS][4], dy_frag[1][STEPS][4];
    sw_load_warp_rows(q_frag, shared + 2 * TILE, STRIDE);
    sw_load_warp_rows(dy_frag, shared + 3 * TILE, STRIDE);
    __syncthreads(); // stage 1 is free for key tile 1

    const float scale = 1.0f / sqrtf((float)head_dim), scale_log2 = scale * SW_LOG2E;
    int first_query = q0 + 16 * warp, last_query = first_query + 15;
    int query[2] = {first_query + g, first_query + g + 8};
    // Rows past seq (zero Q and dY) get lse 0 and D 0: finite, and their dQ is never stored.
    float row_lse2[2], row_delta[2];
    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        bool real = query[r] < seq;
        long long at = head.row_offset(query[r]);
        row_lse2[r] = real ? lse[at] * SW_LOG2E : 0.0f;
        row_delta[r] = real ? delta[at] : 0.0f;
    }
    float dq[1][OUT_TILES][4];
    SW_UNROLL
    for (int j = 0; j < OUT_TILES; j++) dq[0][j][0] = dq[0][j][1] = dq[0][j][2] = dq[0][j][3] = 0.0f;

    // Dense: key tile i is in stage i & 1 and tile i + 1 follows; sparse: the stages alternate over the needed tiles.
    for (int i = first_tile, visit = 0, following; i < tiles; i = following, visit++)
    {
        int k0 = i * SW_FLASH_TILE;
        following = SPARSE ? needed_from(i + 1) : i + 1;
        bool next = following < tiles;
        int stage = SPARSE ? visit & 1 : i & 1;
        if (next) sw_flash_stage_keys<D>(shared, stage ^ 1, following * SW_FLASH_TILE, head);
        sw_flash_wait_current(next);
        const sw_bits16* k_tile = shared + 2 * stage * TILE;
        const sw_bits16* v_tile = k_tile + TILE;
        bool partial = SPARSE && sparsity.kind(q0 / SW_FLASH_TILE, i) == SW_TILE_PARTIAL;

        if (k0 <= last_query) // a key tile wholly after this warp's queries adds nothing to them
        {
            // Of a partly kept tile, only the 16-key groups the warp's queries keep a pair in.
            unsigned groups = partial ? sparsity.groups(first_query, last_query, k0, false) : ~0u;
            float s[1][KEY_TILES][4], ds[1][KEY_TILES][4];
            sw_warp_product_transposed<T>(s, q_frag, k_tile, STRIDE, groups);
            sw_warp_product_transposed<T>(ds, dy_frag, v_tile, STRIDE, groups); // dP = dY·Vᵀ
            bool diagonal = k0 + SW_FLASH_TILE - 1 > first_query;
            SW_UNROLL
            for (int n = 0; n < KEY_TILES; n++)
            {
                SW_UNROLL
                for (int e = 0; e < 4; e++)
                {
                    int r = e >> 1, key = k0 + 8 * n + 2 * t + (e & 1);
                    float p = sw_exp2(fmaf(s[0][n][e], scale_log2, -row_lse2[r]));
                    if (diagonal && key > query[r]) p = 0.0f;
                    if (partial && key <= query[r] && query[r] < seq && !sparsity.keeps(query[r], key)) p = 0.0f;
                    ds[0][n][e] = p * (ds[0][n][e] - row_delta[r]);
                }
            }

            // dQ += dS·K (scaled at the end): accumulator tiles 2kk, 2kk+1 form the A fragment of keys 16kk…16kk+15.
            sw_warp_accumulate_product<T>(dq, ds, k_tile, STRIDE, groups);
        }
        __syncthreads();
    }

    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        if (query[r] >= seq) continue;
        long long row = head.qkv_offset(query[r]);
        SW_UNROLL
        for (int j = 0; j < OUT_TILES; j++)
            if (8 * j < head_dim)
                flash_store_pair(dqkv, row + 8 * j + 2 * t, scale * dq[0][j][2 * r], scale * dq[0][j][2 * r + 1],
                                 accumulate);
    }
}

// dQ from the dSᵀ tiles the dK/dV kernel stored (scores, see flash_store_scores) instead of recomputing S, P, dP and
// dS: one product per key tile (dQ += dS·K) where flash_attention_backward_dq does three and the exponentials. Costs
// the batch·heads·seq² 16-bit scores buffer and its traffic (written once, read once). Grid, block and tile order as
// flash_attention_backward_dq; dynamic shared memory STAGES × (dSᵀ tile 64 × 72 + K tile 64 × (D+8)) × 2 bytes (2
// stages: 36 KiB for d64, 52 KiB for d128). A dSᵀ tile's columns past seq may hold anything
// (the row's next values): they only reach the dQ rows of queries past seq, which are never stored; the buffer's
// padding keeps the last read inside it.
// The loop does little arithmetic per tile (one 16 × 64 × D product per warp), so it waits on its copies: Nsight
// Compute on the H200 (run 12) saw 10.7 cycles between a warp's instructions and DRAM at 28% with two stages. STAGES
// tiles in flight per block keep STAGES − 1 copies going while it multiplies; four stages (three blocks per SM
// instead of six) measured the same GPT-2 step as two (33.2 against 33.1 ms, run 13), so the kernels use two. The
// groups are committed one per iteration, empty past the last tile, so the wait count is the same constant in every
// iteration.
template <typename T, int D, int STAGES>
SW_INLINE void flash_attention_backward_dq_stored(const T* qkv, const T* scores, T* dqkv, int seq, int heads,
                                                  int head_dim, int accumulate, sw_bits16* shared)
{
    static_assert(STAGES >= 2, "a stage being filled and one being read");
    constexpr int STRIDE = D + 8;
    constexpr int SCORE_STRIDE = SW_FLASH_TILE + 8;
    constexpr int OUT_TILES = D / 8;
    constexpr int SCORE_TILE = SW_FLASH_TILE * SCORE_STRIDE;
    constexpr int STAGE = SCORE_TILE + SW_FLASH_TILE * STRIDE;

    int q0 = (gridDim.x - 1 - blockIdx.x) * SW_FLASH_ROWS; // the last query tiles see the most keys: first
    const sw_attention_head head = sw_attention_head_of(qkv, seq, heads, head_dim);
    const sw_bits16* scores_head = reinterpret_cast<const sw_bits16*>(scores) + (long long)blockIdx.y * seq * seq;
    int warp = threadIdx.x / SW_WARP_SIZE, lane = threadIdx.x % SW_WARP_SIZE;
    int g = lane >> 2, t = lane & 3;
    int key_end = min(q0 + SW_FLASH_ROWS, seq);
    int tiles = (key_end + SW_FLASH_TILE - 1) / SW_FLASH_TILE;

    // Copies key tile `tile` (if there is one) into its stage, the dSᵀ tile of its keys and this block's queries then
    // the K tile of those keys, and commits the group (an empty one past the last tile).
    auto stage_keys = [&](int tile) {
        if (tile < tiles)
        {
            int k0 = tile * SW_FLASH_TILE;
            sw_bits16* base = shared + (tile % STAGES) * STAGE;
            sw_stage_tile_async(base, SCORE_STRIDE, SW_FLASH_TILE, SW_FLASH_TILE, scores_head + (long long)k0 * seq + q0,
                                seq, seq - k0, seq - q0);
            sw_stage_tile_async(base + SCORE_TILE, STRIDE, SW_FLASH_TILE, D, head.k + k0 * head.row_stride,
                                head.row_stride, seq - k0, head_dim);
        }
        sw_async_commit();
    };

    int first_query = q0 + 16 * warp, last_query = first_query + 15;
    float dq[1][OUT_TILES][4];
    SW_UNROLL
    for (int j = 0; j < OUT_TILES; j++) dq[0][j][0] = dq[0][j][1] = dq[0][j][2] = dq[0][j][3] = 0.0f;

    for (int tile = 0; tile < STAGES - 1; tile++) stage_keys(tile);
    for (int i = 0; i < tiles; i++)
    {
        // Tile i + STAGES − 1 goes where tile i − 1 was: every warp finished with it before the last barrier.
        stage_keys(i + STAGES - 1);
        sw_async_wait<STAGES - 1>(); // tile i's group, and every older one, has landed
        __syncthreads();
        int k0 = i * SW_FLASH_TILE;
        const sw_bits16* score_tile = shared + (i % STAGES) * STAGE;
        // A key tile wholly after this warp's queries adds nothing (its stored dS there are zeros anyway).
        if (k0 <= last_query)
            sw_warp_accumulate_transposed_product<T, SW_FLASH_TILE / 16>(dq, score_tile, SCORE_STRIDE,
                                                                         score_tile + SCORE_TILE, STRIDE);
        __syncthreads(); // every warp is done with this stage before a later tile is copied into it
    }

    const float scale = 1.0f / sqrtf((float)head_dim);
    SW_UNROLL
    for (int r = 0; r < 2; r++)
    {
        int query = first_query + g + 8 * r;
        if (query >= seq) continue;
        long long row = head.qkv_offset(query);
        SW_UNROLL
        for (int j = 0; j < OUT_TILES; j++)
            if (8 * j < head_dim)
                flash_store_pair(dqkv, row + 8 * j + 2 * t, scale * dq[0][j][2 * r], scale * dq[0][j][2 * r + 1],
                                 accumulate);
    }
}

#define SW_FLASH_DOT_KERNEL(suffix, T)                                                                        \
    extern "C" __global__ void flash_attention_backward_dot_##suffix(const T* y, const T* dy, float* delta,   \
                                                                     int rows, int seq, int heads, int head_dim) \
    {                                                                                                         \
        flash_attention_backward_dot<T>(y, dy, delta, rows, seq, heads, head_dim);                            \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dot_##suffix)

// The d64 dK/dV kernel is bounded to three blocks per multiprocessor: at most 168 registers instead of the ~235 the
// compiler takes unbounded (two blocks), for 12 bytes of spills in bf16 and none in fp16 (ptxas 11.8, sm_90); the 12
// warps per SM instead of 8 hide more of its tile loop's latencies: 4.61 → 4.48 ms per GPT-2 bf16 step on the H200
// (docs/gpu-results.md, run 16). The d128 one spills unbounded already and stays at one block's bound.
#define SW_FLASH_DKDV_MIN_BLOCKS(D) ((D) <= 64 ? 3 : 1)

#define SW_FLASH_BACKWARD_KERNELS(suffix, T, D)                                                               \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS, SW_FLASH_DKDV_MIN_BLOCKS(D))               \
        flash_attention_backward_dkdv_d##D##_##suffix(                                                        \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, T* scores, int seq, int heads, \
        int head_dim, int accumulate)                                                                         \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_backward_dkdv<T, D, false>(qkv, dy, lse, delta, dqkv, scores, seq, heads, head_dim,  \
                                                   accumulate, nullptr, nullptr, 0, shared);                  \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dkdv_d##D##_##suffix)                                         \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS, SW_FLASH_DKDV_MIN_BLOCKS(D))               \
        flash_attention_backward_dkdv_sparse_d##D##_##suffix(                                                 \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, int seq, int heads,        \
        int head_dim, int accumulate, const unsigned char* tiles, const unsigned char* cells, int block)     \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_backward_dkdv<T, D, true>(qkv, dy, lse, delta, dqkv, nullptr, seq, heads, head_dim,  \
                                                  accumulate, tiles, cells, block, shared);                   \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dkdv_sparse_d##D##_##suffix)                                  \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS) flash_attention_backward_dq_d##D##_##suffix( \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, int seq, int heads,        \
        int head_dim, int accumulate)                                                                         \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_backward_dq<T, D, false>(qkv, dy, lse, delta, dqkv, seq, heads, head_dim, accumulate, \
                                                 nullptr, nullptr, 0, shared);                                \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dq_d##D##_##suffix)                                           \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS) flash_attention_backward_dq_sparse_d##D##_##suffix( \
        const T* qkv, const T* dy, const float* lse, const float* delta, T* dqkv, int seq, int heads,        \
        int head_dim, int accumulate, const unsigned char* tiles, const unsigned char* cells, int block)     \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_backward_dq<T, D, true>(qkv, dy, lse, delta, dqkv, seq, heads, head_dim, accumulate,  \
                                                tiles, cells, block, shared);                                 \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dq_sparse_d##D##_##suffix)                                    \
    extern "C" __global__ void __launch_bounds__(SW_FLASH_THREADS)                                            \
        flash_attention_backward_dq_stored_d##D##_##suffix(const T* qkv, const T* scores, T* dqkv, int seq,  \
                                                           int heads, int head_dim, int accumulate)          \
    {                                                                                                         \
        SW_EXTERN_SHARED(sw_bits16, shared);                                                                  \
        flash_attention_backward_dq_stored<T, D, 2>(qkv, scores, dqkv, seq, heads, head_dim, accumulate, shared); \
    }                                                                                                         \
    SW_KERNEL_REGISTER(flash_attention_backward_dq_stored_d##D##_##suffix)

SW_FLASH_DOT_KERNEL(f16, sw_half)
SW_FLASH_DOT_KERNEL(bf16, sw_bf16)
SW_FLASH_BACKWARD_KERNELS(f16, sw_half, 64)
SW_FLASH_BACKWARD_KERNELS(bf16, sw_bf16, 64)
SW_FLASH_BACKWARD_KERNELS(f16, sw_half, 128)
SW_FLASH_BACKWARD_KERNELS(bf16, sw_bf16, 128)
