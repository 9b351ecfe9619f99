using System;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s block quantization of what travels (qwZ's weights, qgZ's gradients): each block of
/// <see cref="BlockElements"/> values becomes one fp32 scale, max |x| / (2^(bits−1) − 1), and a signed integer of
/// <see cref="Bits"/> bits per value, round to nearest. The encoded form is packed into floats so that the
/// communicator's float collectives move it as raw bits (an all-gather or a send copies, it never adds): first the
/// blocks' scales, then the integers, little-endian, two 4-bit values per byte (low nibble first). A block holding a
/// non-finite value gets a NaN scale, so every value of it decodes to NaN: an fp16 overflow in a gradient still reaches
/// the loss scaler's check after the reduction instead of being quantized away.
/// </summary>
public sealed class BlockQuantizer
{
    /// <summary>Values per block (one scale each): 256, so the scales add 1/64 to int8's bytes and 1/32 to int4's.</summary>
    public const int BlockElements = 256;

    public BlockQuantizer(int bits)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), bits, "block quantization packs 4 or 8 bits per value");
        Bits = bits;
        Levels = (1 << (bits - 1)) - 1;
    }

    public int Bits { get; }

    /// <summary>The largest integer magnitude: 127 for 8 bits, 7 for 4.</summary>
    public int Levels { get; }

    /// <summary>Floats the encoded form of <paramref name="values"/> values takes: the scales, then the packed integers.</summary>
    public int EncodedLength(int values) => Blocks(values) + (int)(((long)values * Bits + 31) / 32);

    private static int Blocks(int values) => (values + BlockElements - 1) / BlockElements;

    /// <summary>Encodes <paramref name="values"/> into the first <see cref="EncodedLength"/> floats of <paramref name="encoded"/>.</summary>
    public void Encode(ReadOnlySpan<float> values, Span<float> encoded) => Encode(values, encoded, vectors: Vector256.IsHardwareAccelerated);

    /// <summary><see cref="Encode(ReadOnlySpan{float}, Span{float})"/> one value at a time: the reference the vectors must match bit for bit.</summary>
    internal void EncodeScalar(ReadOnlySpan<float> values, Span<float> encoded) => Encode(values, encoded, vectors: false);

    private void Encode(ReadOnlySpan<float> values, Span<float> encoded, bool vectors)
    {
        int blocks = Blocks(values.Length);
        var scales = encoded.Slice(0, blocks);
        var bytes = MemoryMarshal.AsBytes(encoded.Slice(blocks, EncodedLength(values.Length) - blocks));
        bytes.Clear(); // the 4-bit packing ORs nibbles in, and the tail past the last value must not carry old bits
        for (int block = 0; block < blocks; block++)
        {
            int start = block * BlockElements;
            var chunk = values.Slice(start, Math.Min(BlockElements, values.Length - start));
            float largest = TensorPrimitives.MaxMagnitude(chunk);
            // A non-finite value makes the scale inf or NaN: the inverse is then 0, every integer 0, and 0 × scale NaN.
            float scale = Math.Abs(largest) / Levels;
            scales[block] = scale;
            float inverse = scale > 0 ? 1f / scale : 0f;
            // Blocks start on whole bytes (256 values), so a block's integers are a run of bytes of their own.
            var blockBytes = bytes.Slice(start * Bits / 8);
            int done = vectors ? EncodeVectors(chunk, inverse, blockBytes) : 0;
            for (int i = done; i < chunk.Length; i++)
            {
                int q = Quantize(chunk[i], inverse);
                if (Bits == 8) blockBytes[i] = (byte)(sbyte)q;
                else blockBytes[i >> 1] |= (byte)((i & 1) == 0 ? q & 0xF : (q & 0xF) << 4);
            }
        }
    }

    /// <summary>Decodes <paramref name="values"/>.Length values from <paramref name="encoded"/>.</summary>
    public void Decode(ReadOnlySpan<float> encoded, Span<float> values) => Decode(encoded, values, accumulate: false, Vector256.IsHardwareAccelerated);

    /// <summary>Adds the <paramref name="values"/>.Length decoded values to <paramref name="values"/> (qgZ's sum over senders).</summary>
    public void DecodeAdd(ReadOnlySpan<float> encoded, Span<float> values) => Decode(encoded, values, accumulate: true, Vector256.IsHardwareAccelerated);

    /// <summary><see cref="Decode(ReadOnlySpan{float}, Span{float})"/> (or its adding form) one value at a time: the vectors' reference.</summary>
    internal void DecodeScalar(ReadOnlySpan<float> encoded, Span<float> values, bool accumulate) => Decode(encoded, values, accumulate, vectors: false);

    private void Decode(ReadOnlySpan<float> encoded, Span<float> values, bool accumulate, bool vectors)
    {
        int blocks = Blocks(values.Length);
        var scales = encoded.Slice(0, blocks);
        var bytes = MemoryMarshal.AsBytes(encoded.Slice(blocks, EncodedLength(values.Length) - blocks));
        for (int block = 0; block < blocks; block++)
        {
            int start = block * BlockElements, length = Math.Min(BlockElements, values.Length - start);
            float scale = scales[block];
            var target = values.Slice(start, length);
            var blockBytes = bytes.Slice(start * Bits / 8);
            int done = vectors ? DecodeVectors(blockBytes, scale, target, accumulate) : 0;
            for (int i = done; i < length; i++)
            {
                int q = Bits == 8 ? (sbyte)blockBytes[i] : SignExtendNibble(blockBytes[i >> 1] >> ((i & 1) * 4));
                float value = q * scale;
                target[i] = accumulate ? target[i] + value : value;
            }
        }
    }

    private int Quantize(float value, float inverse) => Math.Clamp((int)MathF.Round(value * inverse), -Levels, Levels);

    private static int SignExtendNibble(int bits) => (bits << 28) >> 28;

    // The vector forms: 32 values at a time in 8 bits, 64 in 4, the same rounding (to nearest even) and clamp as the
    // scalar forms, so the bits are equal (BlockQuantizerTests); they return how many values they did.

    private int EncodeVectors(ReadOnlySpan<float> chunk, float inverse, Span<byte> bytes)
    {
        var scale = Vector256.Create(inverse);
        var lowest = Vector256.Create(-Levels);
        var highest = Vector256.Create(Levels);
        int i = 0;
        if (Bits == 8)
        {
            for (; i + 32 <= chunk.Length; i += 32) Quantize32(chunk.Slice(i), scale, lowest, highest).AsByte().CopyTo(bytes.Slice(i));
            return i;
        }
        for (; i + 64 <= chunk.Length; i += 64)
        {
            // Two neighbours as one 16-bit lane (even value in its low byte): low nibble from the even, high from the odd.
            var even = Quantize32(chunk.Slice(i), scale, lowest, highest).AsUInt16();
            var odd = Quantize32(chunk.Slice(i + 32), scale, lowest, highest).AsUInt16();
            Vector256.Narrow(Nibbles(even), Nibbles(odd)).CopyTo(bytes.Slice(i >> 1));
        }
        return i;
    }

    private static Vector256<ushort> Nibbles(Vector256<ushort> pairs) => (pairs & Vector256.Create((ushort)0x000F)) | ((pairs >> 4) & Vector256.Create((ushort)0x00F0));

    private static Vector256<sbyte> Quantize32(ReadOnlySpan<float> x, Vector256<float> inverse, Vector256<int> lowest, Vector256<int> highest)
    {
        return Vector256.Narrow(
            Vector256.Narrow(Eight(x.Slice(0, 8), inverse, lowest, highest), Eight(x.Slice(8, 8), inverse, lowest, highest)),
            Vector256.Narrow(Eight(x.Slice(16, 8), inverse, lowest, highest), Eight(x.Slice(24, 8), inverse, lowest, highest)));
    }

    private static Vector256<int> Eight(ReadOnlySpan<float> x, Vector256<float> inverse, Vector256<int> lowest, Vector256<int> highest)
        => Vector256.Min(Vector256.Max(Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(x) * inverse)), lowest), highest);

    private int DecodeVectors(ReadOnlySpan<byte> bytes, float scale, Span<float> target, bool accumulate)
    {
        var scaleVector = Vector256.Create(scale);
        int i = 0;
        if (Bits == 8)
        {
            for (; i + 32 <= target.Length; i += 32) Store32(Vector256.Create(bytes.Slice(i, 32)).AsSByte(), scaleVector, target.Slice(i), accumulate);
            return i;
        }
        for (; i + 64 <= target.Length; i += 64)
        {
            // Widening a byte to 16 bits puts its high nibble's room in the upper byte: the nibbles come out interleaved
            // in value order; (n ^ 8) − 8 sign-extends a 4-bit two's complement held in a byte.
            var (first, second) = Vector256.Widen(Vector256.Create(bytes.Slice(i >> 1, 32)));
            Store32(SignExtend(Spread(first)), scaleVector, target.Slice(i), accumulate);
            Store32(SignExtend(Spread(second)), scaleVector, target.Slice(i + 32), accumulate);
        }
        return i;
    }

    private static Vector256<sbyte> Spread(Vector256<ushort> bytes) => ((bytes & Vector256.Create((ushort)0x000F)) | ((bytes & Vector256.Create((ushort)0x00F0)) << 4)).AsSByte();

    private static Vector256<sbyte> SignExtend(Vector256<sbyte> nibbles) => (nibbles ^ Vector256.Create((sbyte)8)) - Vector256.Create((sbyte)8);

    private static void Store32(Vector256<sbyte> q, Vector256<float> scale, Span<float> target, bool accumulate)
    {
        var (low, high) = Vector256.Widen(q);
        var (a, b) = Vector256.Widen(low);
        var (c, d) = Vector256.Widen(high);
        Store8(a, scale, target, accumulate);
        Store8(b, scale, target.Slice(8), accumulate);
        Store8(c, scale, target.Slice(16), accumulate);
        Store8(d, scale, target.Slice(24), accumulate);
    }

    private static void Store8(Vector256<int> q, Vector256<float> scale, Span<float> target, bool accumulate)
    {
        var value = Vector256.ConvertToSingle(q) * scale;
        (accumulate ? Vector256.Create((ReadOnlySpan<float>)target.Slice(0, 8)) + value : value).CopyTo(target);
    }
}
