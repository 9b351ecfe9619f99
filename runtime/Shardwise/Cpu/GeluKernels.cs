using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>GeLU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
public static class GeluKernels
{
    private const double Sqrt2OverPi = 0.79788456080286535587989211986876;
    private const double Cubic = 0.044715;

    // Vectorised primitives need temporaries; fixed-size stack chunks keep them allocation-free and let x alias y.
    private const int Chunk = 256;

    /// <summary>y = GeLU(x).</summary>
    public static void Forward<T>(ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c = T.CreateChecked(Sqrt2OverPi), cubic = T.CreateChecked(Cubic), half = T.CreateChecked(0.5);
        Span<T> t = stackalloc T[Chunk];
        for (int start = 0; start < x.Length; start += Chunk)
        {
            int n = Math.Min(Chunk, x.Length - start);
            ReadOnlySpan<T> xs = x.Slice(start, n);
            Span<T> ts = t[..n];
            InnerTanh(xs, ts, c, cubic);
            TensorPrimitives.Add(ts, T.One, ts);
            TensorPrimitives.Multiply(ts, xs, ts);
            TensorPrimitives.Multiply(ts, half, y.Slice(start, n));
        }
    }

    /// <summary>dx (=|+=) dy · GeLU′(x), GeLU′ = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²).</summary>
    public static void Backward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c = T.CreateChecked(Sqrt2OverPi), cubic = T.CreateChecked(Cubic), half = T.CreateChecked(0.5);
        T threeCubic = T.CreateChecked(3 * Cubic);
        Span<T> t = stackalloc T[Chunk];
        Span<T> u = stackalloc T[Chunk];
        Span<T> w = stackalloc T[Chunk];
        for (int start = 0; start < x.Length; start += Chunk)
        {
            int n = Math.Min(Chunk, x.Length - start);
            ReadOnlySpan<T> xs = x.Slice(start, n);
            Span<T> ts = t[..n], us = u[..n], ws = w[..n];
            InnerTanh(xs, ts, c, cubic);

            // us = 0.5·c·x·(1 + 3·0.044715·x²)·(1 − t²)
            TensorPrimitives.Multiply(xs, xs, us);
            TensorPrimitives.Multiply(us, threeCubic * c * half, us);
            TensorPrimitives.Add(us, c * half, us);
            TensorPrimitives.Multiply(us, xs, us);
            TensorPrimitives.Multiply(ts, ts, ws);
            TensorPrimitives.Subtract(T.One, ws, ws);
            TensorPrimitives.Multiply(us, ws, us);
            // ts = 0.5·(1 + t) + us, the derivative
            TensorPrimitives.Add(ts, T.One, ts);
            TensorPrimitives.Multiply(ts, half, ts);
            TensorPrimitives.Add(ts, us, ts);

            // dx is written last, so it may alias dy.
            ReadOnlySpan<T> dys = dy.Slice(start, n);
            Span<T> dxs = dx.Slice(start, n);
            if (accumulate) TensorPrimitives.FusedMultiplyAdd(dys, ts, dxs, dxs);
            else TensorPrimitives.Multiply(dys, ts, dxs);
        }
    }

    /// <summary>t = tanh(√(2/π)·(x + 0.044715·x³)).</summary>
    private static void InnerTanh<T>(ReadOnlySpan<T> x, Span<T> t, T c, T cubic)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Multiply(x, x, t);
        TensorPrimitives.Multiply(t, cubic * c, t);
        TensorPrimitives.Add(t, c, t);
        TensorPrimitives.Multiply(t, x, t);
        TensorPrimitives.Tanh<T>(t, t);
    }
}
