using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// quantize_rows.cu (activation quantization's per-token grids) against the CPU backend's quantizer (WeightQuantizer
/// with one group per row, what ActivationQuantizer hands CpuOps.Linear), on random rows of several widths, including
/// widths that are not multiples of the block.
/// </summary>
[TestClass]
public sealed class QuantizeRowsKernelTests
{
    private const int Threads = 256;

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void QuantizeRowsMatchesTheCpuQuantizer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(71);
        foreach (var type in new[] { QuantizationType.Symmetric, QuantizationType.Asymmetric })
        foreach (int bits in new[] { 4, 8 })
        foreach (var (rows, dim) in new[] { (1, 5), (3, 255), (2, 257), (2, 1000) })
        {
            // Rows of different ranges, so a row's grid is its own.
            float[] x = storage.Rounded(data.NonZero((long)rows * dim).Select((v, i) => v * (1 + 3 * (i / dim))).ToArray());
            float[] expected = (float[])x.Clone();
            WeightQuantizer.Quantize(expected, rows, bits, type, QuantizationRounding.Nearest, 0);
            Assert.IsTrue(expected.Zip(x).Count(p => p.First != p.Second) > dim / 4, "the grid moves most values");

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var yBuffer = DeviceBuffer.Zeroed((long)rows * dim, storage);
            SimtEmulator.Launch($"quantize_rows_{storage.Suffix()}", rows, Threads, order, xBuffer, yBuffer, dim, bits, type == QuantizationType.Asymmetric ? 1 : 0);
            Compare.Close(storage.Rounded(expected), yBuffer.ToFloats(), storage.Tolerance(), $"{type} {bits} bits, {rows} × {dim}");
        }
    }

    [TestMethod]
    public void AZeroRowIsCopied()
    {
        float[] x = new float[2 * 40];
        new TestData(72).NonZero(40).CopyTo(x, 40);
        using var xBuffer = DeviceBuffer.From(x, StorageType.Float32);
        using var yBuffer = DeviceBuffer.Zeroed(80, StorageType.Float32);
        SimtEmulator.Launch("quantize_rows_f32", 2, 64, SchedulerOrder.Forward, xBuffer, yBuffer, 40, 8, 0);
        float[] y = yBuffer.ToFloats();
        Assert.IsTrue(y.Take(40).All(v => v == 0), "an all-zero row stays zero (no division by a zero scale)");
        Assert.IsTrue(y.Skip(40).Zip(x.Skip(40)).Any(p => p.First != p.Second), "the other row is quantized");
    }
}
