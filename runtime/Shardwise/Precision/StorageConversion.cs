using System;
using System.Runtime.InteropServices;

namespace Shardwise.Precision;

/// <summary>
/// float32 ↔ the bit patterns of a 16-bit <see cref="StorageType"/> (what a 16-bit device arena holds), with exactly
/// the rounding of <see cref="StorageRounding"/>: round to nearest, ties to even; fp16 overflows to infinity.
/// Widening is exact, so <c>Widen(Narrow(x)) == StorageRounding.Round(x)</c> for every float, NaN aside (a NaN stays NaN).
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
                BFloat16Conversion.ToBFloat16(source, destination);
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
                BFloat16Conversion.ToSingle(source, destination);
                return;
            default:
                throw NotSixteenBit(storage);
        }
    }

    private static ArgumentOutOfRangeException NotSixteenBit(StorageType storage) =>
        new(nameof(storage), storage, "StorageConversion converts to and from the 16-bit storage types (Float16, BFloat16) only.");
}
