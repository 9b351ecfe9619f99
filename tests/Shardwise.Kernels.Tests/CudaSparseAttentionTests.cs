using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Sparsity;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// CudaOps.Attention / AttentionBackward with <see cref="ITensorOps{T}.AttentionSparsity"/> set, against CpuOps with
/// the same pattern (category "Gpu": the emulated device runs it in every CI run): fp32 and unfused 16-bit take the
/// GEMM path (its softmax masks the dropped keys), fused 16-bit the block-sparse flash kernels. Also: the layout goes
/// to the device once, and the same backend without the pattern gives other numbers.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaSparseAttentionTests
{
    private static readonly SparseAttentionPattern[] Patterns =
    [
        new() { Block = 16, DifferentLayoutPerHead = true, NumDifferentGlobalPatterns = 2 },
        new() { Mode = SparseAttentionMode.BigBird, Block = 32, NumRandomBlocks = 1, NumSlidingWindowBlocks = 1, NumGlobalBlocks = 1, Seed = 9 },
    ];

    [TestMethod]
    [DataRow(StorageType.Float32, true)]
    [DataRow(StorageType.Float16, true)]
    [DataRow(StorageType.BFloat16, true)]
    [DataRow(StorageType.Float16, false)]
    public void SparseAttentionMatchesTheCpu(StorageType storage, bool fused)
    {
        const int batch = 2, sequence = 160, heads = 2, dim = 64;
        CudaOps backend = GpuSupport.RequireCudaOps(storage: storage, fusedAttention: fused);
        using var twins = new TwinBackends(backend, 12, activations: 1 << 21);
        float tolerance = storage == StorageType.Float32 ? 1e-4f : 2 * storage.UnitRoundoff();
        foreach (SparseAttentionPattern pattern in Patterns)
        {
            foreach (ITensorOps<float> ops in twins.Both) ops.AttentionSparsity = pattern;
            string at = $"{storage}, fused {fused}, {pattern.Describe()}";
            Slice qkv = twins.Random(3L * batch * sequence * dim);
            twins.AlignTo(8);
            Slice y = twins.Random((long)batch * sequence * dim);
            Slice lse = twins.Statistics((long)batch * heads * sequence);
            twins.Gpu.StartProfiling();
            twins.Run(ops => ops.Attention(qkv, y, lse, batch, sequence, heads, dim));
            twins.AssertStatisticsClose(lse, Math.Max(tolerance, 1e-4f), $"log-sum-exp, {at}");
            twins.AssertClose(y, tolerance, $"y, {at}");
            Slice dy = twins.Random((long)batch * sequence * dim), dqkv = twins.Random(3L * batch * sequence * dim);
            twins.Sync(y);
            twins.SyncStatistics(lse);
            twins.Run(ops => ops.AttentionBackward(qkv, y, lse, dy, dqkv, batch, sequence, heads, dim, accumulate: true));
            string[] launches = [.. twins.Gpu.StopProfiling().Select(t => t.Operation)];
            bool flash = fused && storage != StorageType.Float32;
            Assert.AreEqual(flash ? 3 : 0, launches.Count(l => l.Contains("_sparse_", StringComparison.Ordinal)),
                $"the sparse flash kernels ran (forward, dK/dV, dQ) exactly when the flash path applies: {string.Join(", ", launches)}, {at}");
            (float[] cpu, float[] gpu) = twins.Read(dqkv);
            Norms.RelativeClose(cpu, gpu, storage == StorageType.Float32 ? 1e-5 : 2 * storage.UnitRoundoff(), $"dqkv, {at}");
        }
    }

    [TestMethod]
    public void TheLayoutIsCopiedOnceAndMatters()
    {
        const int batch = 1, sequence = 128, heads = 2, dim = 32;
        CudaOps backend = GpuSupport.RequireCudaOps(storage: StorageType.Float16);
        using var twins = new TwinBackends(backend, 13, activations: 1 << 20);
        Slice qkv = twins.Random(3L * batch * sequence * dim);
        twins.AlignTo(8);
        Slice y = twins.Random((long)batch * sequence * dim), lse = twins.Statistics((long)batch * heads * sequence);
        twins.Gpu.Attention(qkv, y, lse, batch, sequence, heads, dim);
        float[] dense = twins.Read(y).Gpu;

        twins.Gpu.AttentionSparsity = new SparseAttentionPattern { Block = 8 };
        twins.Gpu.Attention(qkv, y, lse, batch, sequence, heads, dim);
        int allocations = backend.DeviceAllocations;
        twins.Gpu.Attention(qkv, y, lse, batch, sequence, heads, dim);
        Assert.AreEqual(allocations, backend.DeviceAllocations, "a second step of the same shape allocates nothing");
        float[] sparse = twins.Read(y).Gpu;
        Assert.IsTrue(dense.Zip(sparse).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the pattern changed nothing");
    }
}
