// lion.cu — one Lion step (DeepSpeed's FusedLion) on fp32 master weights, with the momentum in fp32 and the gradient in
// storage type T (fp32, fp16 or bf16), writing the rounded working copy of the weights the model reads:
//   g = grad · grad_scale                       (grad_scale = 1/loss_scale × clip coefficient, 1 when neither)
//   c = β1·m + (1−β1)·g
//   p = p·(1 − lr·weight_decay) − lr·sign(c)    — decoupled decay; sign(0) = 0, and a NaN c stays NaN (not hidden)
//   m = β2·m + (1−β2)·g
//   params[i] = p rounded to T (skipped when params = nullptr: fp32 training, where master is the parameter arena itself)
// Lion keeps one state tensor (m, DeepSpeed's exp_avg): no second moment, no ε, no bias correction.
// If found_inf is not null and *found_inf != 0 (set by overflow_check_unscale), nothing changes.
// CPU reference: runtime/Shardwise.Training/Optim/LionKernel.cs (the same operation order; the GPU may contract
// multiply-adds into FMAs, so results agree to rounding, not bit for bit; an element whose c rounds across zero may
// then step the other way).
// Grid: as adamw.cu — a grid-stride loop over groups of SW_LION_VECTOR = 4 elements (16-byte master/m loads where every
// pointer is aligned, the tail and unaligned buffers element by element), 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

#define SW_LION_VECTOR 4

struct sw_lion_settings
{
    float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, decay, grad_scale; // decay = 1 − lr·weight_decay
};

// sign(c) with sign(0) = 0, as MathF.Sign; NaN passes through so a broken step shows in the weights.
SW_INLINE float lion_sign(float c) { return c > 0.0f ? 1.0f : c < 0.0f ? -1.0f : c; }

// One element's step: p (master weight) and m updated in place from its stored gradient (unscaled here).
SW_INLINE void lion_element(const sw_lion_settings& s, float& p, float& m, float stored_grad)
{
    float g = stored_grad * s.grad_scale;
    float c = s.beta1 * m + s.one_minus_beta1 * g;
    p = p * s.decay - s.lr * lion_sign(c);
    m = s.beta2 * m + s.one_minus_beta2 * g;
}

// Elements [first, first + count), count ≤ SW_LION_VECTOR. VECTOR: a whole group, every pointer aligned for it.
template <bool VECTOR, typename T>
SW_INLINE void lion_group(const sw_lion_settings& s, float* master, const T* grads, float* m, T* params,
                          long long first, int count)
{
    constexpr int N = SW_LION_VECTOR;
    float p[N], mi[N], g[N];
    sw_load_elements<VECTOR>(master + first, p, count);
    sw_load_elements<VECTOR>(m + first, mi, count);
    sw_load_elements<VECTOR>(grads + first, g, count);
    SW_UNROLL
    for (int k = 0; k < N; k++) lion_element(s, p[k], mi[k], g[k]);
    sw_store_elements<VECTOR>(m + first, mi, count);
    sw_store_elements<VECTOR>(master + first, p, count);
    if (params != nullptr) sw_store_elements<VECTOR>(params + first, p, count);
}

template <typename T>
SW_INLINE void lion_step(float* master, const T* grads, float* m, T* params, long long n, const sw_lion_settings& s,
                         const int* found_inf)
{
    constexpr int N = SW_LION_VECTOR;
    if (found_inf != nullptr && *found_inf != 0) return;
    const bool vector = sw_vector_aligned<N>(master) && sw_vector_aligned<N>(m) && sw_vector_aligned<N>(grads) &&
                        (params == nullptr || sw_vector_aligned<N>(params));
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long thread = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long groups = (n + N - 1) / N, whole = vector ? n / N : 0;
    for (long long i = thread; i < whole; i += stride) lion_group<true>(s, master, grads, m, params, i * N, N);
    // The last, short group, or every group when a pointer is unaligned.
    for (long long i = whole + thread; i < groups; i += stride)
    {
        long long first = i * N;
        int count = n - first < N ? (int)(n - first) : N;
        lion_group<false>(s, master, grads, m, params, first, count);
    }
}

#define SW_LION_KERNELS(suffix, T)                                                                          \
    extern "C" __global__ void lion_step_##suffix(float* master, const T* grads, float* m, T* params,        \
                                                  long long n, float lr, float beta1, float one_minus_beta1, \
                                                  float beta2, float one_minus_beta2, float weight_decay,    \
                                                  float grad_scale, const int* found_inf)                   \
    {                                                                                                       \
        sw_lion_settings settings{lr,    beta1, one_minus_beta1, beta2, one_minus_beta2, 1.0f - lr * weight_decay, \
                                  grad_scale};                                                              \
        lion_step<T>(master, grads, m, params, n, settings, found_inf);                                     \
    }                                                                                                       \
    SW_KERNEL_REGISTER(lion_step_##suffix)

SW_FOR_EACH_STORAGE(SW_LION_KERNELS)
