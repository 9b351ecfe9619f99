using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Offload;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>
/// The NVMe swap of the optimizer state on its own: chunking, the pass modes with and without pipelined reads and
/// writes, the chunked Adam step against the in-memory one, the swap file's hygiene and its errors.
/// </summary>
[TestClass]
public sealed class SwappedOptimizerStateTests
{
    private string _directory = null!;

    [TestInitialize]
    public void MakeDirectory() => _directory = Directory.CreateTempSubdirectory("shardwise-swap-").FullName;

    [TestCleanup]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    private OffloadConfig Nvme(int buffers, bool pipelineRead, bool pipelineWrite) => OffloadConfig.Disabled(forParameters: false) with
    {
        Device = OffloadDevice.Nvme,
        NvmePath = _directory,
        BufferCount = buffers,
        PipelineRead = pipelineRead,
        PipelineWrite = pipelineWrite,
    };

    private static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    [TestMethod]
    [DataRow(1000L, 1_000_000_000L, 1000)]         // one chunk: the partition is smaller than sub_group_size
    [DataRow(1000L, 200L, 192)]                    // aligned down to whole 64-element groups
    [DataRow(1000L, 10L, 64)]                      // never below 64
    [DataRow(100_000_000L, 1_000_000_000L, 1 << 22)] // the default sub_group_size is capped at 4 Mi elements
    public void ChunksAreSubGroupsAlignedAndCapped(long length, long subGroupSize, int expected)
        => Assert.AreEqual(expected, SwappedOptimizerState.ChunkElementsFor(length, subGroupSize));

    [TestMethod]
    [DataRow(1, false, false)]
    [DataRow(2, true, false)]
    [DataRow(2, false, true)]
    [DataRow(3, true, true)]
    [DataRow(4, true, true)]
    public void UpdatePassesPersistAndEveryModeSeesTheSameChunks(int buffers, bool pipelineRead, bool pipelineWrite)
    {
        const int Length = 1000; // chunks of 128: seven whole ones and a tail of 104
        var masters = Random(Length, 1);
        using var state = SwappedOptimizerState.Create(Nvme(buffers, pipelineRead, pipelineWrite), subGroupSize: 128, masters, rank: 0);
        Assert.AreEqual(8, state.Chunks);
        Assert.AreEqual(Math.Min(buffers, 8), state.BufferCount);
        Assert.AreEqual(buffers > 1 && pipelineRead, state.PipelineRead);
        Assert.AreEqual(Length * 12L, state.FileBytes);

        var (m0, a0, s0) = state.ReadAll();
        CollectionAssert.AreEqual(masters, m0);
        Assert.IsTrue(a0.All(x => x == 0) && s0.All(x => x == 0), "the moments start at zero");

        // Three update passes, each adding a different function of the element index to every state.
        for (int pass = 1; pass <= 3; pass++)
        {
            using var update = state.Begin(SwapPassMode.Update);
            long expectedStart = 0;
            while (update.Next(out long start, out var m, out var a, out var s))
            {
                Assert.AreEqual(expectedStart, start);
                for (int i = 0; i < m.Length; i++)
                {
                    m[i] += pass;
                    a[i] += pass * (start + i);
                    s[i] -= pass;
                }
                expectedStart += m.Length;
            }
            Assert.AreEqual(Length, expectedStart);
        }

        var (m1, a1, s1) = state.ReadAll();
        for (int i = 0; i < Length; i++)
        {
            Assert.AreEqual(masters[i] + 1f + 2f + 3f, m1[i], 1e-6f, $"master {i}");
            Assert.AreEqual(6f * i, a1[i], $"exp_avg {i}");
            Assert.AreEqual(-6f, s1[i], $"exp_avg_sq {i}");
        }

        // Masters alone: the moments are kept.
        var replaced = Random(Length, 2);
        state.WriteMasters(replaced);
        var read = new float[Length];
        state.ReadMasters(read);
        CollectionAssert.AreEqual(replaced, read);
        CollectionAssert.AreEqual(a1, state.ReadAll().ExpAvg);
    }

    /// <summary>Adam over the swapped chunks equals one call over the whole partition bit for bit, with a tail that is not a whole vector.</summary>
    [TestMethod]
    [DataRow(1, false)]
    [DataRow(4, true)]
    public void ChunkedAdamEqualsTheWholePartitionStep(int buffers, bool pipelined)
    {
        const int Length = 5_003;
        var options = new AdamOptions { WeightDecay = 0.1, AdamWMode = true };
        var reference = new AdamOptimizer(Length, options);
        var swapped = new AdamOptimizer(Length, options);
        var parameters = Random(Length, 3);
        using var state = SwappedOptimizerState.Create(Nvme(buffers, pipelined, pipelined), subGroupSize: 700, parameters, rank: 0);
        Assert.AreEqual(8, state.Chunks, "chunks of 640");

        for (int step = 0; step < 5; step++)
        {
            var gradients = Random(Length, 10 + step);
            double lr = 1e-2 / (step + 1);
            reference.Step(parameters, gradients, lr);
            var scalars = swapped.NextChunkedStep(lr);
            using var pass = state.Begin(SwapPassMode.Update);
            while (pass.Next(out long start, out var m, out var a, out var s))
                swapped.StepChunk(m, gradients.AsSpan((int)start, m.Length), a, s, scalars);
        }

        var (master, expAvg, expAvgSq) = state.ReadAll();
        CollectionAssert.AreEqual(parameters, master);
        CollectionAssert.AreEqual(reference.State.ExpAvg, expAvg);
        CollectionAssert.AreEqual(reference.State.ExpAvgSq, expAvgSq);
        Assert.AreEqual(reference.State.Step, swapped.State.Step);
        Assert.IsFalse(swapped.State.MomentsAllocated, "the swapped optimizer never allocates host moments");
    }

    [TestMethod]
    public void TheSwapFileIsUnlinkedAtOnceAndItsSpaceReserved()
    {
        using var state = SwappedOptimizerState.Create(Nvme(2, false, false), 1_000_000_000, Random(10_000, 4), rank: 3);
        StringAssert.Contains(Path.GetFileName(state.FilePath), "shardwise-optimizer-rank3-pid");
        StringAssert.StartsWith(state.FilePath, _directory);
        if (!OperatingSystem.IsWindows())
            Assert.AreEqual(0, Directory.GetFileSystemEntries(_directory).Length, "a killed process leaves no swap file behind");
    }

    [TestMethod]
    public void AMissingDirectoryIsNamedWithItsConfigPath()
    {
        var missing = Path.Combine(_directory, "not-there");
        var offload = Nvme(1, false, false) with { NvmePath = missing };
        var error = Assert.ThrowsExactly<OffloadException>(() => SwappedOptimizerState.Create(offload, 1000, Random(10, 5), rank: 0));
        StringAssert.Contains(error.Message, "$.zero_optimization.offload_optimizer.nvme_path");
        StringAssert.Contains(error.Message, missing);
    }

    [TestMethod]
    public void ADiskTooSmallIsReportedBeforeAnythingIsWritten()
    {
        long free = SwapFile.FreeBytes(_directory);
        Assert.IsTrue(free > 0, "the test directory's free space is known");
        var error = Assert.ThrowsExactly<OffloadException>(() => SwapFile.Create(_directory, "too-big", free + (1L << 30), "$.zero_optimization.offload_optimizer.nvme_path"));
        StringAssert.Contains(error.Message, "$.zero_optimization.offload_optimizer.nvme_path");
        StringAssert.Contains(error.Message, "free, and this rank's swap file needs");
        Assert.AreEqual(0, Directory.GetFileSystemEntries(_directory).Length);
    }

    [TestMethod]
    public void ConfigTakesNvmeForTheOptimizerAndRequiresItsPath()
    {
        var config = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "zero_optimization": { "stage": 2, "sub_group_size": 1000,
              "offload_optimizer": { "device": "nvme", "nvme_path": "/local_nvme", "buffer_count": 3, "pipeline_read": true } } }
            """).Config;
        var offload = config.ZeroOptimization.OffloadOptimizer;
        Assert.AreEqual(OffloadDevice.Nvme, offload.Device);
        Assert.AreEqual("/local_nvme", offload.NvmePath);
        Assert.AreEqual(3, offload.BufferCount);
        Assert.IsTrue(offload.PipelineRead);
        Assert.IsFalse(offload.PipelineWrite);
        StringAssert.Contains(config.Describe(), "offload_optimizer.nvme_path");

        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "zero_optimization": { "stage": 2, "offload_optimizer": { "device": "nvme" } } }
            """));
        StringAssert.Contains(error.Message, "$.zero_optimization.offload_optimizer.nvme_path: is required with device \"nvme\"");

        var parameters = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "zero_optimization": { "stage": 3, "offload_param": { "device": "nvme", "nvme_path": "/x" } } }
            """).Config.ZeroOptimization.OffloadParam;
        Assert.AreEqual((OffloadDevice.Nvme, "/x"), (parameters.Device, parameters.NvmePath));
        var noPath = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "zero_optimization": { "stage": 3, "offload_param": { "device": "nvme" } } }
            """));
        StringAssert.Contains(noPath.Message, "$.zero_optimization.offload_param.nvme_path: is required with device \"nvme\": the directory the parameters are swapped to");
    }
}
