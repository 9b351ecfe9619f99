// overflow.cu — the mixed-precision overflow check fused with unscaling:
//   overflow_check_unscale: *found_inf = 1 if any g[i] is ±inf or NaN (never cleared here: zero it once per step,
//       then run this over every gradient buffer); g[i] = g[i] · inv_scale (rounded to storage), skipped when
//       inv_scale is 1.
// CPU reference: runtime/Shardwise.Training/Precision/OverflowCheck.cs (HasInfOrNaN) and
// GradientClipping.Scale (the multiply).
// Grid: a grid-stride loop; 256 threads suggested, any grid size. Threads that saw a non-finite value all store the
// same 1, so the unordered stores are benign.
#include "shardwise_common.cuh"

template <typename T>
SW_INLINE void overflow_check_unscale(T* g, long long n, float inv_scale, int* found_inf)
{
    bool nonfinite = false;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float v = sw_to_float(g[i]);
        nonfinite |= sw_is_nonfinite(v);
        if (inv_scale != 1.0f) g[i] = sw_from_float<T>(v * inv_scale);
    }
    if (nonfinite) *found_inf = 1;
}

#define SW_OVERFLOW_KERNELS(suffix, T)                                                                      \
    extern "C" __global__ void overflow_check_unscale_##suffix(T* g, long long n, float inv_scale,          \
                                                               int* found_inf)                              \
    {                                                                                                       \
        overflow_check_unscale<T>(g, n, inv_scale, found_inf);                                              \
    }                                                                                                       \
    SW_KERNEL_REGISTER(overflow_check_unscale_##suffix)

SW_FOR_EACH_STORAGE(SW_OVERFLOW_KERNELS)
