using System;
using System.Numerics;
using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cpu;

/// <summary>
/// Row-major general matrix product on spans, backed by CBLAS on one thread per call; a large product is split into
/// row (or column) blocks of C over Shardwise's worker pool, so one mechanism owns the cores (a product started inside
/// a worker's chunk runs on that worker: the pool runs nested loops inline).
/// </summary>
public static class Gemm
{
    /// <summary>Multiply-adds below which a product runs on the calling thread alone.</summary>
    private const long SplitThreshold = 1 << 20;

    [ThreadStatic] private static GemmBlocks? blocks;

    static Gemm() => OpenBlas.UseOneThread();

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

        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
            throw new NotSupportedException($"Gemm supports float and double, not {typeof(T).Name}.");
        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* pc = c)
        {
            var product = new GemmBlocks.Product(typeof(T) == typeof(double), transposeA, transposeB, m, n, k,
                double.CreateTruncating(alpha), pa, lda, pb, ldb, double.CreateTruncating(beta), pc, ldc);
            long work = (long)m * n * k;
            // Split the longer side of C; blocks of at least 16 rows or columns keep each call efficient.
            int splitItems = m >= n ? m : n;
            int chunks = work < SplitThreshold ? 1 : Math.Min(ParallelRanges.ChunkCount(splitItems, work / splitItems), splitItems / 16);
            if (chunks <= 1)
            {
                product.Run(0, m, 0, n);
                return;
            }

            blocks ??= new GemmBlocks();
            blocks.Set(product, splitRows: m >= n);
            ParallelRanges.Run(splitItems, chunks, blocks);
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

/// <summary>The blocks of one product's C that the worker pool's chunks compute, each with its own CBLAS call.</summary>
internal sealed unsafe class GemmBlocks : IChunkWork
{
    private Product product;
    private bool splitRows;

    public void Set(Product product, bool splitRows) => (this.product, this.splitRows) = (product, splitRows);

    public void Run(int chunk, int start, int end)
    {
        if (splitRows) product.Run(start, end, 0, product.N);
        else product.Run(0, product.M, start, end);
    }

    /// <summary>c = alpha·op(a)·op(b) + beta·c as CBLAS takes it, element type float or double.</summary>
    internal readonly struct Product(bool isDouble, bool transposeA, bool transposeB, int m, int n, int k,
        double alpha, void* a, int lda, void* b, int ldb, double beta, void* c, int ldc)
    {
        public int M => m;

        public int N => n;

        /// <summary>Rows [rowStart, rowEnd) and columns [columnStart, columnEnd) of C.</summary>
        public void Run(int rowStart, int rowEnd, int columnStart, int columnEnd)
        {
            int size = isDouble ? sizeof(double) : sizeof(float);
            // op(a)'s rows rowStart… are a's rows (a[rowStart·lda]) or, transposed, a's columns (a[rowStart]);
            // op(b)'s columns columnStart… are b's columns (b[columnStart]) or, transposed, b's rows (b[columnStart·ldb]).
            byte* subA = (byte*)a + (long)(transposeA ? rowStart : rowStart * (long)lda) * size;
            byte* subB = (byte*)b + (long)(transposeB ? columnStart * (long)ldb : columnStart) * size;
            byte* subC = (byte*)c + ((long)rowStart * ldc + columnStart) * size;
            int rows = rowEnd - rowStart, columns = columnEnd - columnStart;
            int transA = transposeA ? OpenBlas.Transpose : OpenBlas.NoTranspose;
            int transB = transposeB ? OpenBlas.Transpose : OpenBlas.NoTranspose;
            if (isDouble)
                OpenBlas.Dgemm(OpenBlas.RowMajor, transA, transB, rows, columns, k, alpha, (double*)subA, lda, (double*)subB, ldb, beta, (double*)subC, ldc);
            else
                OpenBlas.Sgemm(OpenBlas.RowMajor, transA, transB, rows, columns, k, (float)alpha, (float*)subA, lda, (float*)subB, ldb, (float)beta, (float*)subC, ldc);
        }
    }
}
