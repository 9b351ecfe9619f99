using System;

namespace Shardwise.Checkpoints;

/// <summary>
/// Element types of the safetensors format. The members are declared in the same order as the Rust
/// reference implementation's <c>Dtype</c> enum (increasing alignment), because its writer sorts tensors by
/// descending dtype and we reproduce that order to produce byte-identical files.
/// </summary>
public enum SafeTensorDType
{
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

/// <summary>Header spelling and element size of each <see cref="SafeTensorDType"/>.</summary>
public static class SafeTensorDTypes
{
    /// <summary>Bytes per element; every safetensors dtype we support is byte aligned.</summary>
    public static int ElementSize(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.Bool or SafeTensorDType.U8 or SafeTensorDType.I8
            or SafeTensorDType.F8E5M2 or SafeTensorDType.F8E4M3 => 1,
        SafeTensorDType.I16 or SafeTensorDType.U16 or SafeTensorDType.F16 or SafeTensorDType.BF16 => 2,
        SafeTensorDType.I32 or SafeTensorDType.U32 or SafeTensorDType.F32 => 4,
        SafeTensorDType.F64 or SafeTensorDType.I64 or SafeTensorDType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown safetensors dtype"),
    };

    /// <summary>The string used in the JSON header, e.g. "F32", "BF16", "F8_E4M3".</summary>
    public static string HeaderName(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.Bool => "BOOL",
        SafeTensorDType.F8E5M2 => "F8_E5M2",
        SafeTensorDType.F8E4M3 => "F8_E4M3",
        SafeTensorDType.U8 or SafeTensorDType.I8 or SafeTensorDType.I16 or SafeTensorDType.U16
            or SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I32 or SafeTensorDType.U32
            or SafeTensorDType.F32 or SafeTensorDType.F64 or SafeTensorDType.I64 or SafeTensorDType.U64 => dtype.ToString(),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown safetensors dtype"),
    };

    /// <summary>Parses a header dtype string; exact, case-sensitive match as in the reference implementation.</summary>
    public static bool TryParseHeaderName(string name, out SafeTensorDType dtype)
    {
        foreach (var candidate in Enum.GetValues<SafeTensorDType>())
        {
            if (string.Equals(candidate.HeaderName(), name, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }

        dtype = default;
        return false;
    }
}
