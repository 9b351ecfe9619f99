// crossentropy_rows.cuh — how the cross-entropy kernels (crossentropy.cu, crossentropy_parallel.cu) walk one row of
// logits with a block: 16-byte vector loads and stores over the row's 16-byte-aligned body, single elements for
// the head before it and the tail after it, and the per-row statistics pass (online max and Σ exp) built on them.
// CPU reference: none of its own; checked through the kernels that use it (CrossEntropyKernelTests,
// CrossEntropyParallelKernelTests), which cover misaligned rows and vocabularies that are not multiples of 8.
//
// Why vectors: with one 2-byte element per load, a warp's load instruction moved 64 bytes and the passes ran at a
// fraction of the memory bandwidth; one 16-byte load per thread moves 512 bytes per instruction, and each thread
// issues SW_CE_VECTORS of them before using any, so enough bytes are in flight to cover the memory latency. (The
// forward at GPT-2's shape on the H200, both with expf and 512 threads: 1.15 ms with one element per load, 0.63 ms
// with these loads.)
#pragma once
#include "shardwise_common.cuh"

#ifndef SW_CE_VECTORS
#define SW_CE_VECTORS 4  // 16-byte loads one thread issues before it uses the first
#endif

// e^x for the per-element exponentials, as 2^(x · log2 e): on the GPU a multiply and one ex2.approx.ftz (about 2 ulp,
// subnormal results flushed to 0) instead of expf's range reduction of about seven instructions. With expf the
// forward was bound by instructions: 0.49 ms against 0.38 ms with ex2 at GPT-2's shape on the H200, 128 threads
// (bench/kernels/crossentropy_bench.cu; -DSW_CE_EXPF restores expf). The emulation uses exp2f.
SW_INLINE float sw_ce_exp(float x)
{
#if defined(SW_CE_EXPF)
    return expf(x);
#elif defined(SW_DEVICE_PASS)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.44269504088896341f));
    return y;
#else
    return exp2f(x * 1.44269504088896341f);
#endif
}

// 16 bytes, the unit of one vector load or store (shardwise_common.cuh): 4 fp32 or 8 fp16/bf16 elements.
typedef sw_raw_vector<16>::type sw_ce_raw;
template <typename T> using sw_ce_vector = sw_vector<T, 16 / sizeof(T)>;

// Where a row's aligned body lies: elements [0, head) come before the first 16-byte boundary, then `vectors`
// aligned vectors of 16 / sizeof(T) elements, then elements [tail, vocabulary). head and vocabulary − tail are each
// below 16 / sizeof(T). The row start must be aligned to its element size (every arena slice is).
struct sw_ce_row_layout
{
    int head;
    int vectors;
    int tail;
};

template <typename T>
SW_INLINE sw_ce_row_layout sw_ce_layout(const T* row, int vocabulary)
{
    const int per_vector = 16 / (int)sizeof(T);
    int misaligned = (int)((reinterpret_cast<unsigned long long>(row) % 16) / sizeof(T));
    int head = misaligned == 0 ? 0 : per_vector - misaligned;
    if (head > vocabulary) head = vocabulary;
    int vectors = (vocabulary - head) / per_vector;
    return sw_ce_row_layout{head, vectors, head + vectors * per_vector};
}

// One round's loads: up to SW_CE_VECTORS vectors blockDim.x apart from `first`, all issued before any is used.
template <typename T>
SW_INLINE void sw_ce_load_round(sw_ce_vector<T> (&v)[SW_CE_VECTORS], const sw_ce_raw* body, int first, int vectors)
{
    SW_UNROLL
    for (int i = 0; i < SW_CE_VECTORS; i++)
    {
        int k = first + i * (int)blockDim.x;
        if (k < vectors) v[i].raw = body[k];
    }
}

// Calls f(x) for this thread's share of the row's elements (x as float), with the same loads as the passes below:
// SW_CE_VECTORS 16-byte vectors blockDim.x apart loaded before the first is used, then the head and tail elements.
// For reductions whose per-element step is cheap (a max, a sum against a known max); reduce the result over the
// block afterwards.
template <typename T, typename F>
SW_INLINE void sw_ce_row_visit(const T* row, int vocabulary, F& f)
{
    const int per_vector = 16 / (int)sizeof(T);
    sw_ce_row_layout layout = sw_ce_layout(row, vocabulary);
    const sw_ce_raw* body = reinterpret_cast<const sw_ce_raw*>(row + layout.head);
    for (int first = threadIdx.x; first < layout.vectors; first += SW_CE_VECTORS * blockDim.x)
    {
        sw_ce_vector<T> v[SW_CE_VECTORS];
        sw_ce_load_round(v, body, first, layout.vectors);
        SW_UNROLL
        for (int i = 0; i < SW_CE_VECTORS; i++)
        {
            if (first + i * (int)blockDim.x >= layout.vectors) continue;
            SW_UNROLL
            for (int e = 0; e < per_vector; e++) f(sw_to_float(v[i].element[e]));
        }
    }
    for (int j = threadIdx.x; j < layout.head; j += blockDim.x) f(sw_to_float(row[j]));
    for (int j = layout.tail + threadIdx.x; j < vocabulary; j += blockDim.x) f(sw_to_float(row[j]));
}

// This thread's share of the row's (max, Σ exp(x − max)), in one read of the row: each round loads up to
// SW_CE_VECTORS vectors blockDim.x apart (so each load instruction is coalesced), takes their maximum, and merges
// the round into the running state once (one rescale per round, not per element). The head and tail elements
// (fewer than blockDim.x each) go to the first threads. Not reduced over the block: see sw_ce_row_statistics.
// With a `copy` (a row's worth of memory at the row's alignment modulo 16 bytes, shared memory in
// crossentropy_forward_backward), every element read is also stored there at its index, so a second pass can read
// the row from it instead of from global memory.
template <typename T>
SW_INLINE sw_softmax_state sw_ce_thread_statistics(const T* row, int vocabulary, T* copy = nullptr)
{
    const int per_vector = 16 / (int)sizeof(T);
    sw_ce_row_layout layout = sw_ce_layout(row, vocabulary);
    const sw_ce_raw* body = reinterpret_cast<const sw_ce_raw*>(row + layout.head);
    sw_ce_raw* copy_body = copy != nullptr ? reinterpret_cast<sw_ce_raw*>(copy + layout.head) : nullptr;
    sw_softmax_state state = sw_softmax_empty();
    for (int first = threadIdx.x; first < layout.vectors; first += SW_CE_VECTORS * blockDim.x)
    {
        sw_ce_vector<T> v[SW_CE_VECTORS];
        sw_ce_load_round(v, body, first, layout.vectors);
        if (copy_body != nullptr)
        {
            SW_UNROLL
            for (int i = 0; i < SW_CE_VECTORS; i++)
            {
                int k = first + i * (int)blockDim.x;
                if (k < layout.vectors) copy_body[k] = v[i].raw;
            }
        }
        float m = sw_negative_infinity();
        SW_UNROLL
        for (int i = 0; i < SW_CE_VECTORS; i++)
        {
            if (first + i * (int)blockDim.x >= layout.vectors) continue;
            SW_UNROLL
            for (int e = 0; e < per_vector; e++) m = fmaxf(m, sw_to_float(v[i].element[e]));
        }
        float sum = 0.0f;
        SW_UNROLL
        for (int i = 0; i < SW_CE_VECTORS; i++)
        {
            if (first + i * (int)blockDim.x >= layout.vectors) continue;
            SW_UNROLL
            for (int e = 0; e < per_vector; e++) sum += sw_ce_exp(sw_to_float(v[i].element[e]) - m);
        }
        state = sw_softmax_merge(state, sw_softmax_state{m, sum});
    }
    for (int j = threadIdx.x; j < layout.head; j += blockDim.x)
    {
        if (copy != nullptr) copy[j] = row[j];
        sw_softmax_add(state, sw_to_float(row[j]));
    }
    for (int j = layout.tail + threadIdx.x; j < vocabulary; j += blockDim.x)
    {
        if (copy != nullptr) copy[j] = row[j];
        sw_softmax_add(state, sw_to_float(row[j]));
    }
    return state;
}

// The row's (max, Σ exp(x − max)) over the whole block; every thread of the block calls it and gets the result.
// With a `copy`, the row is also in it afterwards, visible to the whole block (the reduction's barriers come after
// every store).
template <typename T>
SW_INLINE sw_softmax_state sw_ce_row_statistics(const T* row, int vocabulary, T* copy = nullptr)
{
    return sw_block_softmax(sw_ce_thread_statistics(row, vocabulary, copy));
}

// Writes out[j] (=|+=) f(in[j], j) for every j < vocabulary of one row, each element read and written by one
// thread (so out may alias in). f(x, j) is the new value before accumulation; with accumulate, out's old value is
// added to it. Vector stores when out's row has in's alignment (then its head is the same), else single-element
// stores of the vector-loaded values.
template <typename T, typename F>
SW_INLINE void sw_ce_row_map(const T* in, T* out, int vocabulary, int accumulate, F f)
{
    const int per_vector = 16 / (int)sizeof(T);
    sw_ce_row_layout layout = sw_ce_layout(in, vocabulary);
    bool aligned_out = (reinterpret_cast<unsigned long long>(out) - reinterpret_cast<unsigned long long>(in)) % 16 == 0;
    const sw_ce_raw* body = reinterpret_cast<const sw_ce_raw*>(in + layout.head);
    T* out_body = out + layout.head;
    for (int first = threadIdx.x; first < layout.vectors; first += SW_CE_VECTORS * blockDim.x)
    {
        sw_ce_vector<T> v[SW_CE_VECTORS], old[SW_CE_VECTORS];
        // Every load of the round before any store: the compiler may not move a load above a store that may alias
        // it (out may be in), so loads written after a store would each wait for it and few would be in flight.
        SW_UNROLL
        for (int i = 0; i < SW_CE_VECTORS; i++)
        {
            int k = first + i * (int)blockDim.x;
            if (k >= layout.vectors) continue;
            v[i].raw = body[k];
            if (accumulate)
            {
                if (aligned_out)
                {
                    old[i].raw = reinterpret_cast<const sw_ce_raw*>(out_body)[k];
                }
                else
                {
                    SW_UNROLL
                    for (int e = 0; e < per_vector; e++) old[i].element[e] = out_body[k * per_vector + e];
                }
            }
        }
        SW_UNROLL
        for (int i = 0; i < SW_CE_VECTORS; i++)
        {
            int k = first + i * (int)blockDim.x;
            if (k >= layout.vectors) continue;
            SW_UNROLL
            for (int e = 0; e < per_vector; e++)
            {
                float value = f(sw_to_float(v[i].element[e]), layout.head + k * per_vector + e);
                if (accumulate) value += sw_to_float(old[i].element[e]);
                v[i].element[e] = sw_from_float<T>(value);
            }
            if (aligned_out)
            {
                reinterpret_cast<sw_ce_raw*>(out_body)[k] = v[i].raw;
            }
            else
            {
                SW_UNROLL
                for (int e = 0; e < per_vector; e++) out_body[k * per_vector + e] = v[i].element[e];
            }
        }
    }
    for (int j = threadIdx.x; j < layout.head; j += blockDim.x)
    {
        float value = f(sw_to_float(in[j]), j);
        out[j] = sw_from_float<T>(accumulate ? value + sw_to_float(out[j]) : value);
    }
    for (int j = layout.tail + threadIdx.x; j < vocabulary; j += blockDim.x)
    {
        float value = f(sw_to_float(in[j]), j);
        out[j] = sw_from_float<T>(accumulate ? value + sw_to_float(out[j]) : value);
    }
}

// The target that masks a row out of the loss (PyTorch's ignore_index, CrossEntropyKernels.IgnoreIndex): the row's
// loss is 0 and its gradient 0, and the runtime leaves it out of the mean's divisor (it counts the counted rows
// from its host copy of the targets and passes the scale already divided).
#define SW_CE_IGNORE_INDEX (-100)

// out[j] = 0 for the row: an ignored row's gradient when the gradient is overwritten (accumulating adds nothing).
template <typename T>
SW_INLINE void sw_ce_row_zero(T* out, int vocabulary)
{
    T zero = sw_from_float<T>(0.0f);
    for (int j = threadIdx.x; j < vocabulary; j += blockDim.x) out[j] = zero;
}
