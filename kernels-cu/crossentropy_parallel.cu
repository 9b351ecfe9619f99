// crossentropy_parallel.cu — the cross-entropy with the vocabulary split across tensor-parallel ranks: each rank
// holds the logits of vocabulary entries [first, first + vocabulary), and the loss is assembled from per-row
// statistics that the runtime reduces over the ranks between the steps (max, then sum), so no rank ever holds a
// whole row of logits.
//   crossentropy_row_max:            row_max[r] = max_j logits[r, j] over this rank's logits
//   (the runtime maxes row_max over the ranks)
//   crossentropy_partials:           row_sum[r] = Σ_j exp(logits[r, j] − row_max[r]); target_logit[r] = the logit of
//       targets[r] when this rank holds it, else 0
//   (the runtime sums row_sum and target_logit over the ranks)
//   crossentropy_loss_from_partials: out[0] = multiplier · Σ_r (log row_sum[r] + row_max[r] − target_logit[r]),
//       multiplier = 1 / counted rows, one block, fixed order
//   crossentropy_range_backward:     dlogits[r, j] (=|+=) factor · (exp(logits[r, j] − row_max[r]) / row_sum[r]
//       − [j = targets[r] − first]), factor = scale / counted rows
// A row whose target is SW_CE_IGNORE_INDEX (−100) adds nothing to the loss and gets a zero gradient; the runtime
// counts the other rows on the host (crossentropy.cu does the same).
// The statistics are fp32 whatever the storage type, as LayerNorm's mean and rstd are (layernorm.cu).
// Each per-row kernel reads its rows once, with crossentropy.cu's 16-byte loads (and stores) over the aligned body
// of a row and single elements for its head and tail (crossentropy_rows.cuh), and the same ex2-based exponential.
// CPU reference: runtime/Shardwise/Cpu/VocabularyParallelKernels.cs (RowMax, Partials, Loss, Backward;
// CpuOps.CrossEntropyRowMax / CrossEntropyPartials / CrossEntropyFromPartials / CrossEntropyRangeBackward).
#include "crossentropy_rows.cuh"

// Grid: one block per row, gridDim.x = rows; blockDim.x a multiple of 32, ≤ 1024 (256 suggested).
template <typename T>
SW_INLINE void crossentropy_row_max(const T* logits, float* row_max, int rows, int vocabulary)
{
    int row = blockIdx.x;
    if (row >= rows) return;  // uniform per block
    const T* l = logits + (long long)row * vocabulary;
    float m = sw_negative_infinity();
    auto take = [&](float x) { m = fmaxf(m, x); };
    sw_ce_row_visit(l, vocabulary, take);
    m = sw_block_max(m);
    if (threadIdx.x == 0) row_max[row] = m;
}

// Grid: one block per row, as crossentropy_row_max.
template <typename T>
SW_INLINE void crossentropy_partials(const T* logits, const int* targets, const float* row_max, float* row_sum,
                                     float* target_logit, int rows, int vocabulary, int first)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    const T* l = logits + (long long)row * vocabulary;
    float m = row_max[row];
    float sum = 0.0f;
    auto add = [&](float x) { sum += sw_ce_exp(x - m); };
    sw_ce_row_visit(l, vocabulary, add);
    sum = sw_block_sum(sum);
    if (threadIdx.x == 0)
    {
        int local = targets[row] - first;
        row_sum[row] = sum;
        target_logit[row] = (unsigned)local < (unsigned)vocabulary ? sw_to_float(l[local]) : 0.0f;
    }
}

// Grid: exactly one block; blockDim.x a multiple of 32 (1024 suggested).
SW_INLINE void crossentropy_loss_from_partials(const float* row_max, const float* row_sum, const float* target_logit,
                                               const int* targets, int rows, float multiplier, float* out)
{
    float sum = 0.0f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x)
    {
        if (targets[r] != SW_CE_IGNORE_INDEX) sum += logf(row_sum[r]) + row_max[r] - target_logit[r];
    }
    sum = sw_block_sum(sum);
    if (threadIdx.x == 0) out[0] = sum * multiplier;
}

// Grid: one block per row, as crossentropy_row_max (one read and one write of each row, 16-byte wide where aligned).
// dlogits may alias logits when accumulate is 0 (each element is read and then written by the same thread).
template <typename T>
SW_INLINE void crossentropy_range_backward(const T* logits, const int* targets, const float* row_max,
                                           const float* row_sum, T* dlogits, int rows, int vocabulary, int first,
                                           float factor, int accumulate)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    long long base = (long long)row * vocabulary;
    if (targets[row] == SW_CE_IGNORE_INDEX)  // uniform per block
    {
        if (!accumulate) sw_ce_row_zero(dlogits + base, vocabulary);
        return;
    }
    float m = row_max[row], scaled_inverse_sum = factor / row_sum[row];
    int local = targets[row] - first;  // outside [0, vocabulary) when another rank holds the target
    sw_ce_row_map(logits + base, dlogits + base, vocabulary, accumulate, [=](float x, int j) {
        float gradient = sw_ce_exp(x - m) * scaled_inverse_sum;
        return j == local ? gradient - factor : gradient;
    });
}

#define SW_CROSSENTROPY_PARALLEL_KERNELS(suffix, T)                                                           \
    extern "C" __global__ void crossentropy_row_max_##suffix(const T* logits, float* row_max, int rows,       \
                                                             int vocabulary)                                  \
    {                                                                                                         \
        crossentropy_row_max<T>(logits, row_max, rows, vocabulary);                                           \
    }                                                                                                         \
    SW_KERNEL_REGISTER(crossentropy_row_max_##suffix)                                                         \
    extern "C" __global__ void crossentropy_partials_##suffix(const T* logits, const int* targets,            \
                                                              const float* row_max, float* row_sum,           \
                                                              float* target_logit, int rows, int vocabulary,  \
                                                              int first)                                      \
    {                                                                                                         \
        crossentropy_partials<T>(logits, targets, row_max, row_sum, target_logit, rows, vocabulary, first);   \
    }                                                                                                         \
    SW_KERNEL_REGISTER(crossentropy_partials_##suffix)                                                        \
    extern "C" __global__ void crossentropy_range_backward_##suffix(                                          \
        const T* logits, const int* targets, const float* row_max, const float* row_sum, T* dlogits,          \
        int rows, int vocabulary, int first, float factor, int accumulate)                                    \
    {                                                                                                         \
        crossentropy_range_backward<T>(logits, targets, row_max, row_sum, dlogits, rows, vocabulary, first,   \
                                       factor, accumulate);                                                   \
    }                                                                                                         \
    SW_KERNEL_REGISTER(crossentropy_range_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_CROSSENTROPY_PARALLEL_KERNELS)

extern "C" __global__ void crossentropy_loss_from_partials_f32(const float* row_max, const float* row_sum,
                                                               const float* target_logit, const int* targets,
                                                               int rows, float multiplier, float* out)
{
    crossentropy_loss_from_partials(row_max, row_sum, target_logit, targets, rows, multiplier, out);
}
SW_KERNEL_REGISTER(crossentropy_loss_from_partials_f32)
