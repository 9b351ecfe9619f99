// probe_flash_sparsity.cu — exposes sw_flash_sparsity::groups (kernels-cu/flash_attention_common.cuh), which the
// block-sparse flash kernels call inside their tile loops, so a test can compare its bits with a per-token count
// (built into the emulation library only, never for the GPU; names start with probe_).
#include "flash_attention_common.cuh"

// out[i] = groups(first_row, last_row, k0, keys_are_rows) of head h for the i-th of n requests, 4 ints each.
extern "C" __global__ void probe_flash_sparsity_groups(const unsigned char* cells, int block, int seq, int h,
                                                       const int* requests, int n, unsigned* out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    sw_flash_sparsity sparsity;
    sparsity.tiles = nullptr;
    sparsity.cells = cells;
    sparsity.block = block;
    sparsity.blocks = seq / block;
    sparsity.tile_count = (seq + SW_FLASH_TILE - 1) / SW_FLASH_TILE;
    sparsity.h = h;
    sparsity.seq = seq;
    const int* r = requests + 4 * i;
    out[i] = sparsity.groups(r[0], r[1], r[2], r[3] != 0);
}
SW_KERNEL_REGISTER(probe_flash_sparsity_groups)
