// scale.cu — a residual branch times a constant: progressive layer drop scales a kept layer's branch output, and its
// gradient, by 1/keep-probability.
//   scale: y = factor · x (rounded to storage); y may alias x.
// CPU reference: runtime/Shardwise/Cpu/ScaleKernels.cs (CpuOps.Scale).
// Grid: a grid-stride loop over the elements; 256 threads suggested and any grid size, e.g. min(ceil(n / 256), 32 · SMs).
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void scale(const T* x, T* y, float factor, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = sw_from_float<T>(factor * sw_to_float(x[i]));
}

#define SW_SCALE_KERNELS(suffix, T)                                                                         \
    extern "C" __global__ void scale_##suffix(const T* x, T* y, float factor, long long n)                  \
    {                                                                                                       \
        scale<T>(x, y, factor, n);                                                                          \
    }                                                                                                       \
    SW_KERNEL_REGISTER(scale_##suffix)

SW_FOR_EACH_STORAGE(SW_SCALE_KERNELS)
