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
// Grid: a grid-stride loop over the n elements; 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void adamw_step(float* master, const T* grads, float* m, float* v, T* params, long long n, float lr,
                          float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float eps,
                          float weight_decay, int adam_w_mode, float inv_bc1, float inv_bc2, float grad_scale,
                          const int* found_inf)
{
    if (found_inf != nullptr && *found_inf != 0) return;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float p = master[i];
        float g = sw_to_float(grads[i]) * grad_scale;
        if (!adam_w_mode) g += weight_decay * p;
        float mi = beta1 * m[i] + one_minus_beta1 * g;
        float vi = beta2 * v[i] + one_minus_beta2 * g * g;
        float update = (mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps);
        if (adam_w_mode) update += weight_decay * p;
        p -= lr * update;
        m[i] = mi;
        v[i] = vi;
        master[i] = p;
        if (params != nullptr) params[i] = sw_from_float<T>(p);
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
        adamw_step<T>(master, grads, m, v, params, n, lr, beta1, one_minus_beta1, beta2, one_minus_beta2,   \
                      eps, weight_decay, adam_w_mode, inv_bc1, inv_bc2, grad_scale, found_inf);             \
    }                                                                                                       \
    SW_KERNEL_REGISTER(adamw_step_##suffix)

SW_FOR_EACH_STORAGE(SW_ADAMW_KERNELS)
