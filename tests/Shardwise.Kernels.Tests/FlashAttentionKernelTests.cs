using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// flash_attention_forward.cu and flash_attention_backward.cu on the SIMT emulation (its mma is the shuffle-gathered
/// fp32 product of shardwise_mma.cuh), against CpuOps.Attention / AttentionBackward on the same 16-bit-rounded
/// inputs: y, the log-sum-exp (against a double-precision sum), D, and dqkv overwritten and accumulated. Sequences
/// that are not multiples of the 64-row tiles, several heads and head sizes, both kernel widths (d64, d128); sequences
/// that are multiples of 8 (72, 24) take the dK/dV kernel's staged 16-byte dSᵀ stores, the others its pair stores.
/// </summary>
[TestClass]
public sealed class FlashAttentionKernelTests
{
    private const int Threads = 128, Rows = 64, DotThreads = 256, Tile = 64;

    /// <summary>Threads per row of the dot kernel (SW_FLASH_DOT_LANES): a 256-thread block covers 32 rows.</summary>
    private const int DotLanes = 8;

    /// <summary>Queries per forward block: two 16-row tiles per warp for the d64 kernels, one for d128.</summary>
    private static int ForwardRows(int width) => width == 64 ? 2 * Rows : Rows;

    /// <summary>Dynamic shared memory of the forward and dQ kernels: two stages of two 64-row tiles, rows padded by 8.</summary>
    private static uint TileShared(int width) => (uint)(4 * Tile * (width + 8) * 2);

    /// <summary>Of the dK/dV kernel: two stages of (Q, dY) tiles and their fp32 lse and D; storing dSᵀ, each warp's
    /// 16 × 72 staging rows after them.</summary>
    private static uint DkdvShared(int width, bool storedScores = false) =>
        (uint)((2 * (2 * Tile * (width + 8) + 4 * Tile) + (storedScores ? 4 * 16 * (Tile + 8) : 0)) * 2);

    /// <summary>Of the dQ kernel from stored dS: two stages of a 64 × 72 dSᵀ tile and a K tile.</summary>
    private static uint StoredDqShared(int width) => (uint)(2 * (Tile * (Tile + 8) + Tile * (width + 8)) * 2);

    /// <summary>(batch, heads, headDim, seq, kernel width): the d128 kernels also run with a narrow head.</summary>
    private static readonly (int Batch, int Heads, int HeadDim, int Seq, int Width)[] Shapes =
    [
        (2, 2, 16, 1, 64),
        (2, 3, 32, 17, 64),
        (1, 2, 64, 70, 64),
        (1, 2, 16, 130, 64),
        (1, 2, 32, 72, 64),
        (1, 1, 80, 66, 128),
        (2, 1, 32, 24, 128),
    ];

    /// <summary>(batch, heads, headDim, seq) for the GPU run: GPT-2's head size over four tiles, a 128-wide head, one token.</summary>
    private static readonly (int Batch, int Heads, int HeadDim, int Seq)[] GpuShapes =
        [(2, 3, 64, 200), (1, 2, 128, 130), (2, 2, 32, 1), (1, 1, 48, 77)];

    public static IEnumerable<object[]> StoragesAndShapes()
    {
        foreach (StorageType storage in new[] { StorageType.Float16, StorageType.BFloat16 })
        {
            for (int i = 0; i < Shapes.Length; i++) yield return [storage, i];
        }
    }

    [TestMethod]
    [DynamicData(nameof(StoragesAndShapes))]
    public void ForwardAndBackwardMatchCpuAttention(StorageType storage, int shape)
    {
        var (batch, heads, headDim, seq, width) = Shapes[shape];
        int dim = heads * headDim;
        string at = $"{storage}, batch {batch}, heads {heads}, headDim {headDim}, seq {seq}, d{width}";
        var data = new TestData(40 + shape);
        float[] qkv = storage.Rounded(data.NonZero(3L * batch * seq * dim));
        float[] dy = storage.Rounded(data.NonZero((long)batch * seq * dim));
        float[] prior = storage.Rounded(data.NonZero(qkv.Length));
        string suffix = storage.Suffix();
        // Reversed scheduling for every other shape: the barriers between staging and use are then both exercised.
        SchedulerOrder order = shape % 2 == 0 ? SchedulerOrder.Forward : SchedulerOrder.Reversed;

        Expected expected = Reference(qkv, dy, prior, batch, seq, heads, dim);

        // Forward.
        using var qkvBuffer = DeviceBuffer.From(qkv, storage);
        using var y = DeviceBuffer.Zeroed((long)batch * seq * dim, storage);
        using var lse = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
        var grid = new Dim3((uint)SimtEmulator.Blocks(seq, Rows), (uint)(batch * heads));
        var forwardGrid = new Dim3((uint)SimtEmulator.Blocks(seq, ForwardRows(width)), (uint)(batch * heads));
        SimtEmulator.Launch($"flash_attention_forward_d{width}_{suffix}", forwardGrid, Threads, TileShared(width), order,
            qkvBuffer, y, lse, seq, heads, headDim);
        float[] yKernel = y.ToFloats();
        Compare.Close(expected.Y, yKernel, storage.Tolerance(), $"y, {at}");
        Compare.Close(LogSumExp(qkv, batch, seq, heads, headDim), lse.ToFloats(), 1e-5f, $"lse, {at}");
        Compare.Close(expected.LogSumExp, lse.ToFloats(), 1e-5f, $"lse against CpuOps (the op's saved state), {at}");

        // Backward from the kernel's own y and lse, as the runtime runs it.
        using var dyBuffer = DeviceBuffer.From(dy, storage);
        using var delta = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
        int rows = batch * seq * heads;
        SimtEmulator.Launch($"flash_attention_backward_dot_{suffix}", SimtEmulator.Blocks(rows, DotThreads / DotLanes),
            DotThreads, order, y, dyBuffer, delta, rows, seq, heads, headDim);
        Compare.Close(Delta(yKernel, dy, batch, seq, heads, headDim), delta.ToFloats(), 1e-5f, $"D, {at}");

        foreach (bool storedScores in new[] { false, true })
        foreach (bool accumulate in new[] { false, true })
        {
            // Overwriting starts from non-zero values too, so a kernel that added would fail. The dSᵀ buffer starts as
            // NaN: an element dQ read that the dK/dV kernel did not write would show.
            using var dqkvBuffer = DeviceBuffer.From(prior, storage);
            using var scores = storedScores ? NaNScores(batch, heads, seq, storage) : null;
            int add = accumulate ? 1 : 0;
            SimtEmulator.Launch($"flash_attention_backward_dkdv_d{width}_{suffix}", grid, Threads,
                DkdvShared(width, storedScores), order, qkvBuffer, dyBuffer, lse, delta, dqkvBuffer, scores, seq, heads,
                headDim, add);
            if (scores is null)
                SimtEmulator.Launch($"flash_attention_backward_dq_d{width}_{suffix}", grid, Threads, TileShared(width),
                    order, qkvBuffer, dyBuffer, lse, delta, dqkvBuffer, seq, heads, headDim, add);
            else
                SimtEmulator.Launch($"flash_attention_backward_dq_stored_d{width}_{suffix}", grid, Threads,
                    StoredDqShared(width), order, qkvBuffer, scores, dqkvBuffer, seq, heads, headDim, add);
            Compare.Close(accumulate ? expected.Accumulated : expected.Dqkv, dqkvBuffer.ToFloats(), 2 * storage.Tolerance(),
                $"dqkv ({(accumulate ? "accumulated" : "overwritten")}, dQ {(storedScores ? "from stored dS" : "recomputed")}), {at}");
        }
    }

    /// <summary>The dSᵀ buffer of flash_attention_backward_dq_stored (batch·heads·seq² plus 8 elements of padding), all NaN.</summary>
    private static DeviceBuffer NaNScores(int batch, int heads, int seq, StorageType storage)
    {
        var values = new float[(long)batch * heads * seq * seq + 8];
        Array.Fill(values, float.NaN);
        return DeviceBuffer.From(values, storage);
    }

    /// <summary>
    /// qkv, dy and dqkv one element off a 16-byte boundary (and y 4-byte but not 16-byte aligned) take the kernels'
    /// 2-byte staging path, with bitwise the same results as aligned buffers.
    /// </summary>
    [TestMethod]
    public void UnalignedBuffersGiveTheSameResults()
    {
        const int batch = 1, heads = 2, headDim = 32, seq = 70, dim = heads * headDim;
        const StorageType storage = StorageType.BFloat16;
        var data = new TestData(50);
        float[] qkv = storage.Rounded(data.NonZero(3L * batch * seq * dim));
        float[] dy = storage.Rounded(data.NonZero((long)batch * seq * dim));
        float[] prior = storage.Rounded(data.NonZero(qkv.Length));

        (float[] Y, float[] Dqkv) Run(int offset)
        {
            // offset 0: aligned; 1: qkv, dy, dqkv start one 2-byte element later, y two.
            float[] Padded(float[] values, int pad) => [.. new float[pad], .. values];
            using var qkvBuffer = DeviceBuffer.From(Padded(qkv, offset), storage);
            using var dyBuffer = DeviceBuffer.From(Padded(dy, offset), storage);
            using var dqkv = DeviceBuffer.From(Padded(prior, offset), storage);
            using var y = DeviceBuffer.Zeroed((long)batch * seq * dim + 2 * offset, storage);
            using var lse = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
            using var delta = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
            nint q = qkvBuffer.Pointer + 2 * offset, d = dyBuffer.Pointer + 2 * offset, g = dqkv.Pointer + 2 * offset;
            nint yp = y.Pointer + 4 * offset;
            var grid = new Dim3((uint)SimtEmulator.Blocks(seq, Rows), batch * heads);
            var forwardGrid = new Dim3((uint)SimtEmulator.Blocks(seq, ForwardRows(64)), batch * heads);
            SimtEmulator.Launch("flash_attention_forward_d64_bf16", forwardGrid, Threads, TileShared(64),
                SchedulerOrder.Forward, q, yp, lse, seq, heads, headDim);
            int rows = batch * seq * heads;
            SimtEmulator.Launch("flash_attention_backward_dot_bf16", SimtEmulator.Blocks(rows, DotThreads / DotLanes),
                DotThreads, SchedulerOrder.Forward, yp, d, delta, rows, seq, heads, headDim);
            SimtEmulator.Launch("flash_attention_backward_dkdv_d64_bf16", grid, Threads, DkdvShared(64),
                SchedulerOrder.Forward, q, d, lse, delta, g, KernelArg.Null, seq, heads, headDim, 1);
            SimtEmulator.Launch("flash_attention_backward_dq_d64_bf16", grid, Threads, TileShared(64),
                SchedulerOrder.Forward, q, d, lse, delta, g, seq, heads, headDim, 1);
            return (y.ToFloats()[(2 * offset)..], dqkv.ToFloats()[offset..]);
        }

        var (alignedY, alignedDqkv) = Run(0);
        var (unalignedY, unalignedDqkv) = Run(1);
        CollectionAssert.AreEqual(alignedY, unalignedY, "y");
        CollectionAssert.AreEqual(alignedDqkv, unalignedDqkv, "dqkv");
        CollectionAssert.AreNotEqual(prior, alignedDqkv, "the backward wrote dqkv");
    }

    /// <summary>
    /// D = Σ dy·y per row alone, against a double-precision sum: head sizes of one to two 16-byte steps per thread
    /// (16, 48, 64, 128), a multiple of 8 off the flash path (24) and one that is not (20, element loads only); rows
    /// not a multiple of a block's 32; y and dy aligned, then each one element off a 16-byte boundary (the element
    /// loads), which must give bitwise the aligned D (same elements per thread, same order).
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void DotOfUnalignedAndAlignedRowsMatchesTheReference(StorageType storage)
    {
        foreach (var (batch, heads, headDim, seq) in new[] { (2, 3, 64, 17), (1, 2, 128, 9), (1, 4, 16, 5), (2, 1, 48, 7),
                     (1, 3, 24, 6), (1, 2, 20, 5) })
        {
            string at = $"{storage}, batch {batch}, heads {heads}, headDim {headDim}, seq {seq}";
            var data = new TestData(headDim + seq);
            long count = (long)batch * seq * heads * headDim;
            float[] y = storage.Rounded(data.NonZero(count)), dy = storage.Rounded(data.NonZero(count));
            int rows = batch * seq * heads;

            float[] Run(int yOffset, int dyOffset, SchedulerOrder order)
            {
                using var yBuffer = DeviceBuffer.From([.. new float[yOffset], .. y], storage);
                using var dyBuffer = DeviceBuffer.From([.. new float[dyOffset], .. dy], storage);
                Assert.AreEqual(0, yBuffer.Pointer % 16, "the buffers start 16-byte aligned");
                using var delta = DeviceBuffer.From(data.NonZero(rows), StorageType.Float32);
                SimtEmulator.Launch($"flash_attention_backward_dot_{storage.Suffix()}",
                    SimtEmulator.Blocks(rows, DotThreads / DotLanes), DotThreads, order,
                    yBuffer.Pointer + 2 * yOffset, dyBuffer.Pointer + 2 * dyOffset, delta, rows, seq, heads, headDim);
                return delta.ToFloats();
            }

            float[] aligned = Run(0, 0, SchedulerOrder.Forward);
            Compare.Close(Delta(y, dy, batch, seq, heads, headDim), aligned, 1e-5f, $"D, {at}");
            CollectionAssert.AreEqual(aligned, Run(1, 0, SchedulerOrder.Reversed), $"y unaligned, {at}");
            CollectionAssert.AreEqual(aligned, Run(0, 3, SchedulerOrder.Forward), $"dy unaligned, {at}");
        }
    }

    [TestMethod]
    public void EveryEntryPointIsRegistered()
    {
        var names = new HashSet<string>(SimtEmulator.KernelNames());
        foreach (string suffix in new[] { "f16", "bf16" })
        {
            Assert.IsTrue(names.Contains($"flash_attention_backward_dot_{suffix}"));
            foreach (int width in new[] { 64, 128 })
            {
                foreach (string kernel in new[] { "forward", "backward_dkdv", "backward_dq", "backward_dq_stored" })
                    Assert.IsTrue(names.Contains($"flash_attention_{kernel}_d{width}_{suffix}"), $"{kernel} d{width} {suffix}");
            }
        }
    }

    /// <summary>
    /// The kernels on the GPU (category "Gpu", run by scripts/gpu-suite.sh; inconclusive without one): the real
    /// mma.sync fragments, a GPT-2-sized head (64) over several tiles, a 128-wide head, a single token.
    /// </summary>
    [TestMethod]
    [TestCategory("Gpu")]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void GpuFlashAttentionMatchesTheCpuBackend(StorageType storage)
    {
        if (!CudaRuntime.TryInitialize(out string reason)) GpuSupport.Unavailable($"no GPU: {reason}");
        using CudaContext context = CudaContext.Primary();
        string cache = Directory.CreateTempSubdirectory("shardwise-flash-attention-").FullName;
        try
        {
            var compiler = new KernelCompiler(cache);
            using CudaModule forward = compiler.Load(context, "flash_attention_forward.cu");
            using CudaModule backward = compiler.Load(context, "flash_attention_backward.cu");
            string suffix = storage.Suffix();
            foreach (var (batch, heads, headDim, seq) in GpuShapes)
            {
                int dim = heads * headDim, width = headDim <= 64 ? 64 : 128, rows = batch * seq * heads;
                string at = $"GPU, {storage}, batch {batch}, heads {heads}, headDim {headDim}, seq {seq}";
                var data = new TestData(60 + seq);
                float[] qkv = storage.Rounded(data.NonZero(3L * batch * seq * dim));
                float[] dy = storage.Rounded(data.NonZero((long)batch * seq * dim));
                float[] prior = storage.Rounded(data.NonZero(qkv.Length));
                Expected expected = Reference(qkv, dy, prior, batch, seq, heads, dim);

                using DeviceMemory dQkv = Upload(context, qkv, storage), dDy = Upload(context, dy, storage);
                using DeviceMemory y = DeviceMemory.Allocate(context, 2L * batch * seq * dim);
                using DeviceMemory lse = DeviceMemory.Allocate<float>(context, (long)batch * heads * seq);
                using DeviceMemory delta = DeviceMemory.Allocate<float>(context, (long)batch * heads * seq);
                var grid = new CudaDim3((uint)SimtEmulator.Blocks(seq, Rows), (uint)(batch * heads));
                var forwardGrid = new CudaDim3((uint)SimtEmulator.Blocks(seq, ForwardRows(width)), (uint)(batch * heads));
                CudaFunction forwardKernel = forward.GetFunction($"flash_attention_forward_d{width}_{suffix}");
                CudaFunction dkdvKernel = backward.GetFunction($"flash_attention_backward_dkdv_d{width}_{suffix}");
                CudaFunction dqKernel = backward.GetFunction($"flash_attention_backward_dq_d{width}_{suffix}");
                CudaFunction storedDqKernel = backward.GetFunction($"flash_attention_backward_dq_stored_d{width}_{suffix}");
                forwardKernel.AllowDynamicSharedMemory((int)TileShared(width));
                dkdvKernel.AllowDynamicSharedMemory((int)DkdvShared(width, storedScores: true));
                dqKernel.AllowDynamicSharedMemory((int)TileShared(width));
                storedDqKernel.AllowDynamicSharedMemory((int)StoredDqShared(width));
                forwardKernel.Launch(forwardGrid, Threads, TileShared(width), null, dQkv, y, lse, seq, heads, headDim);
                backward.GetFunction($"flash_attention_backward_dot_{suffix}").Launch(
                    SimtEmulator.Blocks(rows, DotThreads / DotLanes), DotThreads, 0, null, y, dDy, delta, rows, seq, heads, headDim);
                context.Synchronize();
                Compare.Close(expected.Y, Download(y, batch * seq * dim, storage), storage.Tolerance(), $"y, {at}");
                var lseValues = new float[batch * heads * seq];
                lse.Download<float>(lseValues);
                Compare.Close(LogSumExp(qkv, batch, seq, heads, headDim), lseValues, 1e-5f, $"lse, {at}");
                Compare.Close(expected.LogSumExp, lseValues, 1e-5f, $"lse against CpuOps, {at}");

                foreach (bool storedScores in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                {
                    using DeviceMemory dqkv = Upload(context, prior, storage);
                    using DeviceMemory? scores = storedScores
                        ? DeviceMemory.Allocate(context, 2L * ((long)batch * heads * seq * seq + 8))
                        : null;
                    int add = accumulate ? 1 : 0;
                    dkdvKernel.Launch(grid, Threads, DkdvShared(width, storedScores), null, dQkv, dDy, lse, delta, dqkv,
                        scores, seq, heads, headDim, add);
                    if (scores is null)
                        dqKernel.Launch(grid, Threads, TileShared(width), null, dQkv, dDy, lse, delta, dqkv, seq, heads,
                            headDim, add);
                    else
                        storedDqKernel.Launch(grid, Threads, StoredDqShared(width), null, dQkv, scores, dqkv, seq, heads,
                            headDim, add);
                    context.Synchronize();
                    Compare.Close(accumulate ? expected.Accumulated : expected.Dqkv, Download(dqkv, qkv.Length, storage),
                        2 * storage.Tolerance(),
                        $"dqkv ({(accumulate ? "accumulated" : "overwritten")}, dQ {(storedScores ? "from stored dS" : "recomputed")}), {at}");
                }
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    private sealed record Expected(float[] Y, float[] LogSumExp, float[] Dqkv, float[] Accumulated);

    /// <summary>CpuOps&lt;float&gt; attention on the (already rounded) inputs: y, the saved log-sum-exp, dqkv, and prior + dqkv.</summary>
    private static Expected Reference(float[] qkv, float[] dy, float[] prior, int batch, int seq, int heads, int dim)
    {
        var cpu = new CpuReference();
        Slice qkvSlice = cpu.Put(qkv), y = cpu.Zeros((long)batch * seq * dim);
        Slice logSumExp = cpu.Zeros((long)batch * heads * seq), dySlice = cpu.Put(dy);
        Slice dqkv = cpu.Zeros(qkv.Length), accumulated = cpu.Put(prior);
        cpu.Ops.Attention(qkvSlice, y, logSumExp, batch, seq, heads, dim);
        cpu.Ops.AttentionBackward(qkvSlice, y, logSumExp, dySlice, dqkv, batch, seq, heads, dim, false);
        cpu.Ops.AttentionBackward(qkvSlice, y, logSumExp, dySlice, accumulated, batch, seq, heads, dim, true);
        return new Expected(cpu.Read(y), cpu.Read(logSumExp), cpu.Read(dqkv), cpu.Read(accumulated));
    }

    private static DeviceMemory Upload(CudaContext context, float[] values, StorageType storage)
    {
        using var host = DeviceBuffer.From(values, storage);
        DeviceMemory memory = DeviceMemory.Allocate(context, 2L * Math.Max(1, values.Length));
        memory.Upload<ushort>(host.ToBits());
        return memory;
    }

    private static float[] Download(DeviceMemory memory, int count, StorageType storage)
    {
        var bits = new ushort[count];
        memory.Download<ushort>(bits);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = storage == StorageType.Float16
                ? (float)BitConverter.UInt16BitsToHalf(bits[i])
                : BFloat16Conversion.ToSingle(bits[i]);
        }

        return values;
    }

    /// <summary>lse[b, h, t] = ln Σ_{u≤t} exp(q_t·k_u / √headDim), in double.</summary>
    private static float[] LogSumExp(float[] qkv, int batch, int seq, int heads, int headDim)
    {
        int dim = heads * headDim;
        double scale = 1 / Math.Sqrt(headDim);
        var result = new float[batch * heads * seq];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int t = 0; t < seq; t++)
        {
            var scores = new double[t + 1];
            double max = double.NegativeInfinity;
            for (int u = 0; u <= t; u++)
            {
                double dot = 0;
                for (int d = 0; d < headDim; d++)
                {
                    dot += (double)qkv[(b * seq + t) * 3 * dim + h * headDim + d] *
                           qkv[(b * seq + u) * 3 * dim + dim + h * headDim + d];
                }

                scores[u] = scale * dot;
                max = Math.Max(max, scores[u]);
            }

            double sum = 0;
            foreach (double s in scores) sum += Math.Exp(s - max);
            result[(b * heads + h) * seq + t] = (float)(max + Math.Log(sum));
        }

        return result;
    }

    /// <summary>D[b, h, t] = Σ_d dy[b, t, h·headDim + d] · y[b, t, h·headDim + d], in double.</summary>
    private static float[] Delta(float[] y, float[] dy, int batch, int seq, int heads, int headDim)
    {
        int dim = heads * headDim;
        var result = new float[batch * heads * seq];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int t = 0; t < seq; t++)
        {
            double sum = 0;
            for (int d = 0; d < headDim; d++)
            {
                int i = (b * seq + t) * dim + h * headDim + d;
                sum += (double)y[i] * dy[i];
            }

            result[(b * heads + h) * seq + t] = (float)sum;
        }

        return result;
    }
}
