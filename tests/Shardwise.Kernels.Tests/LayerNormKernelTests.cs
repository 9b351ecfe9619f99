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
            ForwardMatchesCpu($"residual_layernorm_forward_{storage.Suffix()}", data, storage, order, rows, dim, scale,
                residual ? ResidualMode.Separate : ResidualMode.None);
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
        foreach (ResidualMode mode in Enum.GetValues<ResidualMode>())
        {
            ForwardMatchesCpu($"residual_layernorm_forward_v{(vectors + 31) / 32}_{storage.Suffix()}", data, storage,
                order, rows, vectors * perVector, 2f, mode);
        }
    }

    private enum ResidualMode { None, Separate, OverA }

    /// <summary>Runs a residual LayerNorm forward kernel on random inputs and compares with CpuOps.Add and LayerNorm.</summary>
    private static void ForwardMatchesCpu(string kernel, TestData data, StorageType storage, SchedulerOrder order,
        int rows, int dim, float scale, ResidualMode mode)
    {
        string at = $"{kernel}, scale {scale}, rows {rows}, dim {dim}, {mode}";
        long n = (long)rows * dim;
        float[] a = storage.Rounded(data.NonZero(n, scale)), b = storage.Rounded(data.NonZero(n, scale));
        float[] gamma = storage.Rounded(data.NonZero(dim)), beta = storage.Rounded(data.NonZero(dim));

        // Reference: the residual sum rounded to storage (as the kernel stores it), then LayerNorm of it.
        float[] x = a;
        if (mode != ResidualMode.None)
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
        using var bBuffer = mode != ResidualMode.None ? DeviceBuffer.From(b, storage) : null;
        using var separate = mode == ResidualMode.Separate ? DeviceBuffer.Zeroed(n, storage) : null;
        DeviceBuffer? residualBuffer = mode == ResidualMode.OverA ? aBuffer : separate;
        using var gammaBuffer = DeviceBuffer.From(gamma, storage);
        using var betaBuffer = DeviceBuffer.From(beta, storage);
        using var yBuffer = DeviceBuffer.Zeroed(n, storage);
        using var meanBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var rstdBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        SimtEmulator.Launch(kernel, SimtEmulator.Blocks(rows, RowsPerBlock), BlockThreads, order,
            aBuffer, bBuffer, residualBuffer, gammaBuffer, betaBuffer, yBuffer, meanBuffer, rstdBuffer, rows, dim);

        if (residualBuffer is not null) Compare.Close(x, residualBuffer.ToFloats(), 0f, $"residual, {at}");
        Compare.Close(cpu.Read(y), yBuffer.ToFloats(), 2 * storage.Tolerance(), $"y, {at}");
        Compare.Close(cpu.Read(mean), meanBuffer.ToFloats(), 1e-5f, $"mean, {at}");
        Compare.Close(cpu.Read(rstd), rstdBuffer.ToFloats(), 1e-5f, $"rstd, {at}");
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
            using var c = new BackwardCase(data, storage, rows, dim, accumulate);
            string suffix = storage.Suffix();
            SimtEmulator.Launch($"layernorm_backward_dx_{suffix}", SimtEmulator.Blocks(rows, RowsPerBlock),
                BlockThreads, order, c.X, c.Gamma, c.Mean, c.Rstd, c.Dy, c.Dx, rows, dim, accumulate ? 1 : 0);

            int chunks = Math.Min(rows, 37); // more than 32: the stage-2 threads stride over chunks
            using var partials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
            SimtEmulator.Launch($"layernorm_backward_dparams_partial_{suffix}",
                new Dim3((uint)SimtEmulator.Blocks(dim, 32), (uint)chunks), new Dim3(32, 8), order,
                c.X, c.Mean, c.Rstd, c.Dy, partials, rows, dim);
            SimtEmulator.Launch($"layernorm_backward_dparams_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32),
                order, partials, chunks, c.DGamma, c.DBeta, dim);
            c.AssertMatchesCpu($"rows {rows}, dim {dim}, accumulate {accumulate}");
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
            using var c = new BackwardCase(data, storage, rows, dim, accumulate);
            using var partials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
            string suffix = storage.Suffix();
            SimtEmulator.Launch($"layernorm_backward_fused_v{perLane}_{suffix}", chunks, BlockThreads, order,
                c.X, c.Gamma, c.Mean, c.Rstd, c.Dy, c.Dx, partials, rows, dim, accumulate ? 1 : 0);
            SimtEmulator.Launch($"layernorm_backward_dparams_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32),
                order, partials, chunks, c.DGamma, c.DBeta, dim);
            c.AssertMatchesCpu($"rows {rows}, dim {dim}, chunks {chunks}, accumulate {accumulate}");
        }
    }

    /// <summary>
    /// Random inputs of one LayerNorm backward on the emulated device, and CpuOps' results for them (the statistics from
    /// CpuOps' forward): a test launches kernels on the buffers, then compares.
    /// </summary>
    private sealed class BackwardCase : IDisposable
    {
        private readonly float[] expectedDx, expectedDGamma, expectedDBeta;
        private readonly float tolerance;

        public BackwardCase(TestData data, StorageType storage, int rows, int dim, bool accumulate)
        {
            long n = (long)rows * dim;
            float[] x = storage.Rounded(data.NonZero(n, 2f)), dy = storage.Rounded(data.NonZero(n));
            float[] gamma = storage.Rounded(data.NonZero(dim)), beta = data.NonZero(dim);
            float[] dx = storage.Rounded(data.NonZero(n));
            float[] dGamma = storage.Rounded(data.NonZero(dim)), dBeta = storage.Rounded(data.NonZero(dim));

            var cpu = new CpuReference();
            Slice xSlice = cpu.Put(x), gammaSlice = cpu.Put(gamma), mean = cpu.Zeros(rows), rstd = cpu.Zeros(rows);
            cpu.Ops.LayerNorm(xSlice, gammaSlice, cpu.Put(beta), cpu.Zeros(n), mean, rstd, rows, dim);
            Mean = DeviceBuffer.From(cpu.Read(mean), StorageType.Float32);
            Rstd = DeviceBuffer.From(cpu.Read(rstd), StorageType.Float32);
            Slice dxSlice = cpu.Put(dx), dGammaSlice = cpu.Put(dGamma), dBetaSlice = cpu.Put(dBeta);
            cpu.Ops.LayerNormBackward(xSlice, gammaSlice, mean, rstd, cpu.Put(dy), dxSlice, dGammaSlice, dBetaSlice,
                rows, dim, accumulate);
            (expectedDx, expectedDGamma, expectedDBeta) = (cpu.Read(dxSlice), cpu.Read(dGammaSlice), cpu.Read(dBetaSlice));
            tolerance = 2 * storage.Tolerance();

            X = DeviceBuffer.From(x, storage);
            Gamma = DeviceBuffer.From(gamma, storage);
            Dy = DeviceBuffer.From(dy, storage);
            Dx = DeviceBuffer.From(dx, storage);
            DGamma = DeviceBuffer.From(dGamma, storage);
            DBeta = DeviceBuffer.From(dBeta, storage);
        }

        public DeviceBuffer X { get; }
        public DeviceBuffer Gamma { get; }
        public DeviceBuffer Mean { get; }
        public DeviceBuffer Rstd { get; }
        public DeviceBuffer Dy { get; }
        public DeviceBuffer Dx { get; }
        public DeviceBuffer DGamma { get; }
        public DeviceBuffer DBeta { get; }

        public void AssertMatchesCpu(string at)
        {
            Compare.Close(expectedDx, Dx.ToFloats(), tolerance, $"dx, {at}");
            Compare.Close(expectedDGamma, DGamma.ToFloats(), tolerance, $"dGamma, {at}");
            Compare.Close(expectedDBeta, DBeta.ToFloats(), tolerance, $"dBeta, {at}");
        }

        public void Dispose()
        {
            foreach (DeviceBuffer buffer in new[] { X, Gamma, Mean, Rstd, Dy, Dx, DGamma, DBeta }) buffer.Dispose();
        }
    }

    /// <summary>
    /// dx may alias dy when accumulate is 0 (the generated code computes some gradients in place): the result is
    /// bitwise the one into a separate buffer, for rows that fit the registers of layernorm_backward_dx and wider ones,
    /// and for the fused kernel (its parameter-gradient partials too).
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardInPlaceOverDyEqualsTheSeparateBuffer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(13);
        const int rows = 9, chunks = 2;
        string suffix = storage.Suffix();
        foreach ((int dim, bool fused) in new[] { (130, false), (1030, false), (96 * (16 / storage.BytesPerElement()), true) })
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
            using var separatePartials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);
            using var inPlacePartials = DeviceBuffer.Zeroed(2L * chunks * dim, StorageType.Float32);

            void Backward(DeviceBuffer dyArgument, DeviceBuffer dxArgument, DeviceBuffer partials)
            {
                if (fused)
                    SimtEmulator.Launch($"layernorm_backward_fused_v3_{suffix}", chunks, BlockThreads, order, xBuffer,
                        gammaBuffer, meanBuffer, rstdBuffer, dyArgument, dxArgument, partials, rows, dim, 0);
                else
                    SimtEmulator.Launch($"layernorm_backward_dx_{suffix}", SimtEmulator.Blocks(rows, RowsPerBlock),
                        BlockThreads, order, xBuffer, gammaBuffer, meanBuffer, rstdBuffer, dyArgument, dxArgument, rows,
                        dim, 0);
            }

            Backward(dyBuffer, separate, separatePartials);
            Backward(inPlace, inPlace, inPlacePartials);
            AssertBitwise(separate.ToFloats(), inPlace.ToFloats(), $"dx, dim {dim}");
            if (fused) AssertBitwise(separatePartials.ToFloats(), inPlacePartials.ToFloats(), $"partials, dim {dim}");
        }
    }

    private static void AssertBitwise(float[] expected, float[] actual, string what)
    {
        Assert.IsTrue(expected.Any(v => v != 0f), $"the kernel wrote the separate {what}");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(actual[i]), $"{what}, element {i}");
    }
}
