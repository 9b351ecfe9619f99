using System;
using System.Numerics;
using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cpu;

/// <summary>Row-major general matrix product on spans, backed by CBLAS.</summary>
public static class Gemm
{
    /// <summary>
    /// c = alpha · op(a) · op(b) + beta · c, where op(a) is m×k, op(b) is k×n and c is m×n; each matrix is read with
    /// its leading dimension, so sub-matrices of wider layouts (a head inside qkv) need no copy. beta = 0 ignores c's
    /// previous contents.
    /// </summary>
    public static unsafe void Multiply<T>(bool transposeA, bool transposeB, int m, int n, int k,
        T alpha, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        // BLAS reads outside the span without complaint, so a wrong size must fail here instead.
        RequireMatrix(a.Length, transposeA ? k : m, transposeA ? m : k, lda, nameof(a));
        RequireMatrix(b.Length, transposeB ? n : k, transposeB ? k : n, ldb, nameof(b));
        RequireMatrix(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            ScaleMatrix(c, m, n, ldc, beta);
            return;
        }

        int transA = transposeA ? OpenBlas.Transpose : OpenBlas.NoTranspose;
        int transB = transposeB ? OpenBlas.Transpose : OpenBlas.NoTranspose;
        if (typeof(T) == typeof(float))
        {
            fixed (float* pa = MemoryMarshal.Cast<T, float>(a))
            fixed (float* pb = MemoryMarshal.Cast<T, float>(b))
            fixed (float* pc = MemoryMarshal.Cast<T, float>(c))
            {
                OpenBlas.Sgemm(OpenBlas.RowMajor, transA, transB, m, n, k,
                    float.CreateTruncating(alpha), pa, lda, pb, ldb, float.CreateTruncating(beta), pc, ldc);
            }
        }
        else if (typeof(T) == typeof(double))
        {
            fixed (double* pa = MemoryMarshal.Cast<T, double>(a))
            fixed (double* pb = MemoryMarshal.Cast<T, double>(b))
            fixed (double* pc = MemoryMarshal.Cast<T, double>(c))
            {
                OpenBlas.Dgemm(OpenBlas.RowMajor, transA, transB, m, n, k,
                    double.CreateTruncating(alpha), pa, lda, pb, ldb, double.CreateTruncating(beta), pc, ldc);
            }
        }
        else
        {
            throw new NotSupportedException($"Gemm supports float and double, not {typeof(T).Name}.");
        }
    }

    private static void RequireMatrix(int available, int rows, int columns, int leadingDimension, string name)
    {
        if (leadingDimension < Math.Max(1, columns))
        {
            throw new ArgumentOutOfRangeException(name,
                $"Leading dimension {leadingDimension} of {name} is smaller than its {columns} columns.");
        }

        long needed = rows == 0 ? 0 : (long)(rows - 1) * leadingDimension + columns;
        if (available < needed)
        {
            throw new ArgumentException(
                $"Matrix {name} ({rows}×{columns}, leading dimension {leadingDimension}) needs {needed} elements " +
                $"but its span has {available}.", name);
        }
    }

    private static void ScaleMatrix<T>(Span<T> c, int m, int n, int ldc, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            Span<T> row = c.Slice(i * ldc, n);
            if (T.IsZero(beta)) row.Clear();
            else System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }
}
