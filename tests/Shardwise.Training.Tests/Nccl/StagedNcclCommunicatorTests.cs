using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Training.Nccl;

namespace Shardwise.Training.Tests.Nccl;

/// <summary>
/// Every collective of <see cref="StagedNcclCommunicator"/> against the in-process communicator's result on the same
/// random data: ranks are threads, one GPU each, bootstrapped over the in-process group (category "Gpu":
/// inconclusive without libnccl and enough GPUs).
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class StagedNcclCommunicatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void CollectivesMatchTheInProcessCommunicator(int ranks)
    {
        RequireGpus(ranks);
        InProcessGroup.Run(ranks, host =>
        {
            using var nccl = new StagedNcclCommunicator(host, host.Rank, ownsBootstrap: false);
            var random = new Random(100 + host.Rank);
            float[] values = Floats(random, 1000);

            float[] expected = (float[])values.Clone(), actual = (float[])values.Clone();
            host.AllReduceSum(expected);
            nccl.AllReduceSum(actual);
            Close(expected, actual, "AllReduceSum(float)");

            double[] doubles = Array.ConvertAll(Floats(random, 17), v => (double)v);
            double[] sum = (double[])doubles.Clone(), max = (double[])doubles.Clone();
            double[] ncclSum = (double[])doubles.Clone(), ncclMax = (double[])doubles.Clone();
            host.AllReduceSum(sum);
            nccl.AllReduceSum(ncclSum);
            host.AllReduceMax(max);
            nccl.AllReduceMax(ncclMax);
            for (int i = 0; i < doubles.Length; i++)
            {
                Assert.AreEqual(sum[i], ncclSum[i], 1e-12 * Math.Max(1, Math.Abs(sum[i])), $"AllReduceSum(double)[{i}]");
                Assert.AreEqual(max[i], ncclMax[i], $"AllReduceMax[{i}]");
            }

            var shard = new float[values.Length / ranks];
            var ncclShard = new float[shard.Length];
            host.ReduceScatterSum(values, shard);
            nccl.ReduceScatterSum(values, ncclShard);
            Close(shard, ncclShard, "ReduceScatterSum");

            var gathered = new float[shard.Length * ranks];
            var ncclGathered = new float[gathered.Length];
            host.AllGather(shard, gathered);
            nccl.AllGather(shard, ncclGathered);
            CollectionAssert.AreEqual(gathered, ncclGathered, "AllGather");

            float[] broadcast = Floats(random, 33), ncclBroadcast = (float[])broadcast.Clone();
            host.Broadcast(broadcast, root: ranks - 1);
            nccl.Broadcast(ncclBroadcast, root: ranks - 1);
            CollectionAssert.AreEqual(broadcast, ncclBroadcast, "Broadcast");

            if (ranks > 1)
            {
                int peer = 1 - host.Rank;
                var received = new float[values.Length];
                if (host.Rank == 0) nccl.Send(values, peer, tag: 5);
                else nccl.Receive(received, peer, tag: 5);
                var expectedReceived = new float[values.Length];
                if (host.Rank == 0) host.Send(values, peer, tag: 5);
                else host.Receive(expectedReceived, peer, tag: 5);
                CollectionAssert.AreEqual(expectedReceived, received, "Send/Receive");
            }

            nccl.Barrier();
            Assert.AreEqual(RingTraffic.AllReduce(values.Length, ranks) * sizeof(float) +
                            2 * RingTraffic.AllReduce(doubles.Length, ranks) * sizeof(double),
                nccl.Traffic.Sent(Collective.AllReduce), "all-reduce traffic counted like the MPI communicator");
            Assert.IsTrue(nccl.StagingGrowths <= 2, $"the staging buffer grew {nccl.StagingGrowths} times");

            using ICommunicator alone = nccl.Split(color: host.Rank, key: 0);
            var own = (float[])values.Clone();
            alone.AllReduceSum(own);
            CollectionAssert.AreEqual(values, own, "a one-rank split leaves the data as it was");
        }, Timeout);
    }

    private static void RequireGpus(int count)
    {
        if (!CudaRuntime.TryInitialize(out string reason)) Assert.Inconclusive($"no usable GPU: {reason}");
        if (!CudaRuntime.TryLoad(CudaLibrary.Nccl, out string nccl)) Assert.Inconclusive($"no NCCL: {nccl}");
        if (CudaDevice.Count < count) Assert.Inconclusive($"needs {count} GPUs, this machine has {CudaDevice.Count}");
    }

    private static float[] Floats(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    private static void Close(float[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-5f * Math.Max(1, Math.Abs(expected[i])), $"{what}[{i}]");
    }
}
