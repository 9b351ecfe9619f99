using System;
using System.Linq;
using Shardwise.Cpu;

namespace Shardwise;

/// <summary>
/// An eager, row-major tensor: float32 values, or token indices (<see cref="IsTokens"/>). Eager forward methods
/// exchange these; the compiled program never sees them.
/// </summary>
public sealed class Tensor
{
    private readonly float[]? data;
    private readonly int[]? indices;

    private Tensor(int[] shape, float[]? data, int[]? indices)
    {
        Shape = shape;
        this.data = data;
        this.indices = indices;
    }

    public int[] Shape { get; }

    public int Rank => Shape.Length;

    /// <summary>Number of elements (1 for a scalar of shape []).</summary>
    public int Count => data?.Length ?? indices!.Length;

    public bool IsTokens => indices is not null;

    /// <summary>The float32 values; a token tensor has none.</summary>
    public float[] Data => data ?? throw new InvalidOperationException(
        $"Tensor {Describe(Shape)} holds token indices, not real values; use Indices.");

    /// <summary>The token indices; a real tensor has none.</summary>
    public int[] Indices => indices ?? throw new InvalidOperationException(
        $"Tensor {Describe(Shape)} holds real values, not token indices; use Data.");

    /// <summary>A real tensor over <paramref name="data"/> (not copied).</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        RequireCount(data.Length, shape, nameof(FromArray));
        return new Tensor((int[])shape.Clone(), data, null);
    }

    /// <summary>A token tensor over <paramref name="ids"/> (not copied).</summary>
    public static Tensor Tokens(int[] ids, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(ids);
        RequireCount(ids.Length, shape, nameof(Tokens));
        return new Tensor((int[])shape.Clone(), null, ids);
    }

    public static Tensor Zeros(params int[] shape) => new((int[])shape.Clone(), new float[ElementCount(shape)], null);

    /// <summary>Elementwise sum of two real tensors of the same shape (a residual connection).</summary>
    public static Tensor operator +(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.Shape.SequenceEqual(b.Shape))
        {
            throw new ArgumentException($"Cannot add tensors of shapes {Describe(a.Shape)} and {Describe(b.Shape)}.");
        }

        var sum = Zeros(a.Shape);
        AddKernels.Forward<float>(a.RealData("+"), b.RealData("+"), sum.Data);
        return sum;
    }

    /// <summary>For a <c>[batch, sequence]</c> token tensor: the token tensor holding t at [b, t].</summary>
    public Tensor Positions()
    {
        if (!IsTokens || Rank != 2)
        {
            throw new InvalidOperationException(
                $"Positions needs a [batch, sequence] token tensor, not a {Kind} tensor of shape {Describe(Shape)}.");
        }

        int batch = Shape[0], sequence = Shape[1];
        var positions = new int[batch * sequence];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < sequence; t++) positions[b * sequence + t] = t;
        }

        return Tokens(positions, Shape);
    }

    /// <summary>The value of a real tensor with exactly one element.</summary>
    public float Item()
    {
        float[] values = RealData(nameof(Item));
        if (values.Length != 1)
        {
            throw new InvalidOperationException(
                $"Item needs a tensor with one element, not one of shape {Describe(Shape)}.");
        }

        return values[0];
    }

    public override string ToString() => $"{Kind} tensor {Describe(Shape)}";

    /// <summary>Shapes as written in messages, e.g. [2, 5, 8].</summary>
    public static string Describe(int[] shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>The values of a real tensor, or an error naming the operation that needed them.</summary>
    internal float[] RealData(string operation) => data ?? throw new ArgumentException(
        $"{operation} needs a real tensor, but got a token tensor of shape {Describe(Shape)}.");

    /// <summary>The indices of a token tensor, or an error naming the operation that needed them.</summary>
    internal int[] TokenIndices(string operation) => indices ?? throw new ArgumentException(
        $"{operation} needs a token tensor, but got a real tensor of shape {Describe(Shape)}.");

    private string Kind => IsTokens ? "token" : "real";

    private static long ElementCount(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape {Describe(shape)} has a negative dimension.");
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException($"Shape {Describe(shape)} is too large.");
        }

        return count;
    }

    private static void RequireCount(int length, int[] shape, string factory)
    {
        long expected = ElementCount(shape);
        if (expected != length)
        {
            throw new ArgumentException(
                $"{factory}: shape {Describe(shape)} holds {expected} elements but {length} were given.");
        }
    }
}
