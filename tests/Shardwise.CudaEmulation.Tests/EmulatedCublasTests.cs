using System;
using System.Collections.Generic;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// The emulated cuBLAS computes what cuBLAS documents — C = alpha·op(A)·op(B) + beta·C, column-major, with
/// lda/ldb/ldc padding and batch strides — for fp32, fp16 and bf16 storage, checked against a float64 product of the stored
/// inputs. The CudaOps paths that use it (and fp16/bf16 storage) rely on these semantics.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class EmulatedCublasTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (StorageType storage in new[] { StorageType.Float32, StorageType.Float16, StorageType.BFloat16 })
        foreach (CublasOperation transA in new[] { CublasOperation.None, CublasOperation.Transpose })
        foreach (CublasOperation transB in new[] { CublasOperation.None, CublasOperation.Transpose })
            yield return [storage, transA, transB];
    }

    private static CudaDataType TypeOf(StorageType storage) => storage switch
    {
        StorageType.Float32 => CudaDataType.Float32,
        StorageType.Float16 => CudaDataType.Float16,
        _ => CudaDataType.BFloat16,
    };

    /// <summary>Uploads values in the storage format (they are already rounded to it).</summary>
    private static DeviceMemory Upload(CudaContext context, StorageType storage, float[] values)
    {
        if (storage == StorageType.Float32)
        {
            var memory = DeviceMemory.Allocate<float>(context, values.Length);
            memory.Upload<float>(values);
            return memory;
        }

        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = storage == StorageType.Float16
                ? BitConverter.HalfToUInt16Bits((Half)values[i])
                : BFloat16Conversion.ToBFloat16(values[i]);
        }

        var result = DeviceMemory.Allocate<ushort>(context, values.Length);
        result.Upload<ushort>(bits);
        return result;
    }

    private static float[] Download(DeviceMemory memory, StorageType storage, int count)
    {
        var values = new float[count];
        if (storage == StorageType.Float32)
        {
            memory.Download<float>(values);
            return values;
        }

        var bits = new ushort[count];
        memory.Download<ushort>(bits);
        for (int i = 0; i < count; i++)
        {
            values[i] = storage == StorageType.Float16
                ? (float)BitConverter.UInt16BitsToHalf(bits[i])
                : BFloat16Conversion.ToSingle(bits[i]);
        }

        return values;
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void StridedBatchedGemmWithPaddedLeadingDimensionsMatchesAFloat64Product(StorageType storage,
        CublasOperation transA, CublasOperation transB)
    {
        if (!CudaRuntime.TryInitialize(out string reason)) GpuSupport.Unavailable(reason);
        using CudaContext context = CudaContext.Primary();
        const int m = 13, n = 7, k = 19, batch = 3;
        const float alpha = 0.7f, beta = -1.3f;
        bool ta = transA == CublasOperation.Transpose, tb = transB == CublasOperation.Transpose;
        // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k), column-major with 3 rows of padding.
        int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
        int lda = aRows + 3, ldb = bRows + 3, ldc = m + 3;
        long strideA = (long)lda * aCols + 5, strideB = (long)ldb * bCols + 2, strideC = (long)ldc * n + 1;
        var data = new TestData(40 + (int)storage * 4 + (ta ? 2 : 0) + (tb ? 1 : 0));
        float[] a = storage.Rounded(data.NonZero(strideA * batch));
        float[] b = storage.Rounded(data.NonZero(strideB * batch));
        float[] c = storage.Rounded(data.NonZero(strideC * batch));

        var expected = (float[])c.Clone(); // padding and gaps between batch members stay as they were
        for (int q = 0; q < batch; q++)
        for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++)
        {
            double sum = 0;
            for (int p = 0; p < k; p++)
            {
                double x = ta ? a[q * strideA + p + (long)i * lda] : a[q * strideA + i + (long)p * lda];
                double y = tb ? b[q * strideB + j + (long)p * ldb] : b[q * strideB + p + (long)j * ldb];
                sum += x * y;
            }

            long at = q * strideC + i + (long)j * ldc;
            expected[at] = (float)(alpha * sum + beta * c[at]);
        }

        using DeviceMemory da = Upload(context, storage, a), db = Upload(context, storage, b);
        using DeviceMemory dc = Upload(context, storage, c);
        using CublasHandle blas = CublasHandle.Create();
        CudaDataType type = TypeOf(storage);
        blas.GemmStridedBatchedEx(transA, transB, m, n, k, alpha, da.Pointer, type, lda, strideA, db.Pointer, type, ldb,
            strideB, beta, dc.Pointer, type, ldc, strideC, batch);
        context.Synchronize();
        float[] got = Download(dc, storage, c.Length);
        // fp32 accumulation of 19 products, then one rounding to the storage type.
        Compare.Close(expected, got, storage.Tolerance() * 4, $"{storage} {transA}/{transB}");
    }
}
