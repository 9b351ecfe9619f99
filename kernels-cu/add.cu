// add.cu — the elementwise sum of a residual connection and its gradient.
//   add:          y = a + b
//   add_backward: dx (=|+=) dy — the gradient of one operand of an add; with accumulate = 0 it is a plain copy.
// CPU reference: runtime/Shardwise/Cpu/AddKernels.cs (CpuOps.Add / AddBackward).
// Grid (both): a grid-stride loop over the elements; 256 threads suggested and any grid size, e.g.
// min(ceil(n / 256), 32 · SMs). Elementwise: y may alias a or b, dx may alias dy.
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void add(const T* a, const T* b, T* y, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = sw_from_float<T>(sw_to_float(a[i]) + sw_to_float(b[i]));
}

template <typename T>
SW_INLINE void add_backward(const T* dy, T* dx, long long n, int accumulate)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        if (accumulate) dx[i] = sw_from_float<T>(sw_to_float(dx[i]) + sw_to_float(dy[i]));
        else dx[i] = dy[i];
    }
}

#define SW_ADD_KERNELS(suffix, T)                                                                           \
    extern "C" __global__ void add_##suffix(const T* a, const T* b, T* y, long long n)                      \
    {                                                                                                       \
        add<T>(a, b, y, n);                                                                                 \
    }                                                                                                       \
    SW_KERNEL_REGISTER(add_##suffix)                                                                        \
    extern "C" __global__ void add_backward_##suffix(const T* dy, T* dx, long long n, int accumulate)       \
    {                                                                                                       \
        add_backward<T>(dy, dx, n, accumulate);                                                             \
    }                                                                                                       \
    SW_KERNEL_REGISTER(add_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_ADD_KERNELS)
