using System;
using System.Runtime.Intrinsics;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Precision;

/// <summary>
/// Detects inf/NaN in a gradient buffer: a float is non-finite exactly when all its exponent bits are set,
/// so one AND and one compare per lane decide it, with no per-element branch.
/// </summary>
public static class OverflowCheck
{
    private const uint ExponentMask = 0x7F80_0000;

    public static bool HasInfOrNaN(ReadOnlySpan<float> values) => HasInfOrNaN(values, SimdWidth.Auto);

    internal static bool HasInfOrNaN(ReadOnlySpan<float> values, SimdWidth width)
    {
        var i = 0;
        switch (width.Resolve())
        {
            case SimdWidth.Vector512:
                var mask512 = Vector512.Create(ExponentMask);
                for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
                {
                    var bits = Vector512.Create(values[i..]).AsUInt32() & mask512;
                    if (Vector512.EqualsAny(bits, mask512))
                    {
                        return true;
                    }
                }

                break;
            case SimdWidth.Vector256:
                var mask256 = Vector256.Create(ExponentMask);
                for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    var bits = Vector256.Create(values[i..]).AsUInt32() & mask256;
                    if (Vector256.EqualsAny(bits, mask256))
                    {
                        return true;
                    }
                }

                break;
        }

        for (; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return true;
            }
        }

        return false;
    }
}
