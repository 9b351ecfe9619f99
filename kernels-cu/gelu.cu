// gelu.cu — GeLU, tanh approximation, with an optional fused bias add, and its gradient.
//   bias_gelu_forward: p = x + bias[column] (rounded to storage, saved to `pre` for the backward pass), y = GeLU(p);
//       with bias = nullptr, y = GeLU(x) and `pre` is unused.
//       GeLU(x) = 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
//   gelu_backward: dx (=|+=) dy · GeLU′(x),
//       GeLU′(x) = 0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 · x²), t = tanh(…) as above.
// CPU reference: runtime/Shardwise/Cpu/GeluKernels.cs (CpuOps.Gelu / GeluBackward); the bias add is the bias of
// LinearKernels.Forward (CpuOps.Linear), which on the GPU comes after a cuBLAS GEMM that has no bias.
// Grid (both): a grid-stride loop over the elements; 256 threads suggested and any grid size, e.g.
// min(ceil(n / 256), 32 · SMs). Elementwise: y may alias x, dx may alias dy.
#include "shardwise_common.cuh"

#define SW_GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define SW_GELU_CUBIC 0.044715f

SW_INLINE float sw_gelu_inner_tanh(float x)
{
    return tanhf(SW_GELU_SQRT_2_OVER_PI * (x + SW_GELU_CUBIC * x * x * x));
}

template <typename T>
SW_INLINE void bias_gelu_forward(const T* x, const T* bias, T* pre, T* y, long long rows, int dim)
{
    long long n = rows * dim;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float v = sw_to_float(x[i]);
        if (bias != nullptr)
        {
            T stored = sw_from_float<T>(v + sw_to_float(bias[i % dim]));
            if (pre != nullptr) pre[i] = stored;
            v = sw_to_float(stored);
        }
        y[i] = sw_from_float<T>(0.5f * v * (1.0f + sw_gelu_inner_tanh(v)));
    }
}

template <typename T>
SW_INLINE void gelu_backward(const T* x, const T* dy, T* dx, long long n, int accumulate)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float v = sw_to_float(x[i]);
        float t = sw_gelu_inner_tanh(v);
        float derivative = 0.5f * (1.0f + t) +
                           0.5f * v * (1.0f - t * t) * SW_GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * SW_GELU_CUBIC * v * v);
        float gradient = sw_to_float(dy[i]) * derivative;
        if (accumulate) gradient += sw_to_float(dx[i]);
        dx[i] = sw_from_float<T>(gradient);
    }
}

#define SW_GELU_KERNELS(suffix, T)                                                                          \
    extern "C" __global__ void bias_gelu_forward_##suffix(const T* x, const T* bias, T* pre, T* y,          \
                                                          long long rows, int dim)                          \
    {                                                                                                       \
        bias_gelu_forward<T>(x, bias, pre, y, rows, dim);                                                   \
    }                                                                                                       \
    SW_KERNEL_REGISTER(bias_gelu_forward_##suffix)                                                          \
    extern "C" __global__ void gelu_backward_##suffix(const T* x, const T* dy, T* dx, long long n,          \
                                                      int accumulate)                                       \
    {                                                                                                       \
        gelu_backward<T>(x, dy, dx, n, accumulate);                                                         \
    }                                                                                                       \
    SW_KERNEL_REGISTER(gelu_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_GELU_KERNELS)
