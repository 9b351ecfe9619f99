using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// CudaOps' per-operation device timing (<see cref="CudaOpsProfiler"/>, bench --profile): every operation is counted
/// under its own name, times are positive, a long run (more operations than the event pool holds) loses none, and the
/// work outside the profiled window is not counted.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaProfilerTests
{
    [TestMethod]
    public void EveryOperationIsCountedUnderItsNameWithItsDeviceTime()
    {
        using CudaOps ops = GpuSupport.RequireCudaOps();
        const int count = 70_000, tiny = 33;
        ops.Allocate(Arena.Activations, 3L * count);
        Slice a = new(Arena.Activations, 0, count), b = new(Arena.Activations, count, count), y = new(Arena.Activations, 2L * count, count);
        ops.Load(new TestData(3).NonZero(count), a);
        ops.Load(new TestData(4).NonZero(count), b);
        ops.Gelu(a, y, count); // before the window: not counted

        ops.StartProfiling();
        for (int i = 0; i < 3; i++) ops.Gelu(a, y, count);
        ops.Add(a, b, y, count);
        ops.Add(a, b, y, count);
        // More operations than the profiler's event pool (4096): the pairs across its flush are counted too.
        for (int i = 0; i < 5000; i++) ops.GeluBackward(a, b, y, tiny, accumulate: false);
        IReadOnlyList<OperationTime> times = ops.StopProfiling();
        IReadOnlyList<OperationTime> operations = CudaOpsProfiler.ByOperation(times);

        foreach (OperationTime time in times) Console.WriteLine($"{time.Operation}: {time.Calls} calls, {time.Milliseconds:F3} ms");
        CollectionAssert.AreEquivalent(new[] { "Gelu", "Add", "GeluBackward" }, operations.Select(t => t.Operation).ToArray());
        Assert.AreEqual(3, operations.Single(t => t.Operation == "Gelu").Calls);
        Assert.AreEqual(2, operations.Single(t => t.Operation == "Add").Calls);
        Assert.AreEqual(5000, operations.Single(t => t.Operation == "GeluBackward").Calls);
        Assert.IsTrue(operations.All(t => t.Milliseconds > 0), "every operation took device time");
        Assert.IsTrue(times.All(t => t.HostMilliseconds >= 0), "host times are durations");
        CollectionAssert.AreEqual(operations.OrderByDescending(t => t.Milliseconds).ToArray(), operations.ToArray(), "largest first");
        Assert.AreEqual(times.Sum(t => t.Milliseconds), operations.Sum(t => t.Milliseconds), 1e-9, "the parts add up");

        // Each launch is marked inside its operation: one kernel per call of these three.
        string[] launches = times.Select(t => t.Operation).Where(name => name.Contains(CudaOpsProfiler.Separator)).ToArray();
        Assert.AreEqual(3, launches.Length, string.Join(", ", launches));
        foreach (string operation in new[] { "Gelu", "Add", "GeluBackward" })
        {
            OperationTime launch = times.Single(t => t.Operation.StartsWith(operation + CudaOpsProfiler.Separator, StringComparison.Ordinal));
            Assert.AreEqual(operations.Single(t => t.Operation == operation).Calls, launch.Calls, launch.Operation);
        }

        string table = CudaOpsProfiler.Describe(times, steps: 1, wallMillisecondsPerStep: 1000);
        StringAssert.Contains(table, "| GeluBackward | 5000 |");
        Assert.ThrowsExactly<InvalidOperationException>(() => ops.StopProfiling(), "stopping twice");
    }
}
