using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>Layer normalisation over the last dimension (biased variance, eps = 1e-5).</summary>
public static class LayerNormKernels
{
    public const double Epsilon = 1e-5;

    /// <summary>y = (x − mean) · rstd · gamma + beta per row; saves mean and rstd per row.</summary>
    public static void Forward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> y,
        Span<T> mean, Span<T> rstd, int rows, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T count = T.CreateChecked(dim);
        T epsilon = T.CreateChecked(Epsilon);
        ReadOnlySpan<T> g = gamma[..dim], b = beta[..dim];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> xRow = x.Slice(r * dim, dim);
            Span<T> yRow = y.Slice(r * dim, dim);
            T rowMean = TensorPrimitives.Sum(xRow) / count;
            // Centering first (into y) keeps the variance free of the cancellation in E[x²] − mean².
            TensorPrimitives.Subtract(xRow, rowMean, yRow);
            T rowRstd = T.One / T.Sqrt(TensorPrimitives.SumOfSquares<T>(yRow) / count + epsilon);
            TensorPrimitives.Multiply(yRow, rowRstd, yRow);
            TensorPrimitives.FusedMultiplyAdd(yRow, g, b, yRow);
            mean[r] = rowMean;
            rstd[r] = rowRstd;
        }
    }

    /// <summary>
    /// dx (=|+=) rstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · gamma; dGamma += Σ dy · x̂; dBeta += Σ dy.
    /// </summary>
    public static void Backward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> mean,
        ReadOnlySpan<T> rstd, ReadOnlySpan<T> dy, Span<T> dx, Span<T> dGamma, Span<T> dBeta, int rows, int dim,
        bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T count = T.CreateChecked(dim);
        ReadOnlySpan<T> g = gamma[..dim];
        Span<T> dG = dGamma[..dim], dB = dBeta[..dim];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> xRow = x.Slice(r * dim, dim);
            ReadOnlySpan<T> dyRow = dy.Slice(r * dim, dim);
            Span<T> dxRow = dx.Slice(r * dim, dim);
            T rowMean = mean[r], rowRstd = rstd[r];

            T sumG = T.Zero, sumGxHat = T.Zero;
            for (int j = 0; j < dim; j++)
            {
                T xHat = (xRow[j] - rowMean) * rowRstd;
                T gj = dyRow[j] * g[j];
                sumG += gj;
                sumGxHat += gj * xHat;
                dG[j] += dyRow[j] * xHat;
                dB[j] += dyRow[j];
            }

            T meanG = sumG / count, meanGxHat = sumGxHat / count;
            for (int j = 0; j < dim; j++)
            {
                T xHat = (xRow[j] - rowMean) * rowRstd;
                T gradient = rowRstd * (dyRow[j] * g[j] - meanG - xHat * meanGxHat);
                dxRow[j] = accumulate ? dxRow[j] + gradient : gradient;
            }
        }
    }
}
