using System;

namespace Shardwise.Precision;

/// <summary>
/// float32 ↔ bfloat16 stored as <see cref="ushort"/> bit patterns (.NET 10 has no bfloat16 type). Narrowing rounds
/// to nearest, ties to even, like PyTorch and the hardware; NaNs stay NaN with their sign.
/// </summary>
public static class BFloat16Conversion
{
    public static void ToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        Float16Conversion.RequireRoom(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++) destination[i] = ToBFloat16(source[i]);
    }

    public static void ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Float16Conversion.RequireRoom(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++) destination[i] = ToSingle(source[i]);
    }

    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        // Truncating a NaN whose payload sits only in the low bits would turn it into infinity; force the quiet bit.
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        // Adding 0x7FFF plus the lowest kept bit rounds half-way cases towards the even neighbour; a carry out of
        // the mantissa correctly bumps the exponent, up to infinity.
        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    public static float ToSingle(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);
}
