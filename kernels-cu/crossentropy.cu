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

    sw_softmax_state state = sw_softmax_empty();
    for (int j = threadIdx.x; j < vocabulary; j += blockDim.x) sw_softmax_add(state, sw_to_float(logits[base + j]));
    state = sw_block_softmax(state);

    if (threadIdx.x == 0 && losses != nullptr)
        losses[row] = valid_target ? state.max + logf(state.sum) - target_logit : sw_bits_float(0x7fc00000u);
    if (dlogits == nullptr || !valid_target) return;

    float scaled_inverse_sum = dloss / state.sum;
    for (int j = threadIdx.x; j < vocabulary; j += blockDim.x)
    {
        float gradient = expf(sw_to_float(logits[base + j]) - state.max) * scaled_inverse_sum;
        if (j == target) gradient -= dloss;
        if (accumulate) gradient += sw_to_float(dlogits[base + j]);
        dlogits[base + j] = sw_from_float<T>(gradient);
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
