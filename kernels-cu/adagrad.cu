// adagrad.cu — one Adagrad step (DeepSpeed's CPU Adagrad, torch.optim.Adagrad without lr_decay) on fp32 master
// weights, with the accumulator in fp32 (kept where Adam keeps exp_avg_sq, DeepSpeed's name for it too) and the gradient
// in storage type T (fp32, fp16 or bf16), writing the rounded working copy of the weights the model reads:
//   g = grad · grad_scale + weight_decay · p     (grad_scale = 1/loss_scale × clip coefficient; L2 decay in the gradient)
//   s = s + g²
//   p = p − (lr · g) / (√s + ε)
//   params[i] = p rounded to T (skipped when params = nullptr: fp32 training, where master is the parameter arena itself)
// If found_inf is not null and *found_inf != 0 (set by overflow_check_unscale), nothing changes.
// CPU reference: runtime/Shardwise.Training/Optim/AdagradKernel.cs (the same operation order; the GPU may contract
// multiply-adds into FMAs, so results agree to rounding, not bit for bit).
// Grid: as adamw.cu — a grid-stride loop over groups of SW_ADAGRAD_VECTOR = 4 elements (16-byte master/s where every
// pointer is aligned, the tail and unaligned buffers element by element), 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

#define SW_ADAGRAD_VECTOR 4

struct sw_adagrad_settings
{
    float lr, eps, weight_decay, grad_scale;
};

// One element's step: p (master weight) and s (the sum of squared gradients) updated in place.
SW_INLINE void adagrad_element(const sw_adagrad_settings& k, float& p, float& s, float stored_grad)
{
    float g = stored_grad * k.grad_scale + k.weight_decay * p;
    s = s + g * g;
    p -= k.lr * g / (sqrtf(s) + k.eps);
}

// Elements [first, first + count), count ≤ SW_ADAGRAD_VECTOR. VECTOR: a whole group, every pointer aligned for it.
template <bool VECTOR, typename T>
SW_INLINE void adagrad_group(const sw_adagrad_settings& k, float* master, const T* grads, float* s, T* params,
                             long long first, int count)
{
    constexpr int N = SW_ADAGRAD_VECTOR;
    float p[N], si[N], g[N];
    sw_load_elements<VECTOR>(master + first, p, count);
    sw_load_elements<VECTOR>(s + first, si, count);
    sw_load_elements<VECTOR>(grads + first, g, count);
    SW_UNROLL
    for (int i = 0; i < N; i++) adagrad_element(k, p[i], si[i], g[i]);
    sw_store_elements<VECTOR>(s + first, si, count);
    sw_store_elements<VECTOR>(master + first, p, count);
    if (params != nullptr) sw_store_elements<VECTOR>(params + first, p, count);
}

template <typename T>
SW_INLINE void adagrad_step(float* master, const T* grads, float* s, T* params, long long n,
                            const sw_adagrad_settings& k, const int* found_inf)
{
    constexpr int N = SW_ADAGRAD_VECTOR;
    if (found_inf != nullptr && *found_inf != 0) return;
    const bool vector = sw_vector_aligned<N>(master) && sw_vector_aligned<N>(s) && sw_vector_aligned<N>(grads) &&
                        (params == nullptr || sw_vector_aligned<N>(params));
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long thread = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long groups = (n + N - 1) / N, whole = vector ? n / N : 0;
    for (long long i = thread; i < whole; i += stride) adagrad_group<true>(k, master, grads, s, params, i * N, N);
    // The last, short group, or every group when a pointer is unaligned.
    for (long long i = whole + thread; i < groups; i += stride)
    {
        long long first = i * N;
        int count = n - first < N ? (int)(n - first) : N;
        adagrad_group<false>(k, master, grads, s, params, first, count);
    }
}

#define SW_ADAGRAD_KERNELS(suffix, T)                                                                       \
    extern "C" __global__ void adagrad_step_##suffix(float* master, const T* grads, float* s, T* params,     \
                                                     long long n, float lr, float eps, float weight_decay,  \
                                                     float grad_scale, const int* found_inf)                \
    {                                                                                                       \
        sw_adagrad_settings settings{lr, eps, weight_decay, grad_scale};                                    \
        adagrad_step<T>(master, grads, s, params, n, settings, found_inf);                                  \
    }                                                                                                       \
    SW_KERNEL_REGISTER(adagrad_step_##suffix)

SW_FOR_EACH_STORAGE(SW_ADAGRAD_KERNELS)
