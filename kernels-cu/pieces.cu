// pieces.cu — ZeRO-2's rank-major staging of one parameter slot on the device (docs/distributed.md). A slot of
// `length` elements is cut into pieces of `chunk` elements, piece r belonging to rank r (the last one may be short);
// a bucket holds one segment per rank, `stride` elements apart, and the caller offsets `staging` to the slot's place
// in rank 0's segment:
//   stage_pieces:   staging[r·stride + j] = slot[r·chunk + j]   for every element r·chunk + j < length
//   unstage_pieces: slot[r·chunk + j] = staging[r·stride + j]    (the inverse)
// Staging elements past a short last piece are not written: no rank ever reads them back. Copies are bit for bit.
// CPU reference: runtime/Shardwise.Training/Zero/SlotSharding.cs (ReduceSlot's and GatherSlots' copies).
// Grid: a grid-stride loop over the slot's elements; 256 threads suggested, any grid size.
#include "shardwise_common.cuh"

// Where element i of the slot sits in the staging: piece i / chunk, at i mod chunk within its rank's segment.
SW_INLINE long long sw_piece_position(long long i, long long chunk, long long stride)
{
    long long rank = i / chunk;
    return rank * stride + (i - rank * chunk);
}

template <typename T>
SW_INLINE void stage_pieces(const T* slot, long long length, long long chunk, T* staging, long long stride)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < length; i += (long long)gridDim.x * blockDim.x)
        staging[sw_piece_position(i, chunk, stride)] = slot[i];
}

template <typename T>
SW_INLINE void unstage_pieces(const T* staging, long long stride, long long chunk, long long length, T* slot)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < length; i += (long long)gridDim.x * blockDim.x)
        slot[i] = staging[sw_piece_position(i, chunk, stride)];
}

#define SW_PIECES_KERNELS(suffix, T)                                                                        \
    extern "C" __global__ void stage_pieces_##suffix(const T* slot, long long length, long long chunk,      \
                                                     T* staging, long long stride)                          \
    {                                                                                                       \
        stage_pieces<T>(slot, length, chunk, staging, stride);                                              \
    }                                                                                                       \
    SW_KERNEL_REGISTER(stage_pieces_##suffix)                                                               \
    extern "C" __global__ void unstage_pieces_##suffix(const T* staging, long long stride, long long chunk,  \
                                                       long long length, T* slot)                           \
    {                                                                                                       \
        unstage_pieces<T>(staging, stride, chunk, length, slot);                                            \
    }                                                                                                       \
    SW_KERNEL_REGISTER(unstage_pieces_##suffix)

SW_FOR_EACH_STORAGE(SW_PIECES_KERNELS)
