using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>Fully connected layer, weights <c>[outDim, inDim]</c> as in PyTorch.</summary>
public static class LinearKernels
{
    /// <summary>y = x · Wᵀ + bias; an empty <paramref name="bias"/> means no bias.</summary>
    public static void Forward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, Span<T> y,
        int rows, int inDim, int outDim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool hasBias = !bias.IsEmpty;
        if (hasBias)
        {
            // Seeding y with the bias lets the product accumulate onto it (beta = 1) instead of a second pass.
            for (int r = 0; r < rows; r++) bias[..outDim].CopyTo(y.Slice(r * outDim, outDim));
        }

        Gemm.Multiply(false, true, rows, outDim, inDim, T.One, x, inDim, weight, inDim,
            hasBias ? T.One : T.Zero, y, outDim);
    }

    /// <summary>
    /// dx (=|+=) dy · W; dW += dyᵀ · x; dBias += Σ_rows dy. An empty <paramref name="dx"/> or
    /// <paramref name="dBias"/> is skipped.
    /// </summary>
    public static void Backward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> dy, Span<T> dx,
        Span<T> dWeight, Span<T> dBias, int rows, int inDim, int outDim, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!dx.IsEmpty)
        {
            Gemm.Multiply(false, false, rows, inDim, outDim, T.One, dy, outDim, weight, inDim,
                accumulate ? T.One : T.Zero, dx, inDim);
        }

        Gemm.Multiply(true, false, outDim, inDim, rows, T.One, dy, outDim, x, inDim, T.One, dWeight, inDim);

        if (!dBias.IsEmpty)
        {
            Span<T> biasGradient = dBias[..outDim];
            for (int r = 0; r < rows; r++) TensorPrimitives.Add(biasGradient, dy.Slice(r * outDim, outDim), biasGradient);
        }
    }

    /// <summary>y[r, :] += bias.</summary>
    public static void AddBias<T>(Span<T> y, ReadOnlySpan<T> bias, int rows, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(y.Slice(r * dim, dim), bias[..dim], y.Slice(r * dim, dim));
    }

    /// <summary>dBias += Σ_rows dy.</summary>
    public static void AddBiasBackward<T>(ReadOnlySpan<T> dy, Span<T> dBias, int rows, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> biasGradient = dBias[..dim];
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(biasGradient, dy.Slice(r * dim, dim), biasGradient);
    }
}
