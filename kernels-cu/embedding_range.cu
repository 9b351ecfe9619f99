// embedding_range.cu — the vocabulary-parallel embedding: this rank holds table rows [first, first + count).
//   embedding_range_forward:  out[r, :] = table[ids[r] − first, :] when ids[r] is in the range, else zero (the
//       outputs of all ranks are summed afterwards, so every token gets its row exactly once)
//   embedding_range_backward: dTable[v − first, :] += Σ dOut[r, :] over the rows r with ids[r] = v, for the ids v in
//       the range; the others are skipped
// CPU reference: runtime/Shardwise/Cpu/VocabularyParallelKernels.cs (EmbeddingForward / EmbeddingBackward;
// CpuOps.EmbeddingRange / EmbeddingRangeBackward).
// The backward pass is deterministic and uses no atomics, exactly like embedding_backward (embedding.cu): it takes
// the same host-built grouping of the rows by id (`order`, `segment_starts`, `segment_ids` over all rows), and a
// block whose id lies outside this rank's range returns at once.
#include "shardwise_common.cuh"

// Grid: gridDim.x = rows (one block per row); any blockDim.x (128 suggested); threads stride over dim.
template <typename T>
SW_INLINE void embedding_range_forward(const int* ids, const T* table, T* out, int rows, int dim, int first,
                                       int count)
{
    int row = blockIdx.x;
    if (row >= rows) return;
    int local = ids[row] - first;
    bool mine = (unsigned)local < (unsigned)count;
    const T* source = table + (long long)(mine ? local : 0) * dim;
    T* destination = out + (long long)row * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        destination[j] = mine ? source[j] : sw_from_float<T>(0.0f);
}

// Grid: gridDim.x = segments (distinct ids over all rows); any blockDim.x (128 suggested); threads stride over dim.
template <typename T>
SW_INLINE void embedding_range_backward(const int* order, const int* segment_starts, const int* segment_ids,
                                        int segments, const T* d_out, T* d_table, int dim, int first, int count)
{
    int segment = blockIdx.x;
    if (segment >= segments) return;
    int local = segment_ids[segment] - first;
    if ((unsigned)local >= (unsigned)count) return;  // another rank's row
    int begin = segment_starts[segment], end = segment_starts[segment + 1];
    T* destination = d_table + (long long)local * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
    {
        float sum = sw_to_float(destination[j]);
        for (int k = begin; k < end; k++) sum += sw_to_float(d_out[(long long)order[k] * dim + j]);
        destination[j] = sw_from_float<T>(sum);
    }
}

#define SW_EMBEDDING_RANGE_KERNELS(suffix, T)                                                                 \
    extern "C" __global__ void embedding_range_forward_##suffix(const int* ids, const T* table, T* out,        \
                                                                int rows, int dim, int first, int count)       \
    {                                                                                                         \
        embedding_range_forward<T>(ids, table, out, rows, dim, first, count);                                 \
    }                                                                                                         \
    SW_KERNEL_REGISTER(embedding_range_forward_##suffix)                                                      \
    extern "C" __global__ void embedding_range_backward_##suffix(                                             \
        const int* order, const int* segment_starts, const int* segment_ids, int segments, const T* d_out,    \
        T* d_table, int dim, int first, int count)                                                            \
    {                                                                                                         \
        embedding_range_backward<T>(order, segment_starts, segment_ids, segments, d_out, d_table, dim, first,  \
                                    count);                                                                   \
    }                                                                                                         \
    SW_KERNEL_REGISTER(embedding_range_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_EMBEDDING_RANGE_KERNELS)
