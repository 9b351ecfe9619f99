namespace Shardwise.Training.Compression;

/// <summary>
/// The sign 1-bit compression keeps: +1 for a value that is not negative (zero and NaN count as positive, as DeepSpeed's
/// <c>sign().add_(1).bool()</c> does), else −1. Packed one bit per value, least significant bit first, a set bit for +1.
/// </summary>
internal static class SignBits
{
    public static float Sign(float value) => value < 0 ? -1f : 1f;
}
