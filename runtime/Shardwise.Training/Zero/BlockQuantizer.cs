using System;
using System.Numerics.Tensors;
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
    public void Encode(ReadOnlySpan<float> values, Span<float> encoded)
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
            if (Bits == 8)
            {
                var target = MemoryMarshal.Cast<byte, sbyte>(bytes.Slice(start, chunk.Length));
                for (int i = 0; i < chunk.Length; i++) target[i] = (sbyte)Quantize(chunk[i], inverse);
            }
            else
            {
                for (int i = 0; i < chunk.Length; i++)
                {
                    int at = start + i;
                    int nibble = Quantize(chunk[i], inverse) & 0xF;
                    bytes[at >> 1] |= (byte)((at & 1) == 0 ? nibble : nibble << 4);
                }
            }
        }
    }

    /// <summary>Decodes <paramref name="values"/>.Length values from <paramref name="encoded"/>.</summary>
    public void Decode(ReadOnlySpan<float> encoded, Span<float> values) => Decode(encoded, values, accumulate: false);

    /// <summary>Adds the <paramref name="values"/>.Length decoded values to <paramref name="values"/> (qgZ's sum over senders).</summary>
    public void DecodeAdd(ReadOnlySpan<float> encoded, Span<float> values) => Decode(encoded, values, accumulate: true);

    private void Decode(ReadOnlySpan<float> encoded, Span<float> values, bool accumulate)
    {
        int blocks = Blocks(values.Length);
        var scales = encoded.Slice(0, blocks);
        var bytes = MemoryMarshal.AsBytes(encoded.Slice(blocks, EncodedLength(values.Length) - blocks));
        for (int block = 0; block < blocks; block++)
        {
            int start = block * BlockElements, length = Math.Min(BlockElements, values.Length - start);
            float scale = scales[block];
            var target = values.Slice(start, length);
            for (int i = 0; i < length; i++)
            {
                int at = start + i;
                int q = Bits == 8 ? (sbyte)bytes[at] : SignExtendNibble(bytes[at >> 1] >> ((at & 1) * 4));
                float value = q * scale;
                target[i] = accumulate ? target[i] + value : value;
            }
        }
    }

    private int Quantize(float value, float inverse) => Math.Clamp((int)MathF.Round(value * inverse), -Levels, Levels);

    private static int SignExtendNibble(int bits) => (bits << 28) >> 28;
}
