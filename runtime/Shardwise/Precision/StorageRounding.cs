using System;

namespace Shardwise.Precision;

/// <summary>
/// Rounds float32 values in place to what 16-bit storage would hold, so mixed precision runs on the CPU with the
/// same quantization of weights and gradients (and the same fp16 overflow to infinity) as on a GPU.
/// </summary>
public static class StorageRounding
{
    public static void RoundInPlace(Span<float> values, StorageType storage)
    {
        switch (storage)
        {
            case StorageType.Float32:
                return;
            case StorageType.Float16:
                for (int i = 0; i < values.Length; i++) values[i] = (float)(Half)values[i];
                return;
            case StorageType.BFloat16:
                for (int i = 0; i < values.Length; i++) values[i] = BFloat16Conversion.ToSingle(BFloat16Conversion.ToBFloat16(values[i]));
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(storage), storage, "unknown storage type");
        }
    }

    /// <summary>Rounds <paramref name="source"/> into <paramref name="destination"/> (the 16-bit working copy of fp32 masters).</summary>
    public static void Round(ReadOnlySpan<float> source, Span<float> destination, StorageType storage)
    {
        source.CopyTo(destination);
        RoundInPlace(destination, storage);
    }
}
