using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Shardwise.Precision;

/// <summary>
/// float32 ↔ the bit patterns of a 16-bit <see cref="StorageType"/> (what a 16-bit device arena holds), with exactly
/// the rounding of <see cref="StorageRounding"/>: round to nearest, ties to even; fp16 overflows to infinity.
/// Widening is exact, so <c>Widen(Narrow(x)) == StorageRounding.Round(x)</c> for every float, NaN aside (a NaN stays NaN).
/// Both directions are vectorised (fp16 by TensorPrimitives, bf16 here with the same bit arithmetic as
/// <see cref="BFloat16Conversion"/>), because a 16-bit CUDA arena converts whole arenas on every View.
/// </summary>
public static class StorageConversion
{
    /// <summary>Rounds <paramref name="source"/> to 16-bit <paramref name="storage"/> bit patterns.</summary>
    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination, StorageType storage)
    {
        switch (storage)
        {
            case StorageType.Float16:
                Float16Conversion.ToHalf(source, MemoryMarshal.Cast<ushort, Half>(destination));
                return;
            case StorageType.BFloat16:
                NarrowToBFloat16(source, destination);
                return;
            default:
                throw NotSixteenBit(storage);
        }
    }

    /// <summary>Widens 16-bit <paramref name="storage"/> bit patterns to float32 (exact).</summary>
    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination, StorageType storage)
    {
        switch (storage)
        {
            case StorageType.Float16:
                Float16Conversion.ToSingle(MemoryMarshal.Cast<ushort, Half>(source), destination);
                return;
            case StorageType.BFloat16:
                WidenFromBFloat16(source, destination);
                return;
            default:
                throw NotSixteenBit(storage);
        }
    }

    /// <summary>
    /// <see cref="BFloat16Conversion.ToBFloat16(float)"/> on whole vectors: add 0x7FFF plus the lowest kept bit and keep
    /// the upper half (ties to even, carries reach infinity); NaNs keep their upper half with the quiet bit forced.
    /// </summary>
    private static void NarrowToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        Float16Conversion.RequireRoom(source.Length, destination.Length);
        ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(source);
        int width = Vector<uint>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var bias = new Vector<uint>(0x7FFFu);
            var one = new Vector<uint>(1u);
            var magnitudeMask = new Vector<uint>(0x7FFFFFFFu);
            var infinity = new Vector<uint>(0x7F800000u);
            var quiet = new Vector<uint>(0x40u);
            for (; i + 2 * width <= bits.Length; i += 2 * width)
            {
                Vector<uint> low = Narrow(new Vector<uint>(bits.Slice(i, width)), bias, one, magnitudeMask, infinity, quiet);
                Vector<uint> high = Narrow(new Vector<uint>(bits.Slice(i + width, width)), bias, one, magnitudeMask, infinity, quiet);
                Vector.Narrow(low, high).CopyTo(destination.Slice(i, 2 * width));
            }
        }

        for (; i < bits.Length; i++) destination[i] = BFloat16Conversion.ToBFloat16(source[i]);
    }

    private static Vector<uint> Narrow(Vector<uint> x, Vector<uint> bias, Vector<uint> one, Vector<uint> magnitudeMask,
        Vector<uint> infinity, Vector<uint> quiet)
    {
        Vector<uint> rounded = (x + bias + (Vector.ShiftRightLogical(x, 16) & one)) >> 16;
        Vector<uint> nan = Vector.ShiftRightLogical(x, 16) | quiet;
        return Vector.ConditionalSelect(Vector.GreaterThan(x & magnitudeMask, infinity), nan, rounded);
    }

    /// <summary>bfloat16 → float32: the bits become the upper half of the float (exact).</summary>
    private static void WidenFromBFloat16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Float16Conversion.RequireRoom(source.Length, destination.Length);
        Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
        int width = Vector<ushort>.Count, half = Vector<uint>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + width <= source.Length; i += width)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, width)), out Vector<uint> low, out Vector<uint> high);
                (low << 16).CopyTo(bits.Slice(i, half));
                (high << 16).CopyTo(bits.Slice(i + half, half));
            }
        }

        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    private static ArgumentOutOfRangeException NotSixteenBit(StorageType storage) =>
        new(nameof(storage), storage, "StorageConversion converts to and from the 16-bit storage types (Float16, BFloat16) only.");
}
