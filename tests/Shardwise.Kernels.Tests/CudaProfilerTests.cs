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

    /// <summary>
    /// A Linear with a bias is one cuBLASLt matmul with the BIAS epilogue (no add_bias pass over y), and its result is
    /// the CPU backend's; one without a bias stays a cublasGemmEx.
    /// </summary>
    [TestMethod]
    public void ALinearWithABiasIsOneMatmulWithTheBiasEpilogue()
    {
        using CudaOps ops = GpuSupport.RequireCudaOps();
        const int rows = 37, inDim = 24, outDim = 40;
        var data = new TestData(8);
        float[] x = data.NonZero(rows * inDim), w = data.NonZero(outDim * inDim), bias = data.NonZero(outDim);
        ops.Allocate(Arena.Activations, rows * inDim + 2L * rows * outDim);
        ops.Allocate(Arena.Parameters, outDim * inDim + outDim);
        Slice xs = new(Arena.Activations, 0, rows * inDim), y = new(Arena.Activations, rows * inDim, rows * outDim);
        Slice plain = new(Arena.Activations, rows * inDim + rows * outDim, rows * outDim);
        Slice ws = new(Arena.Parameters, 0, outDim * inDim), bs = new(Arena.Parameters, outDim * inDim, outDim);
        ops.Load(x, xs);
        ops.Load(w, ws);
        ops.Load(bias, bs);

        ops.StartProfiling();
        ops.Linear(xs, ws, bs, y, rows, inDim, outDim);
        ops.Linear(xs, ws, null, plain, rows, inDim, outDim);
        string[] launches = ops.StopProfiling().Select(t => t.Operation).Where(n => n.Contains(CudaOpsProfiler.Separator)).ToArray();
        CollectionAssert.AreEquivalent(new[] { $"Linear › gemm+bias {rows}×{outDim}×{inDim} Bᵀ", $"Linear › gemm {rows}×{outDim}×{inDim} Bᵀ" },
            launches, string.Join(", ", launches));

        var expected = new double[rows * outDim];
        for (int r = 0; r < rows; r++)
        for (int o = 0; o < outDim; o++)
        {
            double sum = bias[o];
            for (int i = 0; i < inDim; i++) sum += (double)x[r * inDim + i] * w[o * inDim + i];
            expected[r * outDim + o] = sum;
        }

        var got = new float[rows * outDim];
        var withoutBias = new float[rows * outDim];
        ops.Store(y, got);
        ops.Store(plain, withoutBias);
        for (int i = 0; i < got.Length; i++)
        {
            Assert.AreEqual(expected[i], got[i], 1e-4 * (1 + Math.Abs(expected[i])), $"y[{i}]");
            Assert.AreEqual(expected[i] - bias[i % outDim], withoutBias[i], 1e-4 * (1 + Math.Abs(expected[i])), $"no bias [{i}]");
        }
    }
}
