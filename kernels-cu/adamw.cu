// adamw.cu — one Adam/AdamW step on fp32 master weights, with the optimizer state in fp32 and the gradient in storage
// type T (fp32, fp16 or bf16), writing the rounded working copy of the weights the model reads:
//   g = grad · grad_scale                       (grad_scale = 1/loss_scale × clip coefficient, 1 when neither)
//   (adam_w_mode = 0, classic L2)  g += weight_decay · p
//   m = β1·m + (1−β1)·g ;  v = β2·v + (1−β2)·g²
//   update = (m · inv_bc1) / (√(v · inv_bc2) + ε)      — ε outside the root; inv_bcN = 1/(1 − βN^step), 1 without
//                                                        bias correction
//   (adam_w_mode = 1, AdamW)       update += weight_decay · p   — decoupled decay, on the pre-update p
//   p -= lr · update ;  params[i] = p rounded to T (skipped when params = nullptr: fp32 training, where master is the
//   parameter arena itself)
// If found_inf is not null and *found_inf != 0 (set by overflow_check_unscale), nothing changes: the step is
// skipped on the device, without a round trip to the host.
// CPU reference: runtime/Shardwise.Training/Optim/AdamKernel.cs (the same operation order; the GPU
// may contract multiply-adds into FMAs, so results agree to rounding, not bit for bit).
// Grid: a grid-stride loop over groups of SW_ADAMW_VECTOR = 4 elements, 256 threads suggested, any grid size
// (CudaOps: ceil(n / 4 / 256) blocks, capped). A group moves master, m and v as one 16-byte load and store each and
// the gradient and working copy as one 4-element load/store (8 bytes for fp16/bf16, 16 for fp32); the last n mod 4
// elements, and all of them when a pointer is not aligned for its vector, go element by element through the same
// arithmetic (bitwise the same results).
#include "shardwise_common.cuh"

#define SW_ADAMW_VECTOR 4

struct sw_adamw_settings
{
    float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, inv_bc1, inv_bc2, grad_scale;
    int adam_w_mode;
};

// One element's step: p (master weight), m, v updated in place from its stored gradient (unscaled here).
SW_INLINE void adamw_element(const sw_adamw_settings& s, float& p, float& m, float& v, float stored_grad)
{
    float g = stored_grad * s.grad_scale;
    if (!s.adam_w_mode) g += s.weight_decay * p;
    m = s.beta1 * m + s.one_minus_beta1 * g;
    v = s.beta2 * v + s.one_minus_beta2 * g * g;
    float update = (m * s.inv_bc1) / (sqrtf(v * s.inv_bc2) + s.eps);
    if (s.adam_w_mode) update += s.weight_decay * p;
    p -= s.lr * update;
}

// Elements [first, first + count), count ≤ SW_ADAMW_VECTOR. VECTOR: a whole group, every pointer aligned for it.
template <bool VECTOR, typename T>
SW_INLINE void adamw_group(const sw_adamw_settings& s, float* master, const T* grads, float* m, float* v, T* params,
                           long long first, int count)
{
    constexpr int N = SW_ADAMW_VECTOR;
    float p[N], mi[N], vi[N], g[N];
    sw_load_elements<VECTOR>(master + first, p, count);
    sw_load_elements<VECTOR>(m + first, mi, count);
    sw_load_elements<VECTOR>(v + first, vi, count);
    sw_load_elements<VECTOR>(grads + first, g, count);
    SW_UNROLL
    for (int k = 0; k < N; k++) adamw_element(s, p[k], mi[k], vi[k], g[k]);
    sw_store_elements<VECTOR>(m + first, mi, count);
    sw_store_elements<VECTOR>(v + first, vi, count);
    sw_store_elements<VECTOR>(master + first, p, count);
    if (params != nullptr) sw_store_elements<VECTOR>(params + first, p, count);
}

template <typename T>
SW_INLINE void adamw_step(float* master, const T* grads, float* m, float* v, T* params, long long n,
                          const sw_adamw_settings& s, const int* found_inf)
{
    constexpr int N = SW_ADAMW_VECTOR;
    if (found_inf != nullptr && *found_inf != 0) return;
    // The buffers are separate allocations or arena slices that may start anywhere: vectors only when all allow it.
    const bool vector = sw_vector_aligned<N>(master) && sw_vector_aligned<N>(m) && sw_vector_aligned<N>(v) &&
                        sw_vector_aligned<N>(grads) && (params == nullptr || sw_vector_aligned<N>(params));
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long thread = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long groups = (n + N - 1) / N, whole = vector ? n / N : 0;
    for (long long i = thread; i < whole; i += stride) adamw_group<true>(s, master, grads, m, v, params, i * N, N);
    // The last, short group, or every group when a pointer is unaligned.
    for (long long i = whole + thread; i < groups; i += stride)
    {
        long long first = i * N;
        int count = n - first < N ? (int)(n - first) : N;
        adamw_group<false>(s, master, grads, m, v, params, first, count);
    }
}

#define SW_ADAMW_KERNELS(suffix, T)                                                                         \
    extern "C" __global__ void adamw_step_##suffix(float* master, const T* grads, float* m, float* v,        \
                                                   T* params, long long n, float lr, float beta1,           \
                                                   float one_minus_beta1, float beta2,                      \
                                                   float one_minus_beta2, float eps, float weight_decay,    \
                                                   int adam_w_mode, float inv_bc1, float inv_bc2,           \
                                                   float grad_scale, const int* found_inf)                  \
    {                                                                                                       \
        sw_adamw_settings settings{lr,           beta1,   one_minus_beta1, beta2,      one_minus_beta2, eps,  \
                                   weight_decay, inv_bc1, inv_bc2,         grad_scale, adam_w_mode};        \
        adamw_step<T>(master, grads, m, v, params, n, settings, found_inf);                                 \
    }                                                                                                       \
    SW_KERNEL_REGISTER(adamw_step_##suffix)

SW_FOR_EACH_STORAGE(SW_ADAMW_KERNELS)
