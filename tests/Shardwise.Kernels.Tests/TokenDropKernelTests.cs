using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// token_drop.cu against CpuOps.GatherTokens / ScatterTokens and their backward (random-LTD), on the SIMT emulation.
/// Copies must match bit for bit; the accumulating backward rounds one fp32 sum to storage.
/// </summary>
[TestClass]
public sealed class TokenDropKernelTests
{
    // Fewer threads than most rows are wide, so the threads stride over a row more than once.
    private const int Threads = 64;

    // (batch, sequence, kept, dim): one token; a few kept of many; every token kept; dims that are not a multiple of
    // the block (5, 130, 257) and one that is (64).
    private static readonly (int Batch, int Sequence, int Kept, int Dim)[] Shapes =
        [(1, 1, 1, 1), (2, 7, 3, 5), (3, 16, 16, 130), (2, 33, 10, 257), (4, 9, 1, 64)];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GatherPacksTheKeptRows(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(90);
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            float[] x = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            float[] stale = storage.Rounded(data.NonZero((long)batch * kept * dim)); // every element is overwritten
            var cpu = new CpuReference();
            Slice y = cpu.Put(stale);
            cpu.Ops.GatherTokens(cpu.Put(x), cpu.PutIndices(tokens), y, batch, sequence, kept, dim);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var keptBuffer = DeviceBuffer.FromInts(tokens);
            using var yBuffer = DeviceBuffer.From(stale, storage);
            SimtEmulator.Launch($"gather_tokens_{storage.Suffix()}", batch * kept, Threads, order,
                xBuffer, keptBuffer, yBuffer, batch, sequence, kept, dim);
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), 0f, Label(batch, sequence, kept, dim));
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GatherBackwardScattersTheGradientRows(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(91);
        foreach (bool accumulate in new[] { false, true })
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            float[] dy = storage.Rounded(data.NonZero((long)batch * kept * dim));
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            float[] dxBefore = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            var cpu = new CpuReference();
            Slice dx = cpu.Put(dxBefore);
            cpu.Ops.GatherTokensBackward(cpu.Put(dy), cpu.PutIndices(tokens), dx, batch, sequence, kept, dim, accumulate);

            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var keptBuffer = DeviceBuffer.FromInts(tokens);
            using var dxBuffer = DeviceBuffer.From(dxBefore, storage);
            SimtEmulator.Launch($"gather_tokens_backward_{storage.Suffix()}", batch * sequence, Threads, order,
                dyBuffer, keptBuffer, dxBuffer, batch, sequence, kept, dim, accumulate ? 1 : 0);
            Compare.Close(cpu.Read(dx), dxBuffer.ToFloats(), accumulate ? storage.Tolerance() : 0f,
                $"{Label(batch, sequence, kept, dim)}, accumulate {accumulate}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ScatterTakesTheLayerRowsWhereKeptAndTheInputElsewhere(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(92);
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            float[] x = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            float[] layer = storage.Rounded(data.NonZero((long)batch * kept * dim));
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            float[] stale = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            var cpu = new CpuReference();
            Slice y = cpu.Put(stale);
            cpu.Ops.ScatterTokens(cpu.Put(x), cpu.Put(layer), cpu.PutIndices(tokens), y, batch, sequence, kept, dim);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var layerBuffer = DeviceBuffer.From(layer, storage);
            using var keptBuffer = DeviceBuffer.FromInts(tokens);
            using var yBuffer = DeviceBuffer.From(stale, storage);
            SimtEmulator.Launch($"scatter_tokens_{storage.Suffix()}", batch * sequence, Threads, order,
                xBuffer, layerBuffer, keptBuffer, yBuffer, batch, sequence, kept, dim);
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), 0f, Label(batch, sequence, kept, dim));
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ScatterBackwardPassesTheGradientOfTheTokensNotKept(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(93);
        foreach (bool accumulate in new[] { false, true })
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            float[] dy = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            float[] dxBefore = storage.Rounded(data.NonZero((long)batch * sequence * dim));
            var cpu = new CpuReference();
            Slice dx = cpu.Put(dxBefore);
            cpu.Ops.ScatterTokensBackward(cpu.Put(dy), cpu.PutIndices(tokens), dx, batch, sequence, kept, dim, accumulate);

            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var keptBuffer = DeviceBuffer.FromInts(tokens);
            using var dxBuffer = DeviceBuffer.From(dxBefore, storage);
            SimtEmulator.Launch($"scatter_tokens_backward_{storage.Suffix()}", batch * sequence, Threads, order,
                dyBuffer, keptBuffer, dxBuffer, batch, sequence, kept, dim, accumulate ? 1 : 0);
            Compare.Close(cpu.Read(dx), dxBuffer.ToFloats(), accumulate ? storage.Tolerance() : 0f,
                $"{Label(batch, sequence, kept, dim)}, accumulate {accumulate}");
        }
    }

    private static string Label(int batch, int sequence, int kept, int dim) =>
        $"batch {batch}, sequence {sequence}, kept {kept}, dim {dim}";
}
