using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>scale.cu against CpuOps.Scale (progressive layer drop's branch scale).</summary>
[TestClass]
public sealed class ScaleKernelTests
{
    private const int Threads = 256;
    private static readonly long[] Counts = [1, 255, 257, 4099];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ScaleMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(64);
        foreach (float factor in new[] { 1f / 0.6f, 2f })
        foreach (long n in Counts)
        {
            float[] x = storage.Rounded(data.NonZero(n));
            var cpu = new CpuReference();
            Slice y = cpu.Zeros(n);
            cpu.Ops.Scale(cpu.Put(x), y, factor, n);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var yBuffer = DeviceBuffer.Zeroed(n, storage);
            // Fewer blocks than elements need, so the grid-stride loop runs more than once.
            SimtEmulator.Launch($"scale_{storage.Suffix()}", 3, Threads, order, xBuffer, yBuffer, factor, n);
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), storage.Tolerance(), $"n {n}, factor {factor}");
        }
    }

    [TestMethod]
    public void ScaleWorksInPlace()
    {
        float[] x = new TestData(65).NonZero(300);
        using var buffer = DeviceBuffer.From(x, StorageType.Float32);
        SimtEmulator.Launch("scale_f32", 1, 64, SchedulerOrder.Forward, buffer, buffer, 1.25f, 300L);
        float[] scaled = buffer.ToFloats();
        for (int i = 0; i < x.Length; i++) Assert.AreEqual(1.25f * x[i], scaled[i]);
    }
}
