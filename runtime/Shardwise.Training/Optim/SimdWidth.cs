using System.Runtime.Intrinsics;

namespace Shardwise.Training.Optim;

/// <summary>
/// Which vector width a kernel uses. Production code passes <see cref="Auto"/>; tests force each width
/// so the vector body and the scalar tail are checked against each other on any machine (a vector type
/// that is not hardware-accelerated still computes correctly, just slowly).
/// </summary>
internal enum SimdWidth
{
    Auto,
    Scalar,
    Vector256,
    Vector512,
}

internal static class SimdWidthExtensions
{
    public static SimdWidth Resolve(this SimdWidth width) => width switch
    {
        SimdWidth.Auto when Vector512.IsHardwareAccelerated => SimdWidth.Vector512,
        SimdWidth.Auto when Vector256.IsHardwareAccelerated => SimdWidth.Vector256,
        SimdWidth.Auto => SimdWidth.Scalar,
        _ => width,
    };
}
