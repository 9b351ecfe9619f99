// shardwise_mma.cuh — warp-level tensor-core matrix multiply-accumulate (PTX mma.sync m16n8k16, 16-bit operands,
// fp32 accumulators) and the shared-memory operand staging the flash-attention kernels build on.
//
// One mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 multiplies a 16×16 tile A by a 16×8 tile B
// and adds the 16×8 fp32 tile C, every lane of a full warp taking part. With g = lane >> 2 (groupID) and
// t = lane & 3 (threadID_in_group), each lane holds (PTX ISA 9.0, section 9.7.14.5.8 "Matrix Fragments for
// mma.m16n8k16 with floating point type"; every 32-bit register packs two 16-bit values, the lower column or k index
// in the low half):
//   A (16×16, row-major): a0 = A[g][2t, 2t+1]    a1 = A[g+8][2t, 2t+1]
//                         a2 = A[g][2t+8, 2t+9]  a3 = A[g+8][2t+8, 2t+9]
//   B (16×8, "col": k × n): b0 = B[2t, 2t+1][g]  b1 = B[2t+8, 2t+9][g]
//   C, D (16×8, fp32):    c0, c1 = C[g][2t, 2t+1]  c2, c3 = C[g+8][2t, 2t+1]
// A useful consequence (FlashAttention-2 keeps P in registers this way): the accumulators of two neighbouring
// 16×8 C tiles (columns 0–7 and 8–15), rounded and packed in pairs, are exactly the A fragment of the 16×16 tile
// they form: a0 = (c0, c1) of the left tile, a1 = (c2, c3) left, a2 = (c0, c1) right, a3 = (c2, c3) right.
//
// On the GPU the product is the PTX instruction (sm_80 and later). In the CPU emulation harness
// (tests/kernels-harness, SW_DEVICE_PASS undefined) each lane gathers the rows of A and the columns of B it needs
// from the other lanes' fragments (a per-warp exchange table between two __syncwarp) and computes its four outputs in
// fp32, in k order; the kernels'
// own indexing, tiling and masking are then exercised unchanged. (The hardware's internal summation order and
// rounding differ slightly; tests compare with tolerances.)
// CPU reference: none of its own; the products are checked through flash_attention_forward.cu and
// flash_attention_backward.cu (tests/Shardwise.Kernels.Tests/FlashAttentionKernelTests.cs) against
// runtime/Shardwise/Cpu/AttentionKernels.cs.
#pragma once
#include "shardwise_common.cuh"

// Unrolls the next loop on the GPU (fragment arrays must be indexed by constants to stay in registers); the C++
// compiler of the emulation harness decides for itself.
#ifdef SW_DEVICE_PASS
#define SW_UNROLL _Pragma("unroll")
#else
#define SW_UNROLL
#endif

// The raw 16 bits of a stored value (sw_half and sw_bf16 are both one unsigned short).
typedef unsigned short sw_bits16;

// Two 16-bit values in one register, `low` in bits 0–15: the operand format of mma.sync.
SW_INLINE unsigned sw_pack_bits(sw_bits16 low, sw_bits16 high) { return (unsigned)low | ((unsigned)high << 16); }

#ifdef SW_DEVICE_PASS
// cvt.rn.{f16x2,bf16x2}.f32 d, a, b rounds both (nearest even, as sw_from_float) and puts a in the upper half: one
// instruction instead of two conversions and a pack, for every P and dS value the flash kernels feed to an mma.
template <typename T> struct sw_pack_instruction;
template <> struct sw_pack_instruction<sw_half>
{
    SW_INLINE static unsigned run(float low, float high)
    {
        unsigned d;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(high), "f"(low));
        return d;
    }
};
template <> struct sw_pack_instruction<sw_bf16>
{
    SW_INLINE static unsigned run(float low, float high)
    {
        unsigned d;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(high), "f"(low));
        return d;
    }
};
#endif

// Two floats rounded to T (nearest even) and packed, for the A operand built from fp32 accumulators.
template <typename T> SW_INLINE unsigned sw_pack_float2(float low, float high)
{
#ifdef SW_DEVICE_PASS
    return sw_pack_instruction<T>::run(low, high);
#else
    return sw_pack_bits(sw_from_float<T>(low).bits, sw_from_float<T>(high).bits);
#endif
}

template <typename T> SW_INLINE float sw_bits_to_float(unsigned bits16) { return sw_to_float(T{(sw_bits16)bits16}); }

// The A fragment of a 16×16 tile from the fp32 accumulators of its left (columns 0–7) and right (8–15) 16×8 halves,
// rounded to T: how P and dS go from one product into the next without leaving registers.
template <typename T>
SW_INLINE void sw_accumulators_to_a(unsigned (&a)[4], const float (&left)[4], const float (&right)[4])
{
    a[0] = sw_pack_float2<T>(left[0], left[1]);
    a[1] = sw_pack_float2<T>(left[2], left[3]);
    a[2] = sw_pack_float2<T>(right[0], right[1]);
    a[3] = sw_pack_float2<T>(right[2], right[3]);
}

#ifdef SW_DEVICE_PASS
template <typename T> struct sw_mma_instruction;

template <> struct sw_mma_instruction<sw_half>
{
    SW_INLINE static void run(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2])
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

template <> struct sw_mma_instruction<sw_bf16>
{
    SW_INLINE static void run(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2])
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};
#endif

#ifndef SW_DEVICE_PASS
// Emulation only: the lanes of a warp exchange fragments and row pointers through one row of this table per warp
// (the harness runs one block at a time, as it assumes for __shared__), between two __syncwarp: two warp barriers per
// mma or ldmatrix instead of the eight to sixteen shuffles that gathering the same values lane by lane takes, which
// made the emulated flash kernels the slowest tests of the suite. Blocks are one-dimensional (lane = threadIdx.x % 32).
struct sw_emulated_warp_exchange
{
    unsigned a[SW_WARP_SIZE][4];
    unsigned b[SW_WARP_SIZE][2];
    const sw_bits16* row[SW_WARP_SIZE];
};

SW_INLINE sw_emulated_warp_exchange& sw_warp_exchange()
{
    static sw_emulated_warp_exchange table[1024 / SW_WARP_SIZE];
    return table[threadIdx.x / SW_WARP_SIZE];
}
#endif

// c += A·B for one 16×16·16×8 tile, T = sw_half or sw_bf16. Every lane of the warp must call it together.
template <typename T> SW_INLINE void sw_mma_16816(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
#ifdef SW_DEVICE_PASS
    sw_mma_instruction<T>::run(c, a, b);
#else
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    sw_emulated_warp_exchange& x = sw_warp_exchange();
    for (int i = 0; i < 4; i++) x.a[lane][i] = a[i];
    x.b[lane][0] = b[0];
    x.b[lane][1] = b[1];
    __syncwarp();
    // rows[r][k]: A's rows g (r = 0) and g+8 (r = 1); cols[n][k]: B's columns 2t (n = 0) and 2t+1 (n = 1).
    // Lane 4g+j holds A[g][2j, 2j+1] (a0), A[g+8][2j, 2j+1] (a1), A[g][2j+8, 2j+9] (a2), A[g+8][2j+8, 2j+9] (a3);
    // lane 4n+j holds B[2j, 2j+1][n] (b0) and B[2j+8, 2j+9][n] (b1).
    float rows[2][16], cols[2][16];
    for (int j = 0; j < 4; j++)
    {
        const unsigned* from = x.a[4 * g + j];
        for (int r = 0; r < 2; r++)
        {
            rows[r][2 * j] = sw_bits_to_float<T>(from[r] & 0xffffu);
            rows[r][2 * j + 1] = sw_bits_to_float<T>(from[r] >> 16);
            rows[r][2 * j + 8] = sw_bits_to_float<T>(from[r + 2] & 0xffffu);
            rows[r][2 * j + 9] = sw_bits_to_float<T>(from[r + 2] >> 16);
        }
        for (int n = 0; n < 2; n++)
        {
            const unsigned* column = x.b[4 * (2 * t + n) + j];
            cols[n][2 * j] = sw_bits_to_float<T>(column[0] & 0xffffu);
            cols[n][2 * j + 1] = sw_bits_to_float<T>(column[0] >> 16);
            cols[n][2 * j + 8] = sw_bits_to_float<T>(column[1] & 0xffffu);
            cols[n][2 * j + 9] = sw_bits_to_float<T>(column[1] >> 16);
        }
    }
    __syncwarp(); // every lane has read the table before the next exchange overwrites it
    for (int r = 0; r < 2; r++)
    {
        for (int n = 0; n < 2; n++)
        {
            float sum = c[2 * r + n];
            for (int k = 0; k < 16; k++) sum += rows[r][k] * cols[n][k];
            c[2 * r + n] = sum;
        }
    }
#endif
}

// ---- fragments from shared memory through ldmatrix. Tiles are row-major arrays of 16-bit values with `stride`
// elements per row; a stride of (columns + 8) puts the eight 16-byte rows one ldmatrix phase reads in 32 different
// banks. One ldmatrix.x4 loads four 8×8 matrices: lane l names row (l & 7) of matrix l >> 3, and every lane receives
// one register per matrix, the pair (row g, columns 2t, 2t+1), or with .trans the pair (rows 2t, 2t+1, column g).
// That is the layout of the A and B fragments above, so one instruction replaces four to sixteen shared loads.
//
// In the emulation harness each lane fetches the row pointers of the lanes it needs (through the warp's exchange
// table) and reads the values itself: the same addressing, checked against the CPU backend through the kernels.

#ifdef SW_DEVICE_PASS
// The 32-bit shared-window address ldmatrix and cp.async take, from a generic pointer into shared memory.
SW_INLINE unsigned sw_shared_address(const void* pointer)
{
    unsigned address;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(pointer));
    return address;
}
#endif

// r[m] = (row g, columns 2t, 2t+1) of matrix m, whose row i starts at the `row` pointer of lane 8m + i.
SW_INLINE void sw_ldmatrix_x4(unsigned (&r)[4], const sw_bits16* row)
{
#ifdef SW_DEVICE_PASS
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(sw_shared_address(row))
                 : "memory");
#else
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    sw_emulated_warp_exchange& x = sw_warp_exchange();
    x.row[lane] = row;
    __syncwarp();
    for (int m = 0; m < 4; m++)
    {
        const sw_bits16* from = x.row[8 * m + g];
        r[m] = sw_pack_bits(from[2 * t], from[2 * t + 1]);
    }
    __syncwarp();
#endif
}

// r[m] = (rows 2t, 2t+1 at column g) of matrix m: the transposed load, for B operands stored k-major.
SW_INLINE void sw_ldmatrix_x4_trans(unsigned (&r)[4], const sw_bits16* row)
{
#ifdef SW_DEVICE_PASS
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(sw_shared_address(row))
                 : "memory");
#else
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    sw_emulated_warp_exchange& x = sw_warp_exchange();
    x.row[lane] = row;
    __syncwarp();
    for (int m = 0; m < 4; m++) r[m] = sw_pack_bits(x.row[8 * m + 2 * t][g], x.row[8 * m + 2 * t + 1][g]);
    __syncwarp();
#endif
}

// A fragment of the 16×16 block at (row0, col0) of a row-major tile M (A = M). Matrices: rows 0–7 and 8–15 of
// columns 0–7, then of columns 8–15, which is the order a0…a3.
SW_INLINE void sw_load_a(unsigned (&a)[4], const sw_bits16* tile, int stride, int row0, int col0)
{
    int lane = threadIdx.x % SW_WARP_SIZE;
    sw_ldmatrix_x4(a, tile + (row0 + (lane & 15)) * stride + col0 + (lane >> 4) * 8);
}

// A fragment of the 16×16 block of A = Mᵀ at (row0, col0), M row-major (A[i][k] = M[col0+k][row0+i]): the transposed
// load of the four 8×8 blocks of M in the order a0…a3 (M rows col0…+7 then col0+8…+15, each at M columns row0…+7
// and row0+8…+15). dQ += dS·K reads dS this way from the dSᵀ tiles the dK/dV kernel stores.
SW_INLINE void sw_load_a_transposed(unsigned (&a)[4], const sw_bits16* tile, int stride, int row0, int col0)
{
    int lane = threadIdx.x % SW_WARP_SIZE;
    sw_ldmatrix_x4_trans(a, tile + (col0 + (lane & 7) + (lane >> 4) * 8) * stride + row0 + ((lane >> 3) & 1) * 8);
}

// B fragments of two neighbouring 8-column n-tiles for B = Mᵀ, M row-major with n along its rows (K in S = Q·Kᵀ):
// B[k][n] = M[n0+n][k0+k] for n < 16, k < 16. b[0], b[1] serve n-tile n0, b[2], b[3] n-tile n0+8.
SW_INLINE void sw_load_b_transposed_pair(unsigned (&b)[4], const sw_bits16* tile, int stride, int n0, int k0)
{
    int lane = threadIdx.x % SW_WARP_SIZE;
    sw_ldmatrix_x4(b, tile + (n0 + (lane & 7) + (lane >> 4) * 8) * stride + k0 + ((lane >> 3) & 1) * 8);
}

// B fragments of two neighbouring n-tiles for B = M, M row-major with k along its rows (V in O = P·V):
// B[k][n] = M[k0+k][n0+n]. b[0], b[1] serve n-tile n0, b[2], b[3] n-tile n0+8.
SW_INLINE void sw_load_b_pair(unsigned (&b)[4], const sw_bits16* tile, int stride, int k0, int n0)
{
    int lane = threadIdx.x % SW_WARP_SIZE;
    sw_ldmatrix_x4_trans(b, tile + (k0 + (lane & 15)) * stride + n0 + (lane >> 4) * 8);
}

// The warp's M·16 rows of a staged tile (rows 16·M·warp …) as A fragments, one per 16-column step: the operand a
// warp keeps in registers for a whole tile loop.
template <int M, int STEPS>
SW_INLINE void sw_load_warp_rows(unsigned (&a)[M][STEPS][4], const sw_bits16* tile, int stride)
{
    int warp = threadIdx.x / SW_WARP_SIZE;
    SW_UNROLL
    for (int m = 0; m < M; m++)
    {
        SW_UNROLL
        for (int kk = 0; kk < STEPS; kk++) sw_load_a(a[m][kk], tile, stride, 16 * (M * warp + m), 16 * kk);
    }
}

// ---- warp-level products over a staged tile. The depth and width are compile-time (the tile width D); columns past
// the real head size are staged as zeros, so they add exact zeros and no product branches on the head size.

// acc[m][n] = Σ_kk a[m][kk] · (tile rows 8n…8n+7, columns 16kk…16kk+15)ᵀ for every n < N (N even): the warp's
// M·16 rows, held as A fragments, against the N·8 rows of a staged tile. S = Q·Kᵀ in the forward, P = K·Qᵀ and
// dPᵀ = V·dYᵀ in the key-tile backward. Each B fragment loaded serves all M row tiles.
// `groups` (bit g for tile rows 16g…16g+15, warp-uniform) skips the products of the 16-row groups not set, whose
// accumulators stay 0: block-sparse attention's dropped key (or query) groups; all set for dense attention, where the
// test folds away.
template <typename T, int M, int N, int STEPS>
SW_INLINE void sw_warp_product_transposed(float (&acc)[M][N][4], const unsigned (&a)[M][STEPS][4],
                                          const sw_bits16* tile, int stride, unsigned groups = ~0u)
{
    SW_UNROLL
    for (int m = 0; m < M; m++)
    {
        SW_UNROLL
        for (int n = 0; n < N; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
    }
    SW_UNROLL
    for (int kk = 0; kk < STEPS; kk++)
    {
        SW_UNROLL
        for (int n = 0; n < N; n += 2)
        {
            if (!(groups & (1u << (n / 2)))) continue;
            unsigned b[4];
            sw_load_b_transposed_pair(b, tile, stride, 8 * n, 16 * kk);
            const unsigned low[2] = {b[0], b[1]}, high[2] = {b[2], b[3]};
            SW_UNROLL
            for (int m = 0; m < M; m++)
            {
                sw_mma_16816<T>(acc[m][n], a[m][kk], low);
                sw_mma_16816<T>(acc[m][n + 1], a[m][kk], high);
            }
        }
    }
}

// acc[m][j] += P[m] · (tile rows 0…8N−1, columns 8j…8j+7) for every j < J (J even): the warp's M·16 rows of fp32
// accumulators P (N tiles of 8 columns; tiles 2kk and 2kk+1 become the A fragment of tile rows 16kk…16kk+15) times
// a staged tile. O += P·V in the forward, dV += Pᵀ·dY and dK += dSᵀ·Q, dQ += dS·K in the backward.
// `groups` skips the 16-row groups of the tile not set (their P are zeros), as in sw_warp_product_transposed.
template <typename T, int M, int N, int J>
SW_INLINE void sw_warp_accumulate_product(float (&acc)[M][J][4], const float (&p)[M][N][4], const sw_bits16* tile,
                                          int stride, unsigned groups = ~0u)
{
    SW_UNROLL
    for (int kk = 0; kk < N / 2; kk++)
    {
        if (!(groups & (1u << kk))) continue;
        unsigned a[M][4];
        SW_UNROLL
        for (int m = 0; m < M; m++) sw_accumulators_to_a<T>(a[m], p[m][2 * kk], p[m][2 * kk + 1]);
        SW_UNROLL
        for (int j = 0; j < J; j += 2)
        {
            unsigned b[4];
            sw_load_b_pair(b, tile, stride, 16 * kk, 8 * j);
            const unsigned low[2] = {b[0], b[1]}, high[2] = {b[2], b[3]};
            SW_UNROLL
            for (int m = 0; m < M; m++)
            {
                sw_mma_16816<T>(acc[m][j], a[m], low);
                sw_mma_16816<T>(acc[m][j + 1], a[m], high);
            }
        }
    }
}

// acc[0][j] += A · (b_tile rows 0…16·K_STEPS−1, columns 8j…8j+7) for every j < J (J even), where A is the warp's 16
// rows of Mᵀ for a staged row-major tile M (a_tile: K_STEPS·16 rows, the warp's 16 columns from 16·warp): the product
// of sw_warp_accumulate_product with the A operand read from shared memory instead of registers. dQ += dS·K from
// stored dSᵀ tiles.
template <typename T, int K_STEPS, int J>
SW_INLINE void sw_warp_accumulate_transposed_product(float (&acc)[1][J][4], const sw_bits16* a_tile, int a_stride,
                                                     const sw_bits16* b_tile, int b_stride)
{
    int warp = threadIdx.x / SW_WARP_SIZE;
    SW_UNROLL
    for (int kk = 0; kk < K_STEPS; kk++)
    {
        unsigned a[4];
        sw_load_a_transposed(a, a_tile, a_stride, 16 * warp, 16 * kk);
        SW_UNROLL
        for (int j = 0; j < J; j += 2)
        {
            unsigned b[4];
            sw_load_b_pair(b, b_tile, b_stride, 16 * kk, 8 * j);
            const unsigned low[2] = {b[0], b[1]}, high[2] = {b[2], b[3]};
            sw_mma_16816<T>(acc[0][j], a, low);
            sw_mma_16816<T>(acc[0][j + 1], a, high);
        }
    }
}

// ---- staging through cp.async: copies `tile_rows` × `width` 16-bit values (width a multiple of 8) from global
// memory, row r at source + r·source_stride, into a shared tile (stride `tile_stride`, 16-byte aligned rows), 8
// values per thread and step, without waiting: the copy runs while the block computes on the previous tile, and
// sw_async_wait makes it visible (then __syncthreads for the other threads' parts). Rows at or past `valid_rows`
// and columns at or past `columns` (the real head size, a multiple of 8) are filled with zeros, so padded keys,
// queries and head columns contribute exact zeros. When the source rows are not 16-byte aligned the values are
// loaded and stored by the thread itself (correct, not overlapped). Every thread of the block calls it.
struct __align__(16) sw_bits128
{
    unsigned x, y, z, w;
};

// One 16-byte asynchronous copy global → shared; `bytes` 16 copies, 0 fills the destination with zeros.
SW_INLINE void sw_copy_async16(sw_bits16* destination, const sw_bits16* source, int bytes)
{
#ifdef SW_DEVICE_PASS
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sw_shared_address(destination)), "l"(source),
                 "r"(bytes)
                 : "memory");
#else
    sw_bits128 value{0u, 0u, 0u, 0u};
    if (bytes == 16) value = *reinterpret_cast<const sw_bits128*>(source);
    *reinterpret_cast<sw_bits128*>(destination) = value;
#endif
}

// One 4-byte asynchronous copy (a float of a row statistic); `bytes` 4 copies, 0 writes zero.
SW_INLINE void sw_copy_async4(float* destination, const float* source, int bytes)
{
#ifdef SW_DEVICE_PASS
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(sw_shared_address(destination)), "l"(source),
                 "r"(bytes)
                 : "memory");
#else
    *destination = bytes == 4 ? *source : 0.0f;
#endif
}

// Closes the group of copies issued since the last commit.
SW_INLINE void sw_async_commit()
{
#ifdef SW_DEVICE_PASS
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits until at most PENDING committed groups of this thread are still in flight. (The emulation copies at once.)
template <int PENDING> SW_INLINE void sw_async_wait()
{
#ifdef SW_DEVICE_PASS
    asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
#endif
}

SW_INLINE void sw_stage_tile_async(sw_bits16* tile, int tile_stride, int tile_rows, int width, const sw_bits16* source,
                                   long long source_stride, int valid_rows, int columns)
{
    unsigned long long address = reinterpret_cast<unsigned long long>(source);
    bool vectors = ((address | (unsigned long long)(source_stride * 2)) & 15u) == 0;
    int chunks_per_row = width / 8, chunks = tile_rows * chunks_per_row;
    for (int i = threadIdx.x; i < chunks; i += blockDim.x)
    {
        int r = i / chunks_per_row, c = (i % chunks_per_row) * 8;
        bool real = r < valid_rows && c < columns;
        const sw_bits16* from = source + (real ? r * source_stride + c : 0);
        sw_bits16* to = tile + r * tile_stride + c;
        if (vectors)
        {
            sw_copy_async16(to, from, real ? 16 : 0);
        }
        else
        {
            sw_bits128 value{0u, 0u, 0u, 0u};
            if (real)
            {
                value.x = sw_pack_bits(from[0], from[1]);
                value.y = sw_pack_bits(from[2], from[3]);
                value.z = sw_pack_bits(from[4], from[5]);
                value.w = sw_pack_bits(from[6], from[7]);
            }
            *reinterpret_cast<sw_bits128*>(to) = value;
        }
    }
}

// 2^x: the special-function unit's approximation on the GPU (relative error about 2⁻²²; exp2(−inf) = 0), exp2 in
// the emulation.
SW_INLINE float sw_exp2(float x)
{
#ifdef SW_DEVICE_PASS
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}
