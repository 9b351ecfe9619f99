using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>A tensor times a constant (progressive layer drop's branch scale).</summary>
public static class ScaleKernels
{
    /// <summary>y = factor · x; <paramref name="y"/> may be <paramref name="x"/>. A factor of 1 copies (exactly).</summary>
    public static void Forward<T>(ReadOnlySpan<T> x, Span<T> y, T factor)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (factor != T.One) TensorPrimitives.Multiply(x, factor, y);
        else if (!(x.Overlaps(y, out int offset) && offset == 0)) x.CopyTo(y); // in place by 1: nothing to do
    }
}
