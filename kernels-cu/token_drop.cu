// token_drop.cu — random-LTD's token gather and scatter: a layer runs on each sample's kept tokens packed at the
// front, the tokens it skips keep their input.
//   gather_tokens:           y[b, j, :] = x[b, kept[b, j], :]
//   gather_tokens_backward:  dx[b, kept[b, j], :] (=|+=) dy[b, j, :]; overwriting (accumulate = 0) zeroes the rows not kept
//   scatter_tokens:          y[b, t, :] = layer[b, j, :] where t = kept[b, j], else x[b, t, :]
//   scatter_tokens_backward: dx[b, t, :] (=|+=) dy[b, t, :] for the tokens not kept; overwriting zeroes the kept rows
// kept is [batch, kept_count], each sample's row strictly increasing within [0, sequence) (CudaOps checks it on the
// host before launching), so "is token t kept, and where" is a binary search of that row. x, y, dx and dy rows are
// [·, dim]; every output row is written by one block and read from one input row, so no two blocks touch the same
// element and no atomics are needed. The sums of the accumulating backward run in fp32.
// CPU reference: runtime/Shardwise/Cpu/TokenDropKernels.cs (CpuOps.GatherTokens / ScatterTokens and their backward).
// Grid: gridDim.x = batch · kept_count (gather_tokens) or batch · sequence (the other three): one block per output
// row; any blockDim.x (128 suggested); threads stride over dim.
#include "shardwise_common.cuh"

// The position j of `token` in a strictly increasing row of `count` kept indices, or −1 when it is not kept. Every
// thread of a block searches the same row: a few cached loads, cheaper than a shared-memory broadcast and its barrier.
SW_INLINE int token_drop_position(const int* kept_row, int count, int token)
{
    int low = 0, high = count - 1;
    while (low <= high)
    {
        int middle = low + (high - low) / 2;
        int value = kept_row[middle];
        if (value == token) return middle;
        if (value < token) low = middle + 1;
        else high = middle - 1;
    }
    return -1;
}

template <typename T>
SW_INLINE void gather_tokens(const T* x, const int* kept, T* y, int batch, int sequence, int kept_count, int dim)
{
    long long row = blockIdx.x;  // (b, j)
    if (row >= (long long)batch * kept_count) return;
    long long b = row / kept_count;
    const T* source = x + (b * sequence + kept[row]) * dim;
    T* destination = y + row * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) destination[i] = source[i];
}

template <typename T>
SW_INLINE void gather_tokens_backward(const T* dy, const int* kept, T* dx, int batch, int sequence, int kept_count,
                                      int dim, int accumulate)
{
    long long row = blockIdx.x;  // (b, t) of dx
    if (row >= (long long)batch * sequence) return;
    long long b = row / sequence;
    int t = (int)(row - b * sequence);
    int j = token_drop_position(kept + b * kept_count, kept_count, t);
    if (j < 0 && accumulate) return;  // nothing flows to a dropped token
    T* destination = dx + row * dim;
    if (j < 0)
    {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) destination[i] = sw_from_float<T>(0.0f);
        return;
    }
    const T* source = dy + (b * kept_count + j) * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        destination[i] = accumulate ? sw_from_float<T>(sw_to_float(destination[i]) + sw_to_float(source[i])) : source[i];
}

template <typename T>
SW_INLINE void scatter_tokens(const T* x, const T* layer, const int* kept, T* y, int batch, int sequence,
                              int kept_count, int dim)
{
    long long row = blockIdx.x;  // (b, t) of y
    if (row >= (long long)batch * sequence) return;
    long long b = row / sequence;
    int j = token_drop_position(kept + b * kept_count, kept_count, (int)(row - b * sequence));
    const T* source = j >= 0 ? layer + (b * kept_count + j) * dim : x + row * dim;
    T* destination = y + row * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) destination[i] = source[i];
}

template <typename T>
SW_INLINE void scatter_tokens_backward(const T* dy, const int* kept, T* dx, int batch, int sequence, int kept_count,
                                       int dim, int accumulate)
{
    long long row = blockIdx.x;  // (b, t) of dx
    if (row >= (long long)batch * sequence) return;
    long long b = row / sequence;
    bool is_kept = token_drop_position(kept + b * kept_count, kept_count, (int)(row - b * sequence)) >= 0;
    if (is_kept && accumulate) return;  // a kept token's input reaches y only through the layer
    const T* source = dy + row * dim;
    T* destination = dx + row * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
    {
        if (is_kept) destination[i] = sw_from_float<T>(0.0f);
        else if (accumulate) destination[i] = sw_from_float<T>(sw_to_float(destination[i]) + sw_to_float(source[i]));
        else destination[i] = source[i];
    }
}

#define SW_TOKEN_DROP_KERNELS(suffix, T)                                                                           \
    extern "C" __global__ void gather_tokens_##suffix(const T* x, const int* kept, T* y, int batch, int sequence,  \
                                                      int kept_count, int dim)                                     \
    {                                                                                                              \
        gather_tokens<T>(x, kept, y, batch, sequence, kept_count, dim);                                            \
    }                                                                                                              \
    SW_KERNEL_REGISTER(gather_tokens_##suffix)                                                                     \
    extern "C" __global__ void gather_tokens_backward_##suffix(const T* dy, const int* kept, T* dx, int batch,     \
                                                               int sequence, int kept_count, int dim,              \
                                                               int accumulate)                                     \
    {                                                                                                              \
        gather_tokens_backward<T>(dy, kept, dx, batch, sequence, kept_count, dim, accumulate);                     \
    }                                                                                                              \
    SW_KERNEL_REGISTER(gather_tokens_backward_##suffix)                                                            \
    extern "C" __global__ void scatter_tokens_##suffix(const T* x, const T* layer, const int* kept, T* y,          \
                                                       int batch, int sequence, int kept_count, int dim)           \
    {                                                                                                              \
        scatter_tokens<T>(x, layer, kept, y, batch, sequence, kept_count, dim);                                    \
    }                                                                                                              \
    SW_KERNEL_REGISTER(scatter_tokens_##suffix)                                                                    \
    extern "C" __global__ void scatter_tokens_backward_##suffix(const T* dy, const int* kept, T* dx, int batch,    \
                                                                int sequence, int kept_count, int dim,             \
                                                                int accumulate)                                    \
    {                                                                                                              \
        scatter_tokens_backward<T>(dy, kept, dx, batch, sequence, kept_count, dim, accumulate);                    \
    }                                                                                                              \
    SW_KERNEL_REGISTER(scatter_tokens_backward_##suffix)

SW_FOR_EACH_STORAGE(SW_TOKEN_DROP_KERNELS)
