using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// CudaOps.AddLayerNorm (one residual_layernorm_forward launch) in fp32, fp16 and bf16 storage, with the sum in its own
/// buffer or in place of either operand (category "Gpu": inconclusive without a GPU; run on the emulated device by
/// Shardwise.CudaEmulation.Tests):
/// <list type="bullet">
/// <item>against CpuOps&lt;float&gt;: Add, the sum rounded to the storage type (as the device stores it), then
/// LayerNorm; tolerances as in <see cref="CudaOpsHalfTests"/> (2u + fp32 slack for what is stored once, fp32 for the
/// statistics);</item>
/// <item>against the device's own Add then LayerNorm: bit for bit, which is what lets the generator fuse the pair
/// without changing what a program computes on the GPU.</item>
/// </list>
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaAddLayerNormTests
{
    /// <summary>fp32 slack for the same row sums in another order (as in <see cref="CudaOpsTests"/>).</summary>
    private const float Summed = 1e-4f;

    /// <summary>
    /// Rows × dim, and the slices' offset from a 16-byte boundary in elements: one short row, sizes off the warp and
    /// block multiples, a row past 1024 (the scalar kernel), GPT-2's width and a narrow row on 16-byte boundaries (the
    /// vector kernels), and GPT-2's width one element off them (the scalar kernel again).
    /// </summary>
    private static readonly (int Rows, int Dim, int Offset)[] Shapes =
        [(1, 5, 0), (37, 130, 0), (9, 1030, 0), (300, 768, 0), (7, 256, 0), (300, 768, 1)];

    public enum SumIn { OwnBuffer, A, B }

    public static System.Collections.Generic.IEnumerable<object[]> Cases()
    {
        foreach (StorageType storage in new[] { StorageType.Float32, StorageType.Float16, StorageType.BFloat16 })
        foreach (SumIn where in new[] { SumIn.OwnBuffer, SumIn.A, SumIn.B })
            yield return [storage, where];
    }

    private static TwinBackends Twins(StorageType storage, int seed) =>
        new(GpuSupport.RequireCudaOps(storage: storage), seed, activations: 1 << 22);

    private static Slice Pick(SumIn where, Slice a, Slice b, Slice own) => where switch { SumIn.A => a, SumIn.B => b, _ => own };

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void MatchesCpuAddThenLayerNormOfTheStoredSum(StorageType storage, SumIn where)
    {
        using TwinBackends twins = Twins(storage, 31 + (int)where);
        float once = 2 * storage.UnitRoundoff() + Summed;
        foreach ((int rows, int dim, int offset) in Shapes)
        {
            string at = $"{storage}, {rows}×{dim} at offset {offset}, sum in {where}";
            long n = (long)rows * dim;
            twins.AlignTo(8, offset);
            Slice a = twins.Random(n, 3f), b = twins.Random(n), own = twins.Random(n);
            Slice gamma = twins.Random(dim), beta = twins.Random(dim);
            Slice y = twins.Random(n), mean = twins.Statistics(rows), rstd = twins.Statistics(rows);
            Slice sum = Pick(where, a, b, own);

            twins.Gpu.AddLayerNorm(a, b, sum, gamma, beta, y, mean, rstd, rows, dim);
            twins.Cpu.Add(a, b, sum, n);
            twins.AssertClose(sum, once, $"sum, {at}");
            // The device normalises the sum as stored: round the CPU's to the storage type before its LayerNorm.
            var stored = new float[n];
            twins.Cpu.Store(sum, stored);
            StorageRounding.RoundInPlace(stored, storage);
            twins.Cpu.Load(stored, sum);
            twins.Cpu.LayerNorm(sum, gamma, beta, y, mean, rstd, rows, dim);

            twins.AssertClose(sum, 0f, $"stored sum, {at}");
            twins.AssertClose(y, once, $"y, {at}");
            twins.AssertStatisticsClose(mean, Summed, $"mean, {at}");
            twins.AssertStatisticsClose(rstd, Summed, $"rstd, {at}");
        }

        // Nothing outside the outputs changed (the untouched operand and the spare sum buffer included).
        twins.AssertArenasClose(once, $"{storage}, sum in {where}: every slice");
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void IsBitForBitTheDevicesAddThenLayerNorm(StorageType storage, SumIn where)
    {
        using TwinBackends twins = Twins(storage, 47 + (int)where);
        var gpu = twins.Gpu;
        foreach ((int rows, int dim, int offset) in Shapes)
        {
            string at = $"{storage}, {rows}×{dim} at offset {offset}, sum in {where}";
            long n = (long)rows * dim;
            twins.AlignTo(8, offset);
            Slice a = twins.Random(n, 3f), b = twins.Random(n), gamma = twins.Random(dim), beta = twins.Random(dim);
            // The unfused run gets its own copies of everything it writes or, in place, overwrites.
            Slice a2 = twins.Random(n), b2 = twins.Random(n);
            CopyOnDevice(gpu, a, a2);
            CopyOnDevice(gpu, b, b2);
            Slice own = twins.Random(n), own2 = twins.Random(n);
            Slice y = twins.Random(n), y2 = twins.Random(n);
            Slice mean = twins.Statistics(rows), mean2 = twins.Statistics(rows), rstd = twins.Statistics(rows), rstd2 = twins.Statistics(rows);

            Slice sum = Pick(where, a, b, own), sum2 = Pick(where, a2, b2, own2);
            gpu.AddLayerNorm(a, b, sum, gamma, beta, y, mean, rstd, rows, dim);
            gpu.Add(a2, b2, sum2, n);
            gpu.LayerNorm(sum2, gamma, beta, y2, mean2, rstd2, rows, dim);

            AssertSameBits(Read(gpu, sum2), Read(gpu, sum), $"sum, {at}");
            AssertSameBits(Read(gpu, y2), Read(gpu, y), $"y, {at}");
            AssertSameBits(ReadStatistics(gpu, mean2, rows), ReadStatistics(gpu, mean, rows), $"mean, {at}");
            AssertSameBits(ReadStatistics(gpu, rstd2, rows), ReadStatistics(gpu, rstd, rows), $"rstd, {at}");
            if (where != SumIn.A) AssertSameBits(Read(gpu, a2), Read(gpu, a), $"a unchanged, {at}");
            if (where != SumIn.B) AssertSameBits(Read(gpu, b2), Read(gpu, b), $"b unchanged, {at}");
        }
    }

    private static void CopyOnDevice(Shardwise.Cuda.CudaOps gpu, Slice from, Slice to) => gpu.Load(Read(gpu, from), to);

    private static float[] Read(Shardwise.Cuda.CudaOps gpu, Slice slice)
    {
        var values = new float[slice.Length];
        gpu.Store(slice, values);
        return values;
    }

    private static float[] ReadStatistics(Shardwise.Cuda.CudaOps gpu, Slice slice, int rows)
    {
        var values = new float[rows];
        gpu.StoreStatistics(slice, values);
        return values;
    }

    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, the unfused ops give {expected[i]:R}");
        }
    }
}
