using System;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

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
    /// Two passes per row over 256-bit vectors (the last dim mod lanes columns one at a time, with the same operations),
    /// so a row's two sums are added lane by lane and then across the lanes; dx may be dy.
    /// </summary>
    public static void Backward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> mean,
        ReadOnlySpan<T> rstd, ReadOnlySpan<T> dy, Span<T> dx, Span<T> dGamma, Span<T> dBeta, int rows, int dim,
        bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T count = T.CreateChecked(dim);
        ReadOnlySpan<T> g = gamma[..dim];
        Span<T> dG = dGamma[..dim], dB = dBeta[..dim];
        int lanes = Vector256<T>.Count, whole = dim - dim % lanes;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> xRow = x.Slice(r * dim, dim);
            ReadOnlySpan<T> dyRow = dy.Slice(r * dim, dim);
            Span<T> dxRow = dx.Slice(r * dim, dim);
            T rowMean = mean[r], rowRstd = rstd[r];
            Vector256<T> meanVector = Vector256.Create(rowMean), rstdVector = Vector256.Create(rowRstd);

            Vector256<T> sumGVector = Vector256<T>.Zero, sumGxHatVector = Vector256<T>.Zero;
            for (int j = 0; j < whole; j += lanes)
            {
                Vector256<T> dyj = Vector256.Create(dyRow.Slice(j, lanes));
                Vector256<T> xHat = (Vector256.Create(xRow.Slice(j, lanes)) - meanVector) * rstdVector;
                Vector256<T> gj = dyj * Vector256.Create(g.Slice(j, lanes));
                sumGVector += gj;
                sumGxHatVector += gj * xHat;
                (Vector256.Create<T>(dG.Slice(j, lanes)) + dyj * xHat).CopyTo(dG.Slice(j, lanes));
                (Vector256.Create<T>(dB.Slice(j, lanes)) + dyj).CopyTo(dB.Slice(j, lanes));
            }
            T sumG = Vector256.Sum(sumGVector), sumGxHat = Vector256.Sum(sumGxHatVector);
            for (int j = whole; j < dim; j++)
            {
                T xHat = (xRow[j] - rowMean) * rowRstd;
                T gj = dyRow[j] * g[j];
                sumG += gj;
                sumGxHat += gj * xHat;
                dG[j] += dyRow[j] * xHat;
                dB[j] += dyRow[j];
            }

            T meanG = sumG / count, meanGxHat = sumGxHat / count;
            Vector256<T> meanGVector = Vector256.Create(meanG), meanGxHatVector = Vector256.Create(meanGxHat);
            for (int j = 0; j < whole; j += lanes)
            {
                Vector256<T> xHat = (Vector256.Create(xRow.Slice(j, lanes)) - meanVector) * rstdVector;
                Vector256<T> gradient = rstdVector * (Vector256.Create(dyRow.Slice(j, lanes)) * Vector256.Create(g.Slice(j, lanes))
                    - meanGVector - xHat * meanGxHatVector);
                if (accumulate) gradient = Vector256.Create<T>(dxRow.Slice(j, lanes)) + gradient;
                gradient.CopyTo(dxRow.Slice(j, lanes));
            }
            for (int j = whole; j < dim; j++)
            {
                T xHat = (xRow[j] - rowMean) * rowRstd;
                T gradient = rowRstd * (dyRow[j] * g[j] - meanG - xHat * meanGxHat);
                dxRow[j] = accumulate ? dxRow[j] + gradient : gradient;
            }
        }
    }
}
