// embedding.cu — token-embedding lookup and its gradient.
//   embedding_forward:  out[r, :] = table[ids[r], :]
//   embedding_backward: dTable[v, :] += Σ dOut[r, :] over the rows r with ids[r] = v
// CPU reference: runtime/Shardwise/Cpu/EmbeddingKernels.cs (CpuOps.Embedding / EmbeddingBackward).
//
// The backward pass uses no atomics and is deterministic: the caller groups the rows by token id on the host, where
// the ids are anyway before they are uploaded (llm.c's wte_backward does the same). `order` lists the row indices
// sorted by id, stable, so rows with the same id keep their order; segment s covers order[starts[s] .. starts[s+1])
// and belongs to id segment_ids[s]. Each block owns one segment, i.e. one table row, and adds its rows in that
// order, in fp32, so the result does not depend on scheduling and no two blocks touch the same table row.
#include "shardwise_common.cuh"

// Grid: gridDim.x = rows (one block per row); any blockDim.x (128 suggested); threads stride over dim.
// An id outside [0, vocabulary) yields a zero row (the CPU reference throws; ids are validated on upload).
template <typename T>
SW_INLINE void embedding_forward(const int* ids, const T* table, T* out, int rows, int dim, int vocabulary)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    int id = ids[row];
    bool valid = (unsigned)id < (unsigned)vocabulary;
    const T* source = table + (long long)(valid ? id : 0) * dim;
    T* destination = out + (long long)row * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        destination[j] = valid ? source[j] : sw_from_float<T>(0.0f);
}

// Grid: gridDim.x = segments (distinct ids); any blockDim.x (128 suggested); threads stride over dim.
template <typename T>
SW_INLINE void embedding_backward(const int* order, const int* segment_starts, const int* segment_ids,
                                  int segments, const T* d_out, T* d_table, int dim)
{
    int segment = blockIdx.x;
    if (segment >= segments) return;
    int begin = segment_starts[segment], end = segment_starts[segment + 1];
    T* destination = d_table + (long long)segment_ids[segment] * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
    {
        float sum = sw_to_float(destination[j]);
        for (int k = begin; k < end; k++) sum += sw_to_float(d_out[(long long)order[k] * dim + j]);
        destination[j] = sw_from_float<T>(sum);
    }
}

#define SW_EMBEDDING_KERNELS(suffix, T)                                                                       \
    extern "C" __global__ void embedding_forward_##suffix(const int* ids, const T* table, T* out, int rows,    \
                                                          int dim, int vocabulary)                            \
    {                                                                                                         \
        embedding_forward<T>(ids, table, out, rows, dim, vocabulary);                                         \
    }                                                                                                         \
    SW_KERNEL_REGISTER(embedding_forward_##suffix)                                                            \
    extern "C" __global__ void embedding_backward_##suffix(const int* order, const int* segment_starts,      \
                                                           const int* segment_ids, int segments,             \
                                                           const T* d_out, T* d_table, int dim)              \
    {                                                                                                         \
        embedding_backward<T>(order, segment_starts, segment_ids, segments, d_out, d_table, dim);            \
    }                                                                                                         \
    SW_KERNEL_REGISTER(embedding_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_EMBEDDING_KERNELS)
