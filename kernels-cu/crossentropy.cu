// crossentropy.cu — softmax cross-entropy over the classifier logits, without materialising the probabilities:
//   crossentropy_forward:  losses[r] = logsumexp(logits[r, :]) − logits[r, targets[r]]                 (fp32)
//                          row_statistics[2r, 2r + 1] = (max_j logits[r, j], Σ_j exp(logits[r, j] − max))
//                          (fp32, skipped when row_statistics = nullptr)
//   crossentropy_backward: dlogits[r, j] (=|+=) dloss · (exp(logits[r, j] − max) / sum − [j = targets[r]])
//                          with (max, sum) from row_statistics when given (the forward's), else computed here
//   crossentropy_forward_backward: both in one launch, for a backward that directly follows its forward with a
//                          scale known before it (ITensorOps.CrossEntropyWithGradient, the generated ForwardBackward):
//                          losses[r] as the forward, then dlogits as the backward with the row statistics it just
//                          computed; the same values bit for bit as the two kernels
// dloss = scale / counted rows for ITensorOps' mean loss (CrossEntropyBackward's scale is the loss scale); the mean
// loss is Σ losses / counted rows: reduce with sum_f32 (global_norm.cu) and multiplier 1/counted. A row whose target
// is SW_CE_IGNORE_INDEX (−100) is not counted: its loss is 0 and its gradient 0, without reading its logits.
// CPU reference: runtime/Shardwise/Cpu/CrossEntropyKernels.cs (CpuOps.CrossEntropy / CrossEntropyBackward).
//
// Passes over the logits (each row is 100 KB for GPT-2's 50304 bf16 logits, so nothing stays in cache between
// passes): the forward reads each row once (online max and Σ exp, crossentropy_rows.cuh); the backward reads and
// writes each row once when it is given the forward's statistics (CudaOps passes them when the backward directly
// follows the forward on the same logits), and reads twice otherwise. Loads and stores are 16 bytes wide over the
// row's aligned body, single elements for the unaligned head and the tail (any vocabulary, any row alignment).
// Grid (both): one block per row, gridDim.x = rows; blockDim.x a multiple of 32, ≤ 1024. CudaOps launches the
// forward with 128 threads and the backward with 512 for a 50K vocabulary: on the H200 at 16384 × 50304 bf16 the
// forward takes 0.38 ms (4.3 TB/s, a device-to-device copy's rate) and the backward with statistics 0.80 ms
// (4.1 TB/s read + write), 1.2 ms a step where the earlier kernel (one element per load, statistics recomputed in
// the backward) took 3.9 ms (bench/kernels/crossentropy_bench.cu).
// The fused kernel reads each row from global memory once (it keeps the row in shared memory for its second pass:
// 100 KB for GPT-2's bf16 row, two blocks per H100 multiprocessor), where the pair reads it twice: 1.65 GB less
// traffic per GPT-2 step, about 0.35 ms on the H200 if it runs at the backward's rate (a prediction until measured).
// dlogits may alias logits when accumulate is 0 (llm.c does this to save a second [rows, V] buffer): each element
// is read and then written by the same thread, after the statistics pass's last barrier.
// A target outside [0, vocabulary) other than the ignore index makes the row's loss NaN and leaves its dlogits
// (CudaOps rejects such targets on the host before launching, with the row and the value in the message).
#include "crossentropy_rows.cuh"

// A row's loss lse − logit[target] from its statistics; NaN for a target outside the vocabulary.
SW_INLINE float crossentropy_row_loss(sw_softmax_state state, float target_logit, bool valid_target)
{
    return valid_target ? state.max + logf(state.sum) - target_logit : sw_bits_float(0x7fc00000u);
}

// out (=|+=) dloss · (exp(in − max) / sum − [j = target]) for one row read from `in` (the logits, or the fused
// kernel's shared copy of them), given the row's statistics.
template <typename T>
SW_INLINE void crossentropy_row_gradient(const T* in, T* out, int vocabulary, int accumulate, sw_softmax_state state,
                                         int target, float dloss)
{
    float row_max = state.max, scaled_inverse_sum = dloss / state.sum;
    sw_ce_row_map(in, out, vocabulary, accumulate, [=](float x, int j) {
        float gradient = sw_ce_exp(x - row_max) * scaled_inverse_sum;
        return j == target ? gradient - dloss : gradient;
    });
}

template <typename T>
SW_INLINE void crossentropy_forward(const T* logits, const int* targets, float* losses, float* row_statistics,
                                    int rows, int vocabulary)
{
    int row = blockIdx.x;
    if (row >= rows) return;  // uniform per block, so no thread skips a barrier its block reaches
    const T* l = logits + (long long)row * vocabulary;
    int target = targets[row];
    if (target == SW_CE_IGNORE_INDEX)  // uniform per block; a backward given these statistics skips the row too
    {
        if (threadIdx.x == 0) losses[row] = 0.0f;
        return;
    }
    bool valid_target = (unsigned)target < (unsigned)vocabulary;
    // Read before the pass so that its latency hides behind it; only thread 0 writes the loss.
    float target_logit = threadIdx.x == 0 && valid_target ? sw_to_float(l[target]) : 0.0f;
    sw_softmax_state state = sw_ce_row_statistics(l, vocabulary);
    if (threadIdx.x != 0) return;
    losses[row] = crossentropy_row_loss(state, target_logit, valid_target);
    if (row_statistics != nullptr)
    {
        row_statistics[2 * (long long)row] = state.max;
        row_statistics[2 * (long long)row + 1] = state.sum;
    }
}

template <typename T>
SW_INLINE void crossentropy_backward(const T* logits, const int* targets, const float* row_statistics, T* dlogits,
                                     int rows, int vocabulary, float dloss, int accumulate)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    int target = targets[row];
    long long base = (long long)row * vocabulary;
    if (target == SW_CE_IGNORE_INDEX)  // uniform per block, as the row check
    {
        if (!accumulate) sw_ce_row_zero(dlogits + base, vocabulary);
        return;
    }
    if ((unsigned)target >= (unsigned)vocabulary) return;
    const T* l = logits + base;
    sw_softmax_state state = row_statistics != nullptr
                                 ? sw_softmax_state{row_statistics[2 * (long long)row], row_statistics[2 * (long long)row + 1]}
                                 : sw_ce_row_statistics(l, vocabulary);
    crossentropy_row_gradient(l, dlogits + base, vocabulary, accumulate, state, target, dloss);
}

// The fused kernel. With `staged` (dynamic shared memory of vocabulary · sizeof(T) + 16 bytes), the first pass also
// copies the row into shared memory at the row's own alignment modulo 16 bytes, and the second pass reads it from
// there: one read of the row from global memory. Without (a row too long for the device's shared memory), the
// second pass reads the row again from global memory, where it likely still is in L2.
template <typename T>
SW_INLINE void crossentropy_forward_backward(const T* logits, const int* targets, float* losses, T* dlogits, int rows,
                                             int vocabulary, float dloss, int accumulate, int staged, unsigned char* shared)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    long long base = (long long)row * vocabulary;
    const T* l = logits + base;
    T* copy = staged ? reinterpret_cast<T*>(shared + reinterpret_cast<unsigned long long>(l) % 16) : nullptr;
    int target = targets[row];
    if (target == SW_CE_IGNORE_INDEX)  // uniform per block
    {
        if (threadIdx.x == 0) losses[row] = 0.0f;
        if (!accumulate) sw_ce_row_zero(dlogits + base, vocabulary);
        return;
    }
    bool valid_target = (unsigned)target < (unsigned)vocabulary;
    // Read before the statistics pass ends with its barrier: after it, dlogits (perhaps these logits) is written.
    float target_logit = threadIdx.x == 0 && valid_target ? sw_to_float(l[target]) : 0.0f;
    sw_softmax_state state = sw_ce_row_statistics(l, vocabulary, copy);
    if (threadIdx.x == 0) losses[row] = crossentropy_row_loss(state, target_logit, valid_target);
    if (!valid_target) return;  // uniform per block
    crossentropy_row_gradient(staged ? copy : l, dlogits + base, vocabulary, accumulate, state, target, dloss);
}

#define SW_CROSSENTROPY_KERNELS(suffix, T)                                                                          \
    extern "C" __global__ void crossentropy_forward_##suffix(const T* logits, const int* targets, float* losses,    \
                                                             float* row_statistics, int rows, int vocabulary)       \
    {                                                                                                               \
        crossentropy_forward<T>(logits, targets, losses, row_statistics, rows, vocabulary);                         \
    }                                                                                                               \
    SW_KERNEL_REGISTER(crossentropy_forward_##suffix)                                                               \
    extern "C" __global__ void crossentropy_backward_##suffix(const T* logits, const int* targets,                  \
                                                              const float* row_statistics, T* dlogits, int rows,    \
                                                              int vocabulary, float dloss, int accumulate)          \
    {                                                                                                               \
        crossentropy_backward<T>(logits, targets, row_statistics, dlogits, rows, vocabulary, dloss, accumulate);   \
    }                                                                                                               \
    SW_KERNEL_REGISTER(crossentropy_backward_##suffix)                                                              \
    extern "C" __global__ void crossentropy_forward_backward_##suffix(                                              \
        const T* logits, const int* targets, float* losses, T* dlogits, int rows, int vocabulary, float dloss,       \
        int accumulate, int staged)                                                                                 \
    {                                                                                                               \
        SW_EXTERN_SHARED(unsigned char, shared);                                                                    \
        crossentropy_forward_backward<T>(logits, targets, losses, dlogits, rows, vocabulary, dloss, accumulate,     \
                                         staged, shared);                                                           \
    }                                                                                                               \
    SW_KERNEL_REGISTER(crossentropy_forward_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_CROSSENTROPY_KERNELS)
