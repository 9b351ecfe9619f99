using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// CpuOps' profiler (<c>bench --profile</c> on the CPU): every call of an operation counted once, under the outermost
/// operation when a fused op runs the unfused ones; times that add up to no more than the wall clock around them; a
/// throwing operation leaves the profiler counting the next ones; results unchanged by profiling.
/// </summary>
[TestClass]
public sealed class CpuProfilerTests
{
    private const int Rows = 24, InDim = 40, OutDim = 56;

    [TestMethod]
    public void EveryCallIsCountedOnceUnderItsOutermostOperation()
    {
        var harness = new OpHarness<float>();
        var (x, weight, bias, pre, y) = Operands(harness);
        var clock = Stopwatch.StartNew();
        harness.Ops.StartProfiling();
        for (int i = 0; i < 2; i++) harness.Ops.LinearGelu(x, weight, bias, pre, y, Rows, InDim, OutDim);
        for (int i = 0; i < 3; i++) harness.Ops.Linear(x, weight, bias, pre, Rows, InDim, OutDim);
        harness.Ops.Gelu(pre, y, (long)Rows * OutDim);
        IReadOnlyList<OperationTime> times = harness.Ops.StopProfiling();
        double wall = clock.Elapsed.TotalMilliseconds;

        var calls = times.ToDictionary(t => t.Operation, t => t.Calls);
        CollectionAssert.AreEquivalent(new[] { "LinearGelu", "Linear", "Gelu" }, calls.Keys.ToArray(),
            "LinearGelu's inner Linear and Gelu are not counted on their own");
        Assert.AreEqual(2, calls["LinearGelu"]);
        Assert.AreEqual(3, calls["Linear"]);
        Assert.AreEqual(1, calls["Gelu"]);
        Assert.IsTrue(times.All(t => t.Milliseconds > 0 && t.HostMilliseconds == t.Milliseconds), "every call took some time");
        Assert.IsTrue(times.Sum(t => t.Milliseconds) <= wall, "the operations' times fit in the wall clock around them");
        for (int i = 1; i < times.Count; i++) Assert.IsTrue(times[i - 1].Milliseconds >= times[i].Milliseconds, "largest first");

        // Stopped: later calls are not counted, and a new run starts from nothing.
        harness.Ops.Linear(x, weight, bias, pre, Rows, InDim, OutDim);
        harness.Ops.StartProfiling();
        harness.Ops.Gelu(pre, y, (long)Rows * OutDim);
        Assert.AreEqual("Gelu:1", string.Join(",", harness.Ops.StopProfiling().Select(t => $"{t.Operation}:{t.Calls}")));
    }

    [TestMethod]
    public void AThrowingOperationLeavesTheNextOnesCounted()
    {
        var harness = new OpHarness<float>();
        var (x, weight, bias, pre, _) = Operands(harness);
        harness.Ops.StartProfiling();
        Assert.ThrowsExactly<ArgumentException>(() => harness.Ops.Load(new float[3], x));
        harness.Ops.Linear(x, weight, bias, pre, Rows, InDim, OutDim);
        var calls = harness.Ops.StopProfiling().ToDictionary(t => t.Operation, t => t.Calls);
        Assert.AreEqual(1, calls["Load"]);
        Assert.AreEqual(1, calls.GetValueOrDefault("Linear"), "the operation after the throwing one is timed");
    }

    [TestMethod]
    public void ProfilingChangesNoResult()
    {
        double[] Run(bool profiled)
        {
            var harness = new OpHarness<float>();
            var (x, weight, bias, pre, y) = Operands(harness);
            if (profiled) harness.Ops.StartProfiling();
            harness.Ops.LinearGelu(x, weight, bias, pre, y, Rows, InDim, OutDim);
            if (profiled) harness.Ops.StopProfiling();
            return harness.Read(y);
        }

        double[] plain = Run(false);
        Assert.IsTrue(plain.Any(v => v != 0));
        CollectionAssert.AreEqual(plain, Run(true));
    }

    [TestMethod]
    public void StoppingWithoutStartingIsAnError()
    {
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => new CpuOps<float>().StopProfiling());
        StringAssert.Contains(error.Message, "StartProfiling");
    }

    [TestMethod]
    public void TheReportSharesTheOperationsTimeAndSetsItAgainstTheStep()
    {
        var times = new[] { new OperationTime("LinearBackward", 26, 30.0, 30.0), new OperationTime("Attention", 8, 10.0, 10.0) };
        string report = CpuOpsProfiler.Describe(times, steps: 2, wallMillisecondsPerStep: 21.5);
        StringAssert.Contains(report, "| LinearBackward | 13 | 15.00 | 75.0 % |");
        StringAssert.Contains(report, "| Attention | 4 | 5.00 | 25.0 % |");
        StringAssert.Contains(report, "operations' time 20.0 ms/step of 21.5 ms/step wall-clock");
    }

    private static (Slice X, Slice Weight, Slice Bias, Slice Pre, Slice Y) Operands(OpHarness<float> harness) => (
        harness.Activation(TestData.Uniform(1, Rows * InDim)),
        harness.Parameter(TestData.Uniform(2, OutDim * InDim, scale: 0.2)),
        harness.Parameter(TestData.Uniform(3, OutDim)),
        harness.Activation(Rows * OutDim),
        harness.Activation(Rows * OutDim));
}
