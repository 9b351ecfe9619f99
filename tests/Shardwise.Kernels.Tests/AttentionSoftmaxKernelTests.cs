using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// softmax.cu inside the attention core: the batched GEMMs cuBLAS will do are written out here in double, and the
/// whole forward (probabilities, log-sum-exp) and backward (probabilities formed again from the log-sum-exp, then
/// dqkv) are compared with a double softmax and CpuOps.Attention / AttentionBackward.
/// </summary>
[TestClass]
public sealed class AttentionSoftmaxKernelTests
{
    private const int Batch = 2, Heads = 2, HeadDim = 4, Dim = Heads * HeadDim, Threads = 256;
    private static readonly int[] Sequences = [1, 5, 64];

    private static float Scale => 1f / MathF.Sqrt(HeadDim);

    /// <summary>qkv[b, t, part·dim + h·headDim + d], part 0/1/2 for q/k/v.</summary>
    private static int At(int b, int t, int part, int h, int d, int seq) =>
        ((b * seq + t) * 3 * Dim) + (part * Dim) + (h * HeadDim) + d;

    /// <summary>out[b, h, i, j] = Σ_d left[b, i, h, d] · right[b, j, h, d], for [batch, seq, …] row-major operands.</summary>
    private static float[] ScoresLike(Func<int, int, int, int, float> left, Func<int, int, int, int, float> right,
        int seq)
    {
        var result = new float[Batch * Heads * seq * seq];
        for (int b = 0; b < Batch; b++)
        for (int h = 0; h < Heads; h++)
        for (int i = 0; i < seq; i++)
        for (int j = 0; j < seq; j++)
        {
            double sum = 0;
            for (int d = 0; d < HeadDim; d++) sum += (double)left(b, i, h, d) * right(b, j, h, d);
            result[((b * Heads + h) * seq + i) * seq + j] = (float)sum;
        }

        return result;
    }

    /// <summary>NaN everywhere, so an element a kernel leaves unwritten shows in the comparison.</summary>
    private static float[] NaNs(long count)
    {
        var values = new float[count];
        Array.Fill(values, float.NaN);
        return values;
    }

    /// <summary>P = causal softmax(scale·S) per row in double, zero above the diagonal, and each row's log-sum-exp.</summary>
    private static (float[] Probabilities, float[] LogSumExp) CausalSoftmax(float[] scores, int rows, int seq)
    {
        var probabilities = new float[rows * seq];
        var logSumExp = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            int visible = r % seq + 1;
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < visible; j++) max = Math.Max(max, Scale * (double)scores[r * seq + j]);
            for (int j = 0; j < visible; j++) sum += Math.Exp(Scale * (double)scores[r * seq + j] - max);
            for (int j = 0; j < visible; j++)
                probabilities[r * seq + j] = (float)(Math.Exp(Scale * (double)scores[r * seq + j] - max) / sum);
            logSumExp[r] = (float)(max + Math.Log(sum));
        }

        return (probabilities, logSumExp);
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ForwardAndBackwardMatchCpuAttention(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(30);
        foreach (int seq in Sequences)
        {
            string at = $"seq {seq}";
            int rows = Batch * Heads * seq;
            float[] qkv = storage.Rounded(data.NonZero(3L * Batch * seq * Dim, 2f));
            float[] dy = storage.Rounded(data.NonZero((long)Batch * seq * Dim));

            var cpu = new CpuReference();
            Slice qkvSlice = cpu.Put(qkv), logSumExp = cpu.Zeros(rows), dqkv = cpu.Zeros(qkv.Length);
            Slice y = cpu.Zeros((long)Batch * seq * Dim);
            cpu.Ops.Attention(qkvSlice, y, logSumExp, Batch, seq, Heads, Dim);
            cpu.Ops.AttentionBackward(qkvSlice, y, logSumExp, cpu.Put(dy), dqkv, Batch, seq, Heads, Dim, false);

            // Forward: S = Q·Kᵀ (unscaled, stored), then the kernel's scaled causal softmax and log-sum-exp, against
            // the same softmax in double and the CPU op's log-sum-exp.
            float Q(int b, int t, int h, int d) => qkv[At(b, t, 0, h, d, seq)];
            float K(int b, int t, int h, int d) => qkv[At(b, t, 1, h, d, seq)];
            float V(int b, int t, int h, int d) => qkv[At(b, t, 2, h, d, seq)];
            float DY(int b, int t, int h, int d) => dy[(b * seq + t) * Dim + h * HeadDim + d];
            using var scores = DeviceBuffer.From(ScoresLike(Q, K, seq), storage);
            var (expectedP, expectedLse) = CausalSoftmax(scores.ToFloats(), rows, seq);
            using var probs = DeviceBuffer.Zeroed((long)rows * seq, storage);
            using var lse = DeviceBuffer.From(NaNs(rows), StorageType.Float32);
            string suffix = storage.Suffix();
            int blocks = SimtEmulator.Blocks(rows, Threads / 32);
            SimtEmulator.Launch($"softmax_causal_forward_{suffix}", blocks, Threads, order, scores, probs, lse, rows,
                seq, Scale, KernelArg.Null, 1, Heads);
            Compare.Close(expectedP, probs.ToFloats(), storage.Tolerance(), $"probabilities, {at}");
            Compare.Close(expectedLse, lse.ToFloats(), 1e-5f, $"log-sum-exp against double, {at}");
            Compare.Close(cpu.Read(logSumExp), lse.ToFloats(), 4 * storage.Tolerance(), $"log-sum-exp against CpuOps, {at}");

            // Backward forms P again from the scores and the saved log-sum-exp.
            using var recomputed = DeviceBuffer.From(NaNs((long)rows * seq), storage);
            SimtEmulator.Launch($"softmax_causal_recompute_{suffix}", blocks, Threads, order, scores, lse, recomputed,
                rows, seq, Scale, KernelArg.Null, 1, Heads);
            float[] p = recomputed.ToFloats();
            Compare.Close(expectedP, p, storage.Tolerance(), $"recomputed probabilities, {at}");

            // Backward: dP = dY·Vᵀ (stored), the kernel's dS (scale folded in), then dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dY.
            using var dProbs = DeviceBuffer.From(ScoresLike(DY, V, seq), storage);
            using var dScores = DeviceBuffer.Zeroed((long)rows * seq, storage);
            SimtEmulator.Launch($"softmax_causal_backward_{suffix}", blocks, Threads, order, recomputed, dProbs, dScores,
                rows, seq, Scale);
            float[] ds = dScores.ToFloats();

            var expected = cpu.Read(dqkv);
            var actual = new float[qkv.Length];
            for (int b = 0; b < Batch; b++)
            for (int h = 0; h < Heads; h++)
            for (int t = 0; t < seq; t++)
            for (int d = 0; d < HeadDim; d++)
            {
                double dq = 0, dk = 0, dv = 0;
                for (int u = 0; u < seq; u++)
                {
                    int tu = ((b * Heads + h) * seq + t) * seq + u, ut = ((b * Heads + h) * seq + u) * seq + t;
                    dq += (double)ds[tu] * K(b, u, h, d);
                    dk += (double)ds[ut] * Q(b, u, h, d);
                    dv += (double)p[ut] * DY(b, u, h, d);
                }

                actual[At(b, t, 0, h, d, seq)] = (float)dq;
                actual[At(b, t, 1, h, d, seq)] = (float)dk;
                actual[At(b, t, 2, h, d, seq)] = (float)dv;
            }

            Compare.Close(expected, actual, 2 * storage.Tolerance(), $"dqkv, {at}");
            for (int r = 0; r < rows; r++)
            {
                for (int j = r % seq + 1; j < seq; j++)
                {
                    Assert.AreEqual(0f, p[r * seq + j], $"P above the diagonal, row {r}, {at}");
                    Assert.AreEqual(0f, ds[r * seq + j], $"dS above the diagonal, row {r}, {at}");
                }
            }
        }
    }

    /// <summary>
    /// With a block-sparse layout (bigbird, a layout per head, blocks of 3 over 33 keys: a partial last tile row), the
    /// forward's probabilities and log-sum-exp and the recomputed probabilities against CpuOps with the same pattern:
    /// its lse, and P formed from it (y = P·V checked through the CPU op's y).
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BlockSparseLayoutDropsTheKeysCpuAttentionDrops(StorageType storage, SchedulerOrder order)
    {
        const int seq = 33;
        var pattern = new Shardwise.Sparsity.SparseAttentionPattern
        {
            Mode = Shardwise.Sparsity.SparseAttentionMode.BigBird, Block = 3, NumRandomBlocks = 2, NumSlidingWindowBlocks = 1,
            DifferentLayoutPerHead = true, Seed = 3,
        };
        var layout = pattern.LayoutFor(Heads, seq);
        var data = new TestData(33);
        int rows = Batch * Heads * seq;
        float[] qkv = storage.Rounded(data.NonZero(3L * Batch * seq * Dim, 2f));
        var cpu = new CpuReference();
        cpu.Ops.AttentionSparsity = pattern;
        Slice qkvSlice = cpu.Put(qkv), logSumExp = cpu.Zeros(rows), y = cpu.Zeros((long)Batch * seq * Dim);
        cpu.Ops.Attention(qkvSlice, y, logSumExp, Batch, seq, Heads, Dim);

        float Q(int b, int t, int h, int d) => qkv[At(b, t, 0, h, d, seq)];
        float K(int b, int t, int h, int d) => qkv[At(b, t, 1, h, d, seq)];
        using var scores = DeviceBuffer.From(ScoresLike(Q, K, seq), storage);
        using var cells = DeviceBuffer.FromBytes(layout.Cells);
        using var probs = DeviceBuffer.From(NaNs((long)rows * seq), storage);
        using var lse = DeviceBuffer.From(NaNs(rows), StorageType.Float32);
        string suffix = storage.Suffix();
        int blocks = SimtEmulator.Blocks(rows, Threads / 32);
        SimtEmulator.Launch($"softmax_causal_forward_{suffix}", blocks, Threads, order, scores, probs, lse, rows, seq, Scale,
            cells, layout.Block, Heads);
        Compare.Close(cpu.Read(logSumExp), lse.ToFloats(), 4 * storage.Tolerance(), "log-sum-exp against CpuOps");
        using var recomputed = DeviceBuffer.From(NaNs((long)rows * seq), storage);
        SimtEmulator.Launch($"softmax_causal_recompute_{suffix}", blocks, Threads, order, scores, lse, recomputed, rows, seq,
            Scale, cells, layout.Block, Heads);

        float[] p = probs.ToFloats(), again = recomputed.ToFloats();
        int dropped = 0;
        for (int r = 0; r < rows; r++)
        {
            int h = r / seq % Heads, t = r % seq;
            for (int j = 0; j < seq; j++)
            {
                bool kept = layout.KeepsToken(h, t, j);
                if (!kept && j <= t) dropped++;
                if (!kept)
                {
                    Assert.AreEqual(0f, p[r * seq + j], $"P of a dropped key, row {r}, key {j}");
                    Assert.AreEqual(0f, again[r * seq + j], $"recomputed P of a dropped key, row {r}, key {j}");
                }
            }
        }

        Assert.IsTrue(dropped > rows, $"the layout drops too little to test: {dropped} causal keys");
        Compare.Close(p, again, storage.Tolerance(), "recomputed probabilities");
        // y = P·V per head against the CPU op (which masked the same keys).
        float[] expectedY = cpu.Read(y), actualY = new float[expectedY.Length];
        for (int b = 0; b < Batch; b++)
        for (int h = 0; h < Heads; h++)
        for (int t = 0; t < seq; t++)
        for (int d = 0; d < HeadDim; d++)
        {
            double sum = 0;
            for (int u = 0; u < seq; u++) sum += (double)p[((b * Heads + h) * seq + t) * seq + u] * qkv[At(b, u, 2, h, d, seq)];
            actualY[(b * seq + t) * Dim + h * HeadDim + d] = (float)sum;
        }

        Compare.Close(expectedY, actualY, 2 * storage.Tolerance(), "y = P·V against CpuOps");
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void SoftmaxRunsInPlace(SchedulerOrder order)
    {
        const int seq = 37, rows = 3 * seq;
        float[] s = new TestData(31).NonZero(rows * seq, 3f);
        using var separate = DeviceBuffer.Zeroed(rows * seq, StorageType.Float32);
        using var input = DeviceBuffer.From(s, StorageType.Float32);
        using var inPlace = DeviceBuffer.From(s, StorageType.Float32);
        using var lse = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var inPlaceLse = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        int blocks = SimtEmulator.Blocks(rows, 2);
        SimtEmulator.Launch("softmax_causal_forward_f32", blocks, 64, order, input, separate, lse, rows, seq, 0.5f, KernelArg.Null, 1, 3);
        SimtEmulator.Launch("softmax_causal_forward_f32", blocks, 64, order, inPlace, inPlace, inPlaceLse, rows, seq, 0.5f, KernelArg.Null, 1, 3);
        CollectionAssert.AreEqual(separate.ToFloats(), inPlace.ToFloats());
        CollectionAssert.AreEqual(lse.ToFloats(), inPlaceLse.ToFloats());

        using var recomputed = DeviceBuffer.Zeroed(rows * seq, StorageType.Float32);
        using var recomputedInPlace = DeviceBuffer.From(s, StorageType.Float32);
        SimtEmulator.Launch("softmax_causal_recompute_f32", blocks, 64, order, input, lse, recomputed, rows, seq, 0.5f, KernelArg.Null, 1, 3);
        SimtEmulator.Launch("softmax_causal_recompute_f32", blocks, 64, order, recomputedInPlace, lse, recomputedInPlace,
            rows, seq, 0.5f, KernelArg.Null, 1, 3);
        CollectionAssert.AreEqual(recomputed.ToFloats(), recomputedInPlace.ToFloats());

        float[] dp = new TestData(32).NonZero(rows * seq);
        using var dProbs = DeviceBuffer.From(dp, StorageType.Float32);
        using var dScores = DeviceBuffer.Zeroed(rows * seq, StorageType.Float32);
        SimtEmulator.Launch("softmax_causal_backward_f32", blocks, 64, order, separate, dProbs, dScores, rows, seq, 0.5f);
        SimtEmulator.Launch("softmax_causal_backward_f32", blocks, 64, order, separate, dProbs, dProbs, rows, seq, 0.5f);
        CollectionAssert.AreEqual(dScores.ToFloats(), dProbs.ToFloats());
    }
}
