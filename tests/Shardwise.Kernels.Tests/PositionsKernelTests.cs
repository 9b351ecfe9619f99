using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>positions.cu against CpuOps.Positions.</summary>
[TestClass]
public sealed class PositionsKernelTests
{
    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void PositionsCountWithinEachSample(SchedulerOrder order)
    {
        foreach ((int batch, int sequence) in new[] { (1, 1), (3, 7), (5, 64), (2, 300) })
        {
            int rows = batch * sequence;
            var cpu = new CpuReference();
            IndexSlice slice = cpu.PutIndices(new int[rows]);
            cpu.Ops.Positions(slice, batch, sequence);
            // The index arena cannot be read back, so look the positions up in a table whose row v holds v.
            Slice table = cpu.Put(Enumerable.Range(0, sequence).Select(v => (float)v).ToArray());
            Slice looked = cpu.Zeros(rows);
            cpu.Ops.Embedding(slice, table, looked, rows, 1);
            int[] expected = cpu.Read(looked).Select(v => (int)v).ToArray();

            using var buffer = DeviceBuffer.FromInts(Enumerable.Repeat(-1, rows).ToArray());
            SimtEmulator.Launch("positions_i32", 2, 128, order, buffer, batch, sequence);
            CollectionAssert.AreEqual(expected, buffer.ToInts(), $"batch {batch}, sequence {sequence}");
        }
    }
}
