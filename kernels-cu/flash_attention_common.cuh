// flash_attention_common.cuh — what the flash-attention forward and backward kernels share: the tile geometry, the
// base-2 constants of their softmax, and where the block's (batch, head) lives in the tensors of ITensorOps.Attention
// (qkv [batch, seq, 3·dim] with q, k, v side by side; y and dy [batch, seq, dim]; lse and D [batch, heads, seq]).
// CPU reference: none of its own; checked through the flash kernels (FlashAttentionKernelTests).
#pragma once
#include "shardwise_mma.cuh"

#define SW_FLASH_ROWS 64 // rows per backward block, 16 per warp: queries (dQ) or keys (dK/dV)
#define SW_FLASH_TILE 64 // rows per shared-memory tile: keys (forward, dQ) or queries (dK/dV)
// 16-row tiles per warp in the forward: two for heads up to 64 wide (each K/V fragment loaded serves both), one for
// wider heads, whose 16·M·D fp32 output accumulators would not fit in registers twice.
#define SW_FLASH_ROW_TILES(D) ((D) <= 64 ? 2 : 1)
#define SW_FLASH_THREADS 128
#define SW_LOG2E 1.4426950408889634f
#define SW_LN2 0.6931471805599453f

// The (batch, head) of this block (blockIdx.y = b·heads + h) and its rows in the attention tensors.
struct sw_attention_head
{
    int b, h, seq, heads, head_dim, dim;
    long long row_stride; // between rows of qkv: 3·dim
    const sw_bits16* q;   // row 0 of this head's q (k and v follow, dim and 2·dim further)
    const sw_bits16* k;
    const sw_bits16* v;

    // Element offset of token t's head columns in qkv-shaped tensors (qkv, dqkv).
    SW_INLINE long long qkv_offset(int t) const { return ((long long)b * seq + t) * row_stride + h * head_dim; }

    // Element offset of token t's head columns in [batch, seq, dim] tensors (y, dy).
    SW_INLINE long long token_offset(int t) const { return ((long long)b * seq + t) * dim + h * head_dim; }

    // Index of token t's row statistic in [batch, heads, seq] tensors (lse, D).
    SW_INLINE long long row_offset(int t) const { return ((long long)b * heads + h) * seq + t; }
};

template <typename T>
SW_INLINE sw_attention_head sw_attention_head_of(const T* qkv, int seq, int heads, int head_dim)
{
    sw_attention_head head;
    head.b = blockIdx.y / heads;
    head.h = blockIdx.y % heads;
    head.seq = seq;
    head.heads = heads;
    head.head_dim = head_dim;
    head.dim = heads * head_dim;
    head.row_stride = 3LL * head.dim;
    head.q = reinterpret_cast<const sw_bits16*>(qkv) + head.qkv_offset(0);
    head.k = head.q + head.dim;
    head.v = head.q + 2 * head.dim;
    return head;
}

// Copies key tile k0's K and V rows of this head into pipeline stage `stage` with cp.async (K at 2·stage·TILE elements
// of `shared`, V right after it; rows STRIDE = D + 8 apart, zeros past seq and past head_dim) and commits them as one
// group. The key-tile loops of the forward and of dQ stage through it.
template <int D>
SW_INLINE void sw_flash_stage_keys(sw_bits16* shared, int stage, int k0, const sw_attention_head& head)
{
    constexpr int STRIDE = D + 8, TILE = SW_FLASH_TILE * STRIDE;
    sw_bits16* k_tile = shared + 2 * stage * TILE;
    sw_stage_tile_async(k_tile, STRIDE, SW_FLASH_TILE, D, head.k + k0 * head.row_stride, head.row_stride, head.seq - k0,
                        head.head_dim);
    sw_stage_tile_async(k_tile + TILE, STRIDE, SW_FLASH_TILE, D, head.v + k0 * head.row_stride, head.row_stride,
                        head.seq - k0, head.head_dim);
    sw_async_commit();
}

// Makes the current tile's copies visible to the block: with the next tile's group committed after it (`next_in_flight`)
// one group may stay outstanding, otherwise none; then the barrier, after which every thread may read the tile.
SW_INLINE void sw_flash_wait_current(bool next_in_flight)
{
    if (next_in_flight)
        sw_async_wait<1>();
    else
        sw_async_wait<0>();
    __syncthreads();
}

// Block-sparse attention in the flash kernels (their _sparse entry points): the host's tile table says, per (head,
// 64-query tile, 64-key tile), whether the layout keeps none of the tile's causal (query, key) pairs (skip it), all of
// them (only the causal mask applies) or some (look each pair's layout cell up). Built by
// runtime/Shardwise/Cuda/FlashSparseTiles.cs from the [heads, seq/block, seq/block] layout cells it also passes.
#define SW_TILE_SKIP 0
#define SW_TILE_FULL 1
#define SW_TILE_PARTIAL 2

struct sw_flash_sparsity
{
    const unsigned char* tiles; // [heads][tile_count][tile_count]
    const unsigned char* cells; // [heads][blocks][blocks], 1 = kept
    int block, blocks, tile_count, h, seq;

    SW_INLINE int kind(int query_tile, int key_tile) const
    {
        return tiles[((long long)h * tile_count + query_tile) * tile_count + key_tile];
    }

    // For query and key inside the sequence.
    SW_INLINE bool keeps(int query, int key) const
    {
        return cells[((long long)h * blocks + query / block) * blocks + key / block] != 0;
    }

    // Whether some query in [first_query, last_query] and key in [first_key, last_key], key ≤ query, both inside the
    // sequence, has its cell kept.
    SW_INLINE bool any_kept(int first_query, int last_query, int first_key, int last_key) const
    {
        last_query = min(last_query, seq - 1);
        last_key = min(last_key, last_query);
        for (int qb = first_query / block; qb * block <= last_query; qb++)
        {
            int block_last_query = min(qb * block + block - 1, last_query);
            for (int kb = first_key / block; kb * block <= last_key; kb++)
                if (max(kb * block, first_key) <= block_last_query && cells[((long long)h * blocks + qb) * blocks + kb] != 0)
                    return true;
        }
        return false;
    }

    // Bit g set when the 16 keys (or, keys_are_rows, the 16 queries) k0 + 16g … of a 64-wide tile have a kept pair with
    // the warp's rows first_row … last_row: the 16-wide groups of a partly kept tile whose products a warp must run
    // (blocks smaller than the tile drop whole groups; DeepSpeed's default blocks are 16).
    SW_INLINE unsigned groups(int first_row, int last_row, int k0, bool keys_are_rows) const
    {
        unsigned bits = 0;
        for (int g = 0; g < SW_FLASH_TILE / 16; g++)
        {
            int first = k0 + 16 * g, last = first + 15;
            bool kept = keys_are_rows ? any_kept(first, last, first_row, last_row) : any_kept(first_row, last_row, first, last);
            if (kept) bits |= 1u << g;
        }
        return bits;
    }
};

SW_INLINE sw_flash_sparsity sw_flash_sparsity_of(const unsigned char* tiles, const unsigned char* cells, int block,
                                                 const sw_attention_head& head)
{
    sw_flash_sparsity sparsity;
    sparsity.tiles = tiles;
    sparsity.cells = cells;
    sparsity.block = block;
    sparsity.blocks = block > 0 ? head.seq / block : 0;
    sparsity.tile_count = (head.seq + SW_FLASH_TILE - 1) / SW_FLASH_TILE;
    sparsity.h = head.h;
    sparsity.seq = head.seq;
    return sparsity;
}
