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
// from the other lanes' fragments with __shfl_sync and computes its four outputs in fp32, in k order; the kernels'
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

// Two floats rounded to T (nearest even) and packed, for the A operand built from fp32 accumulators.
template <typename T> SW_INLINE unsigned sw_pack_float2(float low, float high)
{
    return sw_pack_bits(sw_from_float<T>(low).bits, sw_from_float<T>(high).bits);
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

// c += A·B for one 16×16·16×8 tile, T = sw_half or sw_bf16. Every lane of the warp must call it together.
template <typename T> SW_INLINE void sw_mma_16816(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
#ifdef SW_DEVICE_PASS
    sw_mma_instruction<T>::run(c, a, b);
#else
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    // rows[r][k]: A's rows g (r = 0) and g+8 (r = 1); cols[n][k]: B's columns 2t (n = 0) and 2t+1 (n = 1).
    float rows[2][16], cols[2][16];
    for (int j = 0; j < 4; j++)
    {
        // Lane 4g+j holds A[g][2j, 2j+1, 2j+8, 2j+9] and A[g+8][…]; two registers travel per 64-bit shuffle.
        unsigned long long a01 = __shfl_sync(SW_FULL_MASK, a[0] | ((unsigned long long)a[1] << 32), 4 * g + j);
        unsigned long long a23 = __shfl_sync(SW_FULL_MASK, a[2] | ((unsigned long long)a[3] << 32), 4 * g + j);
        unsigned long long b01 = b[0] | ((unsigned long long)b[1] << 32);
        // Lane 4n+j holds B[2j, 2j+1][n] and B[2j+8, 2j+9][n].
        unsigned long long even = __shfl_sync(SW_FULL_MASK, b01, 4 * (2 * t) + j);
        unsigned long long odd = __shfl_sync(SW_FULL_MASK, b01, 4 * (2 * t + 1) + j);
        unsigned a0 = (unsigned)a01, a1 = (unsigned)(a01 >> 32), a2 = (unsigned)a23, a3 = (unsigned)(a23 >> 32);
        rows[0][2 * j] = sw_bits_to_float<T>(a0 & 0xffffu);
        rows[0][2 * j + 1] = sw_bits_to_float<T>(a0 >> 16);
        rows[1][2 * j] = sw_bits_to_float<T>(a1 & 0xffffu);
        rows[1][2 * j + 1] = sw_bits_to_float<T>(a1 >> 16);
        rows[0][2 * j + 8] = sw_bits_to_float<T>(a2 & 0xffffu);
        rows[0][2 * j + 9] = sw_bits_to_float<T>(a2 >> 16);
        rows[1][2 * j + 8] = sw_bits_to_float<T>(a3 & 0xffffu);
        rows[1][2 * j + 9] = sw_bits_to_float<T>(a3 >> 16);
        unsigned long long both[2] = {even, odd};
        for (int n = 0; n < 2; n++)
        {
            unsigned b0 = (unsigned)both[n], b1 = (unsigned)(both[n] >> 32);
            cols[n][2 * j] = sw_bits_to_float<T>(b0 & 0xffffu);
            cols[n][2 * j + 1] = sw_bits_to_float<T>(b0 >> 16);
            cols[n][2 * j + 8] = sw_bits_to_float<T>(b1 & 0xffffu);
            cols[n][2 * j + 9] = sw_bits_to_float<T>(b1 >> 16);
        }
    }
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

// ---- fragments from shared memory. Tiles are row-major arrays of 16-bit values with `stride` elements per row;
// a stride of (columns + 8) makes the 32-bit fragment reads of a warp hit 32 different banks.

// A fragment of the 16×16 block at (row0, col0) of a row-major tile M (A = M).
SW_INLINE void sw_load_a(unsigned (&a)[4], const sw_bits16* tile, int stride, int row0, int col0)
{
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    const sw_bits16* p = tile + (row0 + g) * stride + col0 + 2 * t;
    a[0] = *reinterpret_cast<const unsigned*>(p);
    a[1] = *reinterpret_cast<const unsigned*>(p + 8 * stride);
    a[2] = *reinterpret_cast<const unsigned*>(p + 8);
    a[3] = *reinterpret_cast<const unsigned*>(p + 8 * stride + 8);
}

// B fragment for B = Mᵀ, M row-major with n along its rows (e.g. K in S = Q·Kᵀ): B[k][n] = M[n0+n][k0+k].
SW_INLINE void sw_load_b_transposed(unsigned (&b)[2], const sw_bits16* tile, int stride, int n0, int k0)
{
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    const sw_bits16* p = tile + (n0 + g) * stride + k0 + 2 * t;
    b[0] = *reinterpret_cast<const unsigned*>(p);
    b[1] = *reinterpret_cast<const unsigned*>(p + 8);
}

// B fragment for B = M, M row-major with k along its rows (e.g. V in O = P·V): B[k][n] = M[k0+k][n0+n]. The two
// values of a register sit in consecutive rows, so they are read separately and packed.
SW_INLINE void sw_load_b(unsigned (&b)[2], const sw_bits16* tile, int stride, int k0, int n0)
{
    int lane = threadIdx.x % SW_WARP_SIZE, g = lane >> 2, t = lane & 3;
    const sw_bits16* p = tile + (k0 + 2 * t) * stride + n0 + g;
    b[0] = sw_pack_bits(p[0], p[stride]);
    b[1] = sw_pack_bits(p[8 * stride], p[9 * stride]);
}

// The warp's 16 rows of a staged tile (rows 16·warp …) as A fragments, one per 16-column step below `depth`: the
// operand a warp keeps in registers for a whole tile loop.
template <int STEPS>
SW_INLINE void sw_load_warp_rows(unsigned (&a)[STEPS][4], const sw_bits16* tile, int stride, int depth)
{
    int warp = threadIdx.x / SW_WARP_SIZE;
    SW_UNROLL
    for (int kk = 0; kk < STEPS; kk++)
        if (16 * kk < depth) sw_load_a(a[kk], tile, stride, 16 * warp, 16 * kk);
}

// ---- warp-level products over a staged tile --------------------------------------------------------------------

// acc[n] = Σ_kk a[kk] · (tile rows 8n…8n+7, columns 16kk…16kk+15)ᵀ for every n < N, over the first `depth` columns
// (a multiple of 16): the warp's 16 rows, held as A fragments, against the N·8 rows of a staged tile. S = Q·Kᵀ in the
// forward, P = K·Qᵀ and dPᵀ = V·dYᵀ in the key-tile backward.
template <typename T, int N, int STEPS>
SW_INLINE void sw_warp_product_transposed(float (&acc)[N][4], const unsigned (&a)[STEPS][4], const sw_bits16* tile,
                                          int stride, int depth)
{
    SW_UNROLL
    for (int n = 0; n < N; n++)
    {
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
        SW_UNROLL
        for (int kk = 0; kk < STEPS; kk++)
        {
            if (16 * kk >= depth) continue;
            unsigned b[2];
            sw_load_b_transposed(b, tile, stride, 8 * n, 16 * kk);
            sw_mma_16816<T>(acc[n], a[kk], b);
        }
    }
}

// acc[j] += P · (tile rows 0…8N−1, columns 8j…8j+7) for every j < J with 8j < width: the warp's 16 rows of fp32
// accumulators P (N tiles of 8 columns; tiles 2kk and 2kk+1 become the A fragment of tile rows 16kk…16kk+15) times a
// staged tile. O += P·V in the forward, dV += Pᵀ·dY and dK += dSᵀ·Q, dQ += dS·K in the backward.
template <typename T, int N, int J>
SW_INLINE void sw_warp_accumulate_product(float (&acc)[J][4], const float (&p)[N][4], const sw_bits16* tile, int stride,
                                          int width)
{
    SW_UNROLL
    for (int kk = 0; kk < N / 2; kk++)
    {
        unsigned a[4];
        sw_accumulators_to_a<T>(a, p[2 * kk], p[2 * kk + 1]);
        SW_UNROLL
        for (int j = 0; j < J; j++)
        {
            if (8 * j >= width) continue;
            unsigned b[2];
            sw_load_b(b, tile, stride, 16 * kk, 8 * j);
            sw_mma_16816<T>(acc[j], a, b);
        }
    }
}

// ---- staging: copies `tile_rows` × `columns` 16-bit values (columns a multiple of 8) from global memory, row r at
// source + r·source_stride, into a shared tile (stride `tile_stride`, 16-byte aligned rows), 8 values per thread and
// step: one 16-byte load when the source rows are 16-byte aligned (always, for the arenas' 16-element alignment and
// head sizes that are multiples of 16), else eight 2-byte loads. Rows at or past `valid_rows` are filled with zeros,
// so padded keys and queries contribute exact zeros. Every thread of the block calls it; the caller synchronises.
struct __align__(16) sw_bits128
{
    unsigned x, y, z, w;
};

SW_INLINE void sw_stage_tile(sw_bits16* tile, int tile_stride, int tile_rows, const sw_bits16* source,
                             long long source_stride, int valid_rows, int columns)
{
    unsigned long long address = reinterpret_cast<unsigned long long>(source);
    bool vectors = ((address | (unsigned long long)(source_stride * 2)) & 15u) == 0;
    int chunks_per_row = columns / 8, chunks = tile_rows * chunks_per_row;
    for (int i = threadIdx.x; i < chunks; i += blockDim.x)
    {
        int r = i / chunks_per_row, c = (i % chunks_per_row) * 8;
        sw_bits128 value{0u, 0u, 0u, 0u};
        if (r < valid_rows)
        {
            const sw_bits16* from = source + r * source_stride + c;
            if (vectors)
            {
                value = *reinterpret_cast<const sw_bits128*>(from);
            }
            else
            {
                value.x = sw_pack_bits(from[0], from[1]);
                value.y = sw_pack_bits(from[2], from[3]);
                value.z = sw_pack_bits(from[4], from[5]);
                value.w = sw_pack_bits(from[6], from[7]);
            }
        }
        *reinterpret_cast<sw_bits128*>(tile + r * tile_stride + c) = value;
    }
}
