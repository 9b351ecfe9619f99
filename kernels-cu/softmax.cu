// softmax.cu — the causal softmax of the attention core, between the batched GEMMs (done by cuBLAS):
//   softmax_causal_forward:  P[i, j] = exp(scale·S[i, j] − m) / Σ_{k≤t} exp(scale·S[i, k] − m) for j ≤ t, 0 for j > t,
//       where t = i mod seq is the query position and m the row maximum over k ≤ t (S = Q·Kᵀ unscaled); also
//       lse[i] = m + ln Σ_{k≤t} exp(scale·S[i, k] − m) (fp32), all the attention op saves for backward.
//   softmax_causal_recompute: P[i, j] = exp(scale·S[i, j] − lse[i]) for j ≤ t, 0 for j > t: backward's probabilities
//       from the scores formed again and the forward's lse.
//   softmax_causal_backward: dS[i, j] = scale · P[i, j] · (dP[i, j] − Σ_{k≤t} P[i, k]·dP[i, k]) for j ≤ t, 0 for j > t
//       (dP = dY·Vᵀ); with scale = 1/√headDim folded in here, dQ = dS·K and dK = dSᵀ·Q need no further scaling.
// Rows are the flattened [batch, heads, seq] query rows of length seq (probabilities layout of ITensorOps.Attention).
// Block-sparse attention (forward and recompute): with a layout ([heads, seq/block, seq/block] bytes, 1 = kept; see
// runtime/Shardwise/Sparsity/BlockSparseLayout.cs), key j of query t in head h counts only where the layout keeps tile
// (t / block, j / block); its probability is 0 like a key above the diagonal, so the backward needs no layout (dS = 0
// where P = 0). layout = null: every causal key.
// CPU reference: runtime/Shardwise/Cpu/AttentionKernels.cs (ForwardHead / BackwardHead; CpuOps.Attention /
// AttentionBackward), which applies 1/√headDim in its GEMMs.
// Grid (both): one warp per row; blockDim.x a multiple of 32 (256 suggested), gridDim.x = ceil(rows / (blockDim.x/32)).
// In place is allowed: probs may alias scores, d_scores may alias d_probs (each lane rewrites only what it read).
// The lse rows follow the probabilities rows: [batch, heads, seq] for the [batch, heads, seq, seq] scores.
#include "shardwise_common.cuh"

// One warp per query row: its index, this thread's lane, the row's first element and how many keys it sees.
struct sw_causal_row
{
    int row, lane, visible;
    long long base;
};

SW_INLINE bool sw_causal_row_of(int rows, int seq, sw_causal_row& r)
{
    r.row = blockIdx.x * (blockDim.x / SW_WARP_SIZE) + threadIdx.x / SW_WARP_SIZE;
    r.lane = threadIdx.x % SW_WARP_SIZE;
    r.visible = r.row % seq + 1;
    r.base = (long long)r.row * seq;
    return r.row < rows;
}

// Whether the block-sparse layout keeps key `key` of row r (head (row / seq) mod heads); true without a layout.
SW_INLINE bool sw_layout_keeps(const unsigned char* layout, int block, int heads, int seq, const sw_causal_row& r, int key)
{
    if (layout == nullptr) return true;
    int blocks = seq / block, h = (r.row / seq) % heads, t = r.row % seq;
    return layout[((long long)h * blocks + t / block) * blocks + key / block] != 0;
}

template <typename T>
SW_INLINE void softmax_causal_forward(const T* scores, T* probs, float* lse, int rows, int seq, float scale,
                                      const unsigned char* layout, int block, int heads)
{
    sw_causal_row r;
    if (!sw_causal_row_of(rows, seq, r)) return;
    const T* s = scores + r.base;
    T* p = probs + r.base;

    sw_softmax_state state = sw_softmax_empty();
    for (int j = r.lane; j < r.visible; j += SW_WARP_SIZE)
        if (sw_layout_keeps(layout, block, heads, seq, r, j)) sw_softmax_add(state, scale * sw_to_float(s[j]));
    state = sw_warp_softmax(state);
    float inverse_sum = 1.0f / state.sum;
    if (r.lane == 0) lse[r.row] = state.max + logf(state.sum);

    for (int j = r.lane; j < seq; j += SW_WARP_SIZE)
        p[j] = sw_from_float<T>(j < r.visible && sw_layout_keeps(layout, block, heads, seq, r, j)
                                    ? expf(scale * sw_to_float(s[j]) - state.max) * inverse_sum
                                    : 0.0f);
}

template <typename T>
SW_INLINE void softmax_causal_recompute(const T* scores, const float* lse, T* probs, int rows, int seq, float scale,
                                        const unsigned char* layout, int block, int heads)
{
    sw_causal_row r;
    if (!sw_causal_row_of(rows, seq, r)) return;
    const T* s = scores + r.base;
    T* p = probs + r.base;
    float row_lse = lse[r.row];

    for (int j = r.lane; j < seq; j += SW_WARP_SIZE)
        p[j] = sw_from_float<T>(j < r.visible && sw_layout_keeps(layout, block, heads, seq, r, j)
                                    ? expf(scale * sw_to_float(s[j]) - row_lse)
                                    : 0.0f);
}

template <typename T>
SW_INLINE void softmax_causal_backward(const T* probs, const T* d_probs, T* d_scores, int rows, int seq, float scale)
{
    sw_causal_row r;
    if (!sw_causal_row_of(rows, seq, r)) return;
    const T* p = probs + r.base;
    const T* dp = d_probs + r.base;

    float dot = 0.0f;
    for (int j = r.lane; j < r.visible; j += SW_WARP_SIZE) dot += sw_to_float(p[j]) * sw_to_float(dp[j]);
    dot = sw_warp_sum(dot);

    for (int j = r.lane; j < seq; j += SW_WARP_SIZE)
    {
        float gradient = 0.0f;
        if (j < r.visible) gradient = scale * sw_to_float(p[j]) * (sw_to_float(dp[j]) - dot);
        d_scores[r.base + j] = sw_from_float<T>(gradient);
    }
}

#define SW_SOFTMAX_KERNELS(suffix, T)                                                                       \
    extern "C" __global__ void softmax_causal_forward_##suffix(const T* scores, T* probs, float* lse,        \
                                                               int rows, int seq, float scale,              \
                                                               const unsigned char* layout, int block,      \
                                                               int heads)                                   \
    {                                                                                                       \
        softmax_causal_forward<T>(scores, probs, lse, rows, seq, scale, layout, block, heads);              \
    }                                                                                                       \
    SW_KERNEL_REGISTER(softmax_causal_forward_##suffix)                                                     \
    extern "C" __global__ void softmax_causal_recompute_##suffix(const T* scores, const float* lse,         \
                                                                 T* probs, int rows, int seq, float scale,  \
                                                                 const unsigned char* layout, int block,    \
                                                                 int heads)                                 \
    {                                                                                                       \
        softmax_causal_recompute<T>(scores, lse, probs, rows, seq, scale, layout, block, heads);            \
    }                                                                                                       \
    SW_KERNEL_REGISTER(softmax_causal_recompute_##suffix)                                                   \
    extern "C" __global__ void softmax_causal_backward_##suffix(const T* probs, const T* d_probs,           \
                                                                T* d_scores, int rows, int seq, float scale) \
    {                                                                                                       \
        softmax_causal_backward<T>(probs, d_probs, d_scores, rows, seq, scale);                             \
    }                                                                                                       \
    SW_KERNEL_REGISTER(softmax_causal_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_SOFTMAX_KERNELS)
