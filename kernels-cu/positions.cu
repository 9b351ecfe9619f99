// positions.cu — the position index of every token: positions[b, t] = t for a [batch, sequence] index tensor.
// CPU reference: runtime/Shardwise/Cpu/CpuOps.cs (CpuOps.Positions).
// Indices are int whatever the storage type, so there is one entry point, positions_i32.
// Grid: a grid-stride loop over batch · sequence indices; 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

extern "C" __global__ void positions_i32(int* positions, int batch, int sequence)
{
    long long n = (long long)batch * sequence;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        positions[i] = (int)(i % sequence);
}
SW_KERNEL_REGISTER(positions_i32)
