using System;

namespace Shardwise.Training.Compression;

/// <summary>
/// One bit per value: set for a value that is not negative (zero and NaN count as positive, as DeepSpeed's
/// <c>sign().add_(1).bool()</c> does), least significant bit first. A set bit reads back as +1, a clear one as −1.
/// </summary>
internal static class SignBits
{
    /// <summary>+1 for a value that is not negative, else −1.</summary>
    public static float Sign(float value) => value < 0 ? -1f : 1f;

    public static void Set(Span<byte> bits, int index, bool positive)
    {
        if (positive) bits[index >> 3] |= (byte)(1 << (index & 7));
        else bits[index >> 3] &= (byte)~(1 << (index & 7));
    }

    public static float Read(ReadOnlySpan<byte> bits, int index) => (bits[index >> 3] >> (index & 7) & 1) != 0 ? 1f : -1f;
}
