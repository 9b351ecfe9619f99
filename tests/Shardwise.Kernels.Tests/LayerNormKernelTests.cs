using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>layernorm.cu against CpuOps.Add, LayerNorm and LayerNormBackward.</summary>
[TestClass]
public sealed class LayerNormKernelTests
{
    private const int BlockThreads = 256, RowsPerBlock = BlockThreads / 32;
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Dims = [5, 64, 130, 1000, 1030]; // 1030: wider than the registers of layernorm_backward_dx hold

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ForwardNormalisesEachRow(StorageType storage, SchedulerOrder order) => Forward(storage, order, false);

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ResidualForwardAddsThenNormalises(StorageType storage, SchedulerOrder order) =>
        Forward(storage, order, true);

    private static void Forward(StorageType storage, SchedulerOrder order, bool residual)
    {
        var data = new TestData(residual ? 11 : 10);
        // The small scale makes the variance comparable to eps = 1e-5, so a different eps shows.
        foreach (float scale in new[] { 2f, 0.003f })
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            string at = $"scale {scale}, rows {rows}, dim {dim}";
            long n = (long)rows * dim;
            float[] a = storage.Rounded(data.NonZero(n, scale)), b = storage.Rounded(data.NonZero(n, scale));
            float[] gamma = storage.Rounded(data.NonZero(dim)), beta = storage.Rounded(data.NonZero(dim));

            // Reference: the residual sum rounded to storage (as the kernel stores it), then LayerNorm of it.
            float[] x = a;
            if (residual)
            {
                var cpuAdd = new CpuReference();
                Slice sum = cpuAdd.Zeros(n);
                cpuAdd.Ops.Add(cpuAdd.Put(a), cpuAdd.Put(b), sum, n);
                x = storage.Rounded(cpuAdd.Read(sum));
            }

            var cpu = new CpuReference();
            Slice y = cpu.Zeros(n), mean = cpu.Zeros(rows), rstd = cpu.Zeros(rows);
            cpu.Ops.LayerNorm(cpu.Put(x), cpu.Put(gamma), cpu.Put(beta), y, mean, rstd, rows, dim);

            using var aBuffer = DeviceBuffer.From(a, storage);
            using var bBuffer = residual ? DeviceBuffer.From(b, storage) : null;
            using var residualBuffer = residual ? DeviceBuffer.Zeroed(n, storage) : null;
            using var gammaBuffer = DeviceBuffer.From(gamma, storage);
            using var betaBuffer = DeviceBuffer.From(beta, storage);
            using var yBuffer = DeviceBuffer.Zeroed(n, storage);
            using var meanBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var rstdBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            SimtEmulator.Launch($"residual_layernorm_forward_{storage.Suffix()}",
                SimtEmulator.Blocks(rows, RowsPerBlock), BlockThreads, order,
                aBuffer, bBuffer, residualBuffer, gammaBuffer, betaBuffer, yBuffer, meanBuffer, rstdBuffer, rows, dim);

            if (residualBuffer is not null) Compare.Close(x, residualBuffer.ToFloats(), 0f, $"residual, {at}");
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), 2 * storage.Tolerance(), $"y, {at}");
            Compare.Close(cpu.Read(mean), meanBuffer.ToFloats(), 1e-5f, $"mean, {at}");
            Compare.Close(cpu.Read(rstd), rstdBuffer.ToFloats(), 1e-5f, $"rstd, {at}");
        }
    }

    /// <summary>
    /// residual_layernorm_forward_v{1..4} (a lane's vectors of the row in registers) against CpuOps, with and without
    /// the residual operand, the residual sum written over a (the in-place residual stream) or into its own buffer.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void VectorForwardMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(16);
        int perVector = 16 / storage.BytesPerElement();
        foreach (int vectors in new[] { 1, 33, 96, 128 })
        foreach (int rows in RowCounts)
        foreach (string mode in new[] { "plain", "residual", "residual over a" })
        {
            int dim = vectors * perVector, perLane = (vectors + 31) / 32;
            string at = $"rows {rows}, dim {dim}, {mode}";
            long n = (long)rows * dim;
            float[] a = storage.Rounded(data.NonZero(n, 2f)), b = storage.Rounded(data.NonZero(n, 2f));
            float[] gamma = storage.Rounded(data.NonZero(dim)), beta = storage.Rounded(data.NonZero(dim));
            bool residual = mode != "plain";

            var cpu = new CpuReference();
            Slice x = cpu.Put(a);
            if (residual) cpu.Ops.Add(cpu.Put(a), cpu.Put(b), x, n);
            float[] sum = storage.Rounded(cpu.Read(x));
            Slice y = cpu.Zeros(n), mean = cpu.Zeros(rows), rstd = cpu.Zeros(rows);
            cpu.Ops.LayerNorm(cpu.Put(sum), cpu.Put(gamma), cpu.Put(beta), y, mean, rstd, rows, dim);

            using var aBuffer = DeviceBuffer.From(a, storage);
            using var bBuffer = residual ? DeviceBuffer.From(b, storage) : null;
            using var separate = mode == "residual" ? DeviceBuffer.Zeroed(n, storage) : null;
            DeviceBuffer? residualBuffer = mode == "residual over a" ? aBuffer : separate;
            using var gammaBuffer = DeviceBuffer.From(gamma, storage);
            using var betaBuffer = DeviceBuffer.From(beta, storage);
            using var yBuffer = DeviceBuffer.Zeroed(n, storage);
            using var meanBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var rstdBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            SimtEmulator.Launch($"residual_layernorm_forward_v{perLane}_{storage.Suffix()}",
                SimtEmulator.Blocks(rows, RowsPerBlock), BlockThreads, order,
                aBuffer, bBuffer, residualBuffer, gammaBuffer, betaBuffer, yBuffer, meanBuffer, rstdBuffer, rows, dim);

            if (residualBuffer is not null) Compare.Close(sum, residualBuffer.ToFloats(), 0f, $"residual, {at}");
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), 2 * storage.Tolerance(), $"y, {at}");
            Compare.Close(cpu.Read(mean), meanBuffer.ToFloats(), 1e-5f, $"mean, {at}");
            Compare.Close(cpu.Read(rstd), rstdBuffer.ToFloats(), 1e-5f, $"rstd, {at}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(12);
        foreach (bool accumulate in new[] { false, true })
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            string at = $"rows {rows}, dim {dim}, accumulate {accumulate}";
            long n = (long)rows * dim;
            float[] x = storage.Rounded(data.NonZero(n, 2f)), dy = storage.Rounded(data.NonZero(n));
            float[] gamma = storage.Rounded(data.NonZero(dim)), beta = data.NonZero(dim);
            float[] dx = storage.Rounded(data.NonZero(n));
            float[] dGamma = storage.Rounded(data.NonZero(dim)), dBeta = storage.Rounded(data.NonZero(dim));

            var cpu = new CpuReference();
            Slice xSlice = cpu.Put(x), gammaSlice = cpu.Put(gamma), mean = cpu.Zeros(rows), rstd = cpu.Zeros(rows);
            cpu.Ops.LayerNorm(xSlice, gammaSlice, cpu.Put(beta), cpu.Zeros(n), mean, rstd, rows, dim);
            float[] means = cpu.Read(mean), rstds = cpu.Read(rstd);
            Slice dxSlice = cpu.Put(dx), dGammaSlice = cpu.Put(dGamma), dBetaSlice = cpu.Put(dBeta);
            cpu.Ops.LayerNormBackward(xSlice, gammaSlice, mean, rstd, cpu.Put(dy), dxSlice, dGammaSlice, dBetaSlice,
                rows, dim, accumulate);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var gammaBuffer = DeviceBuffer.From(gamma, storage);
            using var meanBuffer = DeviceBuffer.From(means, StorageType.Float32);
            using var rstdBuffer = DeviceBuffer.From(rstds, StorageType.Float32);
            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var dxBuffer = DeviceBuffer.From(dx, storage);
            using var dGammaBuffer = DeviceBuffer.From(dGamma, storage);
            using var dBetaBuffer = DeviceBuffer.From(dBeta, storage);
            string suffix = storage.Suffix();
            SimtEmulator.Launch($"layernorm_backward_dx_{suffix}", SimtEmulator.Blocks(rows, RowsPerBlock),
                BlockThreads, order, xBuffer, gammaBuffer, meanBuffer, rstdBuffer, dyBuffer, dxBuffer, rows, dim,
                accumulate ? 1 : 0);

            int chunks = Math.Min(rows, 37); // more than 32: the stage-2 threads stride over chunks
            using var partials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
            SimtEmulator.Launch($"layernorm_backward_dparams_partial_{suffix}",
                new Dim3((uint)SimtEmulator.Blocks(dim, 32), (uint)chunks), new Dim3(32, 8), order,
                xBuffer, meanBuffer, rstdBuffer, dyBuffer, partials, rows, dim);
            SimtEmulator.Launch($"layernorm_backward_dparams_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32),
                order, partials, chunks, dGammaBuffer, dBetaBuffer, dim);

            float tolerance = 2 * storage.Tolerance();
            Compare.Close(cpu.Read(dxSlice), dxBuffer.ToFloats(), tolerance, $"dx, {at}");
            Compare.Close(cpu.Read(dGammaSlice), dGammaBuffer.ToFloats(), tolerance, $"dGamma, {at}");
            Compare.Close(cpu.Read(dBetaSlice), dBetaBuffer.ToFloats(), tolerance, $"dBeta, {at}");
        }
    }

    /// <summary>
    /// layernorm_backward_fused_v{1..4} (dx and the stage-1 partials in one pass) against CpuOps, for each vector count
    /// per lane, rows that leave lanes without a vector, and chunks with fewer rows than warps or none at all.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void FusedBackwardMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(14);
        int perVector = 16 / storage.BytesPerElement();
        // Vectors per row: 1 (v1, one lane busy), 33 (v2, one lane with a second vector), 96 (v3), 128 (v4).
        foreach (int vectors in new[] { 1, 33, 96, 128 })
        foreach (bool accumulate in new[] { false, true })
        foreach ((int rows, int chunks) in new[] { (1, 1), (7, 5), (33, 2), (70, 3) })
        {
            int dim = vectors * perVector, perLane = (vectors + 31) / 32;
            string at = $"rows {rows}, dim {dim}, chunks {chunks}, accumulate {accumulate}";
            long n = (long)rows * dim;
            float[] x = storage.Rounded(data.NonZero(n, 2f)), dy = storage.Rounded(data.NonZero(n));
            float[] gamma = storage.Rounded(data.NonZero(dim)), beta = data.NonZero(dim);
            float[] dx = storage.Rounded(data.NonZero(n));
            float[] dGamma = storage.Rounded(data.NonZero(dim)), dBeta = storage.Rounded(data.NonZero(dim));

            var cpu = new CpuReference();
            Slice xSlice = cpu.Put(x), gammaSlice = cpu.Put(gamma), mean = cpu.Zeros(rows), rstd = cpu.Zeros(rows);
            cpu.Ops.LayerNorm(xSlice, gammaSlice, cpu.Put(beta), cpu.Zeros(n), mean, rstd, rows, dim);
            float[] means = cpu.Read(mean), rstds = cpu.Read(rstd);
            Slice dxSlice = cpu.Put(dx), dGammaSlice = cpu.Put(dGamma), dBetaSlice = cpu.Put(dBeta);
            cpu.Ops.LayerNormBackward(xSlice, gammaSlice, mean, rstd, cpu.Put(dy), dxSlice, dGammaSlice, dBetaSlice,
                rows, dim, accumulate);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var gammaBuffer = DeviceBuffer.From(gamma, storage);
            using var meanBuffer = DeviceBuffer.From(means, StorageType.Float32);
            using var rstdBuffer = DeviceBuffer.From(rstds, StorageType.Float32);
            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var dxBuffer = DeviceBuffer.From(dx, storage);
            using var dGammaBuffer = DeviceBuffer.From(dGamma, storage);
            using var dBetaBuffer = DeviceBuffer.From(dBeta, storage);
            using var partials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
            string suffix = storage.Suffix();
            SimtEmulator.Launch($"layernorm_backward_fused_v{perLane}_{suffix}", chunks, BlockThreads, order,
                xBuffer, gammaBuffer, meanBuffer, rstdBuffer, dyBuffer, dxBuffer, partials, rows, dim,
                accumulate ? 1 : 0);
            SimtEmulator.Launch($"layernorm_backward_dparams_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32),
                order, partials, chunks, dGammaBuffer, dBetaBuffer, dim);

            float tolerance = 2 * storage.Tolerance();
            Compare.Close(cpu.Read(dxSlice), dxBuffer.ToFloats(), tolerance, $"dx, {at}");
            Compare.Close(cpu.Read(dGammaSlice), dGammaBuffer.ToFloats(), tolerance, $"dGamma, {at}");
            Compare.Close(cpu.Read(dBetaSlice), dBetaBuffer.ToFloats(), tolerance, $"dBeta, {at}");
        }
    }

    /// <summary>The fused backward with dx over dy (accumulate 0) writes bitwise what it writes to a separate buffer.</summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void FusedBackwardInPlaceOverDyEqualsTheSeparateBuffer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(15);
        const int rows = 9, chunks = 2;
        int dim = 96 * (16 / storage.BytesPerElement());
        long n = (long)rows * dim;
        float[] x = storage.Rounded(data.NonZero(n, 2f)), dy = storage.Rounded(data.NonZero(n));
        float[] gamma = storage.Rounded(data.NonZero(dim));
        float[] means = data.NonZero(rows), rstds = new float[rows];
        for (int r = 0; r < rows; r++) rstds[r] = 0.5f + (r % 3);
        using var xBuffer = DeviceBuffer.From(x, storage);
        using var gammaBuffer = DeviceBuffer.From(gamma, storage);
        using var meanBuffer = DeviceBuffer.From(means, StorageType.Float32);
        using var rstdBuffer = DeviceBuffer.From(rstds, StorageType.Float32);
        using var dyBuffer = DeviceBuffer.From(dy, storage);
        using var separate = DeviceBuffer.Zeroed(n, storage);
        using var inPlace = DeviceBuffer.From(dy, storage);
        using var separatePartials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
        using var inPlacePartials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
        string kernel = $"layernorm_backward_fused_v3_{storage.Suffix()}";
        SimtEmulator.Launch(kernel, chunks, BlockThreads, order,
            xBuffer, gammaBuffer, meanBuffer, rstdBuffer, dyBuffer, separate, separatePartials, rows, dim, 0);
        SimtEmulator.Launch(kernel, chunks, BlockThreads, order,
            xBuffer, gammaBuffer, meanBuffer, rstdBuffer, inPlace, inPlace, inPlacePartials, rows, dim, 0);
        AssertBitwise(separate.ToFloats(), inPlace.ToFloats(), "dx");
        AssertBitwise(separatePartials.ToFloats(), inPlacePartials.ToFloats(), "partials");
    }

    private static void AssertBitwise(float[] expected, float[] actual, string what)
    {
        Assert.IsTrue(expected.Any(v => v != 0f), $"the kernel wrote the separate {what}");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(actual[i]), $"{what}, element {i}");
    }

    /// <summary>
    /// dx may alias dy when accumulate is 0 (the generated code computes some gradients in place): the result is
    /// bitwise the one into a separate buffer, for rows that fit the registers and for wider ones.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardDxInPlaceOverDyEqualsTheSeparateBuffer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(13);
        const int rows = 7;
        foreach (int dim in new[] { 130, 1030 })
        {
            long n = (long)rows * dim;
            float[] x = storage.Rounded(data.NonZero(n, 2f)), dy = storage.Rounded(data.NonZero(n));
            float[] gamma = storage.Rounded(data.NonZero(dim));
            float[] means = data.NonZero(rows), rstds = new float[rows];
            for (int r = 0; r < rows; r++) rstds[r] = 0.5f + (r % 3);
            using var xBuffer = DeviceBuffer.From(x, storage);
            using var gammaBuffer = DeviceBuffer.From(gamma, storage);
            using var meanBuffer = DeviceBuffer.From(means, StorageType.Float32);
            using var rstdBuffer = DeviceBuffer.From(rstds, StorageType.Float32);
            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var separate = DeviceBuffer.Zeroed(n, storage);
            using var inPlace = DeviceBuffer.From(dy, storage);
            string kernel = $"layernorm_backward_dx_{storage.Suffix()}";
            SimtEmulator.Launch(kernel, SimtEmulator.Blocks(rows, RowsPerBlock), BlockThreads, order,
                xBuffer, gammaBuffer, meanBuffer, rstdBuffer, dyBuffer, separate, rows, dim, 0);
            SimtEmulator.Launch(kernel, SimtEmulator.Blocks(rows, RowsPerBlock), BlockThreads, order,
                xBuffer, gammaBuffer, meanBuffer, rstdBuffer, inPlace, inPlace, rows, dim, 0);
            float[] expected = separate.ToFloats(), actual = inPlace.ToFloats();
            Assert.IsTrue(expected.Any(v => v != 0f), "the kernel wrote the separate buffer");
            for (int i = 0; i < expected.Length; i++)
                Assert.AreEqual(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(actual[i]), $"dim {dim}, element {i}");
        }
    }
}
