using System;
using System.Runtime.Intrinsics;

namespace Shardwise.Training.Compression;

/// <summary>
/// The sign 1-bit compression keeps: +1 for a value that is not negative (zero and NaN count as positive, as DeepSpeed's
/// <c>sign().add_(1).bool()</c> does), else −1. Packed one bit per value, least significant bit first, a set bit for +1.
/// The passes over a buffer work on eight values (one byte of signs) at a time, as 256-bit vectors where the CPU has
/// them; every element gets the same arithmetic either way, so the vectors change the speed, never the values.
/// </summary>
internal static class SignBits
{
    // Byte b's eight signs as ±1 floats: what expanding a byte multiplies the scale by.
    private static readonly float[] Patterns = BuildPatterns();

    public static float Sign(float value) => value < 0 ? -1f : 1f;

    /// <summary>
    /// Σx² in double, in a fixed order: four running sums, element i into sum i mod 4, combined as (s0 + s1) + (s2 + s3),
    /// then the elements past the last multiple of 4 in order. The scale of a compressed chunk depends on it, and every
    /// rank (and the tests' reference) must round it alike.
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        if (!Vector256.IsHardwareAccelerated) return SumOfSquaresScalar(x);
        // Lane k of the double vectors is sum k: eight floats widen to elements i..i+3, then i+4..i+7.
        var sums = Vector256<double>.Zero;
        int i = 0;
        for (int whole8 = x.Length & ~7; i < whole8; i += 8)
        {
            var values = Vector256.Create(x.Slice(i, 8));
            var low = Vector256.WidenLower(values);
            var high = Vector256.WidenUpper(values);
            sums += low * low;
            sums += high * high;
        }
        return SumOfSquaresScalar(x, i, sums[0], sums[1], sums[2], sums[3]);
    }

    /// <summary>The same sums, one element at a time from <paramref name="start"/> (a multiple of 4) on.</summary>
    internal static double SumOfSquaresScalar(ReadOnlySpan<float> x, int start = 0, double s0 = 0, double s1 = 0, double s2 = 0, double s3 = 0)
    {
        int i = start, whole = x.Length & ~3;
        for (; i < whole; i += 4)
        {
            s0 += (double)x[i] * x[i];
            s1 += (double)x[i + 1] * x[i + 1];
            s2 += (double)x[i + 2] * x[i + 2];
            s3 += (double)x[i + 3] * x[i + 3];
        }
        double total = (s0 + s1) + (s2 + s3);
        for (; i < x.Length; i++) total += (double)x[i] * x[i];
        return total;
    }

    /// <summary>
    /// Compresses <paramref name="x"/> (a multiple of 8 long) to its signs in <paramref name="bits"/> and keeps what that
    /// loses, x − scale·sign, in <paramref name="error"/>.
    /// </summary>
    public static void Compress(ReadOnlySpan<float> x, float scale, Span<float> error, Span<byte> bits)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var scaleVector = Vector256.Create(scale);
            for (; j < bits.Length; j++)
            {
                var value = Vector256.Create(x.Slice(8 * j, 8));
                var negative = Vector256.LessThan(value, Vector256<float>.Zero);
                var sign = Vector256.ConditionalSelect(negative, Vector256.Create(-1f), Vector256.Create(1f));
                (value - scaleVector * sign).CopyTo(error.Slice(8 * j, 8));
                bits[j] = (byte)~negative.ExtractMostSignificantBits();
            }
        }
        CompressScalar(x, scale, error, bits, j);
    }

    /// <summary><see cref="Compress"/> one value at a time, from byte <paramref name="startByte"/> on.</summary>
    internal static void CompressScalar(ReadOnlySpan<float> x, float scale, Span<float> error, Span<byte> bits, int startByte = 0)
    {
        for (int j = startByte; j < bits.Length; j++)
        {
            int packed = 0;
            for (int k = 0; k < 8; k++)
            {
                float value = x[8 * j + k], sign = Sign(value);
                error[8 * j + k] = value - scale * sign;
                if (sign > 0) packed |= 1 << k;
            }
            bits[j] = (byte)packed;
        }
    }

    /// <summary>sum[i] += ±scale, the sign of bit i: one worker's contribution to a server's average.</summary>
    public static void Accumulate(Span<float> sum, ReadOnlySpan<byte> bits, float scale)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var scaleVector = Vector256.Create(scale);
            for (; j < bits.Length; j++)
            {
                var slice = sum.Slice(8 * j, 8);
                (Vector256.Create(slice) + Vector256.Create(Patterns.AsSpan(8 * bits[j], 8)) * scaleVector).CopyTo(slice);
            }
        }
        AccumulateScalar(sum, bits, scale, j);
    }

    /// <summary><see cref="Accumulate"/> one value at a time, from byte <paramref name="startByte"/> on.</summary>
    internal static void AccumulateScalar(Span<float> sum, ReadOnlySpan<byte> bits, float scale, int startByte = 0)
    {
        for (int j = startByte; j < bits.Length; j++)
        {
            int packed = bits[j];
            for (int k = 0; k < 8; k++) sum[8 * j + k] += ((packed >> k) & 1) != 0 ? scale : -scale;
        }
    }

    /// <summary>destination[i] = ±scale, the sign of bit i, for the destination's length (which may end inside a byte).</summary>
    public static void Expand(Span<float> destination, ReadOnlySpan<byte> bits, float scale)
    {
        int j = 0, whole = destination.Length / 8;
        if (Vector256.IsHardwareAccelerated)
        {
            var scaleVector = Vector256.Create(scale);
            for (; j < whole; j++) (Vector256.Create(Patterns.AsSpan(8 * bits[j], 8)) * scaleVector).CopyTo(destination.Slice(8 * j, 8));
        }
        ExpandScalar(destination, bits, scale, 8 * j);
    }

    /// <summary><see cref="Expand"/> one value at a time, from element <paramref name="start"/> on.</summary>
    internal static void ExpandScalar(Span<float> destination, ReadOnlySpan<byte> bits, float scale, int start = 0)
    {
        for (int i = start; i < destination.Length; i++) destination[i] = ((bits[i >> 3] >> (i & 7)) & 1) != 0 ? scale : -scale;
    }

    private static float[] BuildPatterns()
    {
        var patterns = new float[256 * 8];
        for (int b = 0; b < 256; b++)
            for (int k = 0; k < 8; k++) patterns[8 * b + k] = ((b >> k) & 1) != 0 ? 1f : -1f;
        return patterns;
    }
}
