// crossentropy.cu — fused softmax cross-entropy forward and backward over the classifier logits, in one pass pair,
// without materialising the probabilities:
//   losses[r]  = logsumexp(logits[r, :]) − logits[r, targets[r]]                      (fp32, per row)
//   dlogits[r, j] (=|+=) dloss · (softmax(logits[r])[j] − [j = targets[r]])           (skipped when dlogits = nullptr)
// with dloss = scale / rows for ITensorOps' mean loss (CrossEntropyBackward's scale is the loss scale). The mean loss
// is Σ losses / rows: reduce with sum_f32 (global_norm.cu) and multiplier 1/rows.
// CPU reference: runtime/Shardwise/Cpu/CrossEntropyKernels.cs (CpuOps.CrossEntropy / CrossEntropyBackward).
// Grid: one block per row, gridDim.x = rows; blockDim.x a multiple of 32, ≤ 1024 (512 suggested for a 50K vocabulary).
// dlogits may alias logits when accumulate is 0 (llm.c does this to save the memory of a second [rows, V] buffer):
// every thread reads the target logit before the block reduction's barriers, and afterwards each thread rewrites
// only elements it reads itself. A target outside [0, vocabulary) makes the row's loss NaN and leaves its dlogits.
#include "shardwise_common.cuh"

// Each thread takes SW_CE_BATCH elements per round, blockDim.x apart (so each load instruction stays coalesced),
// loads all of them before using any, and in the gradient pass loads all before storing any: with one element per
// round the stores to dlogits (which may alias logits) kept the next loads waiting, and each pass ran at a fraction
// of the bandwidth. The pass-one statistics merge once per round instead of rescaling per element.
#define SW_CE_BATCH 8

template <typename T>
SW_INLINE void crossentropy_fused_forward_backward(const T* logits, const int* targets, T* dlogits, float* losses,
                                                   int rows, int vocabulary, float dloss, int accumulate)
{
    int row = blockIdx.x;
    if (row >= rows) return;  // uniform per block, so no thread skips a barrier its block reaches
    long long base = (long long)row * vocabulary;
    int target = targets[row];
    bool valid_target = (unsigned)target < (unsigned)vocabulary;
    float target_logit = valid_target ? sw_to_float(logits[base + target]) : 0.0f;
    int stride = blockDim.x, round = SW_CE_BATCH * blockDim.x;

    sw_softmax_state state = sw_softmax_empty();
    for (int first = threadIdx.x; first < vocabulary; first += round)
    {
        float v[SW_CE_BATCH];
        SW_UNROLL
        for (int i = 0; i < SW_CE_BATCH; i++)
        {
            int j = first + i * stride;
            v[i] = j < vocabulary ? sw_to_float(logits[base + j]) : sw_negative_infinity();
        }
        float m = v[0];  // j = first is always inside the row
        SW_UNROLL
        for (int i = 1; i < SW_CE_BATCH; i++) m = fmaxf(m, v[i]);
        float sum = 0.0f;
        SW_UNROLL
        for (int i = 0; i < SW_CE_BATCH; i++) sum += expf(v[i] - m);  // exp(−inf) = 0 past the row's end
        state = sw_softmax_merge(state, sw_softmax_state{m, sum});
    }
    state = sw_block_softmax(state);

    if (threadIdx.x == 0 && losses != nullptr)
        losses[row] = valid_target ? state.max + logf(state.sum) - target_logit : sw_bits_float(0x7fc00000u);
    if (dlogits == nullptr || !valid_target) return;

    float scaled_inverse_sum = dloss / state.sum;
    for (int first = threadIdx.x; first < vocabulary; first += round)
    {
        float gradient[SW_CE_BATCH];
        SW_UNROLL
        for (int i = 0; i < SW_CE_BATCH; i++)
        {
            int j = first + i * stride;
            gradient[i] = 0.0f;
            if (j < vocabulary)
            {
                gradient[i] = expf(sw_to_float(logits[base + j]) - state.max) * scaled_inverse_sum;
                if (j == target) gradient[i] -= dloss;
                if (accumulate) gradient[i] += sw_to_float(dlogits[base + j]);
            }
        }
        SW_UNROLL
        for (int i = 0; i < SW_CE_BATCH; i++)
        {
            int j = first + i * stride;
            if (j < vocabulary) dlogits[base + j] = sw_from_float<T>(gradient[i]);
        }
    }
}

#define SW_CROSSENTROPY_KERNELS(suffix, T)                                                                  \
    extern "C" __global__ void crossentropy_fused_forward_backward_##suffix(                                \
        const T* logits, const int* targets, T* dlogits, float* losses, int rows, int vocabulary,           \
        float dloss, int accumulate)                                                                        \
    {                                                                                                       \
        crossentropy_fused_forward_backward<T>(logits, targets, dlogits, losses, rows, vocabulary, dloss,   \
                                               accumulate);                                                 \
    }                                                                                                       \
    SW_KERNEL_REGISTER(crossentropy_fused_forward_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_CROSSENTROPY_KERNELS)
