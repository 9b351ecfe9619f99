using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Precision;
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

    /// <summary>
    /// The in-place device collectives ZeRO uses (<see cref="Shardwise.Ops.IDeviceCollective"/>) on device buffers of
    /// each storage type: the average of every rank's buffer, this rank's averaged partition, and the gathered
    /// partitions, the sum and the maximum, against the same arithmetic on the host (16-bit results to one rounding of the type).
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void InPlaceDeviceCollectivesAverageAndGather(int ranks)
    {
        RequireGpus(ranks);
        const int partition = 1000;
        InProcessGroup.Run(ranks, host =>
        {
            using var nccl = new StagedNcclCommunicator(host, host.Rank, ownsBootstrap: false);
            using CudaContext context = CudaContext.Primary(host.Rank);
            using CudaEvent written = CudaEvent.Create(context, timing: false); // the uploads are synchronous; the event orders NCCL's stream after them
            foreach (var storage in new[] { StorageType.Float32, StorageType.Float16, StorageType.BFloat16 })
            {
                float tolerance = storage == StorageType.Float32 ? 1e-6f : storage == StorageType.Float16 ? 1e-3f : 8e-3f;
                int n = partition * ranks;
                // Rank r's values are the same random numbers shifted by r, so each rank knows every rank's input.
                float[] Input(int rank)
                {
                    float[] values = Floats(new Random(5), n).Select(v => v + rank).ToArray();
                    StorageRounding.RoundInPlace(values, storage);
                    return values;
                }
                float[] average = new float[n];
                for (int r = 0; r < ranks; r++)
                {
                    float[] values = Input(r);
                    for (int i = 0; i < n; i++) average[i] += values[i] / ranks;
                }

                using var buffer = DeviceMemory.Allocate(context, (long)n * storage.BytesPerElement());
                Upload(buffer, Input(host.Rank), storage);
                written.Record();
                nccl.Complete(nccl.AllReduceInPlace(buffer.Pointer, n, storage, Shardwise.Ops.DeviceReduction.Average, written));
                Close(average, Download(buffer, n, storage), tolerance, $"{storage} AllReduceInPlace (average)");

                foreach (var (reduction, expected) in new[] { (Shardwise.Ops.DeviceReduction.Sum, Sum()), (Shardwise.Ops.DeviceReduction.Max, Max()) })
                {
                    Upload(buffer, Input(host.Rank), storage);
                    written.Record();
                    nccl.Complete(nccl.AllReduceInPlace(buffer.Pointer, n, storage, reduction, written));
                    // The sum of 16-bit inputs is rounded once more to the type; a maximum is exact.
                    Close(expected, Download(buffer, n, storage), reduction == Shardwise.Ops.DeviceReduction.Max ? 0f : tolerance * ranks, $"{storage} AllReduceInPlace ({reduction})");
                }
                float[] Sum()
                {
                    var total = new float[n];
                    for (int r = 0; r < ranks; r++) { float[] values = Input(r); for (int i = 0; i < n; i++) total[i] += values[i]; }
                    return total;
                }
                float[] Max()
                {
                    float[] largest = Input(0);
                    for (int r = 1; r < ranks; r++) { float[] values = Input(r); for (int i = 0; i < n; i++) largest[i] = Math.Max(largest[i], values[i]); }
                    return largest;
                }

                Upload(buffer, Input(host.Rank), storage);
                written.Record();
                nccl.Complete(nccl.ReduceScatterAverageInPlace(buffer.Pointer, partition, storage, written));
                Close(average.AsSpan(host.Rank * partition, partition).ToArray(),
                    Download(buffer, n, storage).AsSpan(host.Rank * partition, partition).ToArray(), tolerance, $"{storage} ReduceScatterAverageInPlace");

                float[] mine = Input(host.Rank), gathered = new float[n];
                for (int r = 0; r < ranks; r++) Input(r).AsSpan(r * partition, partition).CopyTo(gathered.AsSpan(r * partition));
                Upload(buffer, mine, storage);
                written.Record();
                nccl.Complete(nccl.AllGatherInPlace(buffer.Pointer, partition, storage, written));
                CollectionAssert.AreEqual(gathered, Download(buffer, n, storage), $"{storage} AllGatherInPlace");
            }
        }, Timeout);
    }

    private static void Upload(DeviceMemory buffer, float[] values, StorageType storage)
    {
        if (storage == StorageType.Float32) { buffer.Upload<float>(values); return; }
        var bits = new ushort[values.Length];
        StorageConversion.Narrow(values, bits, storage);
        buffer.Upload<ushort>(bits);
    }

    private static float[] Download(DeviceMemory buffer, int count, StorageType storage)
    {
        var values = new float[count];
        if (storage == StorageType.Float32) { buffer.Download<float>(values); return values; }
        var bits = new ushort[count];
        buffer.Download<ushort>(bits);
        StorageConversion.Widen(bits, values, storage);
        return values;
    }

    private static void Close(float[] expected, float[] actual, float tolerance, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], tolerance * Math.Max(1, Math.Abs(expected[i])), $"{what}[{i}]");
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
