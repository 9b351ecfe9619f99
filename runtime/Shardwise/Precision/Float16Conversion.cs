using System;
using System.Numerics.Tensors;

namespace Shardwise.Precision;

/// <summary>float32 ↔ IEEE half precision, rounding to nearest even (vectorised by TensorPrimitives).</summary>
public static class Float16Conversion
{
    public static void ToHalf(ReadOnlySpan<float> source, Span<Half> destination)
    {
        RequireRoom(source.Length, destination.Length);
        TensorPrimitives.ConvertToHalf(source, destination);
    }

    public static void ToSingle(ReadOnlySpan<Half> source, Span<float> destination)
    {
        RequireRoom(source.Length, destination.Length);
        TensorPrimitives.ConvertToSingle(source, destination);
    }

    internal static void RequireRoom(int source, int destination)
    {
        if (destination < source)
        {
            throw new ArgumentException(
                $"The destination has {destination} elements, fewer than the source's {source}.", nameof(destination));
        }
    }
}
