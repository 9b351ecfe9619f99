using System;

namespace Shardwise.Precision;

/// <summary>How real values are stored in memory; arithmetic always runs in float32 or wider.</summary>
public enum StorageType
{
    Float32,
    Float16,
    /// <summary>bfloat16: float32's exponent with a 7-bit mantissa, stored as the upper half of the float's bits.</summary>
    BFloat16,
}

public static class StorageTypes
{
    public static int BytesPerElement(this StorageType type) => type switch
    {
        StorageType.Float32 => sizeof(float),
        StorageType.Float16 or StorageType.BFloat16 => sizeof(ushort),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown storage type."),
    };
}
