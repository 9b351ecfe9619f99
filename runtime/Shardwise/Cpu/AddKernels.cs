using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>Elementwise sum (residual connections) and its gradient.</summary>
public static class AddKernels
{
    /// <summary>y = a + b.</summary>
    public static void Forward<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        TensorPrimitives.Add(a, b, y);

    /// <summary>dx (=|+=) dy.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dy, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (accumulate) TensorPrimitives.Add(dx, dy, dx);
        else dy.CopyTo(dx);
    }
}
