// selftest.cu — kernels that test the SIMT emulation itself (built into the emulation library only, never for the
// GPU): barrier ordering, every warp primitive, dynamic shared memory, multi-dimensional indices, atomics, and a
// deadlock the scheduler must report. Expected results are written out in tests/Shardwise.Kernels.Tests.
#include "shardwise_common.cuh"

// out[t] = what thread t reads from its right neighbour's shared slot (salt + t + 1, wrapping), with a barrier
// between the writes and the reads (`synchronise` = 1) or without one: a race that one scheduler order exposes.
extern "C" __global__ void selftest_neighbour(int* out, int salt, int synchronise)
{
    __shared__ int slots[1024];
    unsigned t = threadIdx.x;
    slots[t] = salt + (int)t;
    if (synchronise) __syncthreads();
    out[blockIdx.x * blockDim.x + t] = slots[(t + 1) % blockDim.x];
}
SW_KERNEL_REGISTER(selftest_neighbour)

// For every thread: 8 results of warp primitives on value = 100·warp + lane (see the C# test for each column).
extern "C" __global__ void selftest_warp_ops(int* out)
{
    unsigned t = threadIdx.x, lane = t % 32;
    int value = (int)(100 * (t / 32) + lane);
    int* o = out + 8 * t;
    o[0] = __shfl_xor_sync(SW_FULL_MASK, value, 5);
    o[1] = __shfl_down_sync(SW_FULL_MASK, value, 3);
    o[2] = __shfl_up_sync(SW_FULL_MASK, value, 2);
    o[3] = __shfl_sync(SW_FULL_MASK, value, 7);
    o[4] = __shfl_down_sync(SW_FULL_MASK, value, 3, 8);
    o[5] = (int)__ballot_sync(SW_FULL_MASK, lane % 3 == 0);
    o[6] = (int)sw_warp_sum((float)value);
    __syncwarp();
    o[7] = __any_sync(SW_FULL_MASK, lane == 31) + 2 * __all_sync(SW_FULL_MASK, lane < 31);
}
SW_KERNEL_REGISTER(selftest_warp_ops)

// Lanes 0…15 shuffle among themselves under a half mask while lanes 16…31 do something else.
extern "C" __global__ void selftest_partial_mask(int* out)
{
    unsigned lane = threadIdx.x % 32;
    if (lane < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, (int)lane, 1);
    else out[threadIdx.x] = -1;
}
SW_KERNEL_REGISTER(selftest_partial_mask)

// out[t] = 2 · (blockDim.x − 1 − t) through dynamic shared memory, then the block's sum from sw_block_sum.
extern "C" __global__ void selftest_dynamic_shared(float* out, float* sums)
{
    SW_EXTERN_SHARED(float, buffer);
    unsigned t = threadIdx.x;
    buffer[t] = 2.0f * t;
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = buffer[blockDim.x - 1 - t];
    float total = sw_block_sum((float)t);
    float again = sw_block_sum(1.0f);
    if (t == 0) sums[2 * blockIdx.x] = total, sums[2 * blockIdx.x + 1] = again;
}
SW_KERNEL_REGISTER(selftest_dynamic_shared)

// out[linear thread of the whole grid] = the thread's six indices packed in decimal digits.
extern "C" __global__ void selftest_indices(long long* out, int* counter)
{
    unsigned long long block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * (unsigned long long)blockIdx.z);
    unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    long long code = blockIdx.x * 100000LL + blockIdx.y * 10000LL + blockIdx.z * 1000LL + threadIdx.x * 100LL +
                     threadIdx.y * 10LL + threadIdx.z;
    out[block * (blockDim.x * blockDim.y * blockDim.z) + thread] = code;
    atomicAdd(counter, 1);
}
SW_KERNEL_REGISTER(selftest_indices)

// Lane 0 waits at __syncthreads while lanes 1…31 wait for lane 0 in a shuffle: the scheduler must report it.
extern "C" __global__ void selftest_deadlock(int* out)
{
    if (threadIdx.x == 0) __syncthreads();
    else out[threadIdx.x] = __shfl_xor_sync(SW_FULL_MASK, (int)threadIdx.x, 1);
}
SW_KERNEL_REGISTER(selftest_deadlock)
