using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The embedding gradient's row groupings kept on the device (EmbeddingGroupingCache): an id list seen lately (the
/// position ids of every step) is neither sorted nor uploaded again, a new one is, the least recently used of the four
/// regions gives way, and every result stays the CPU backend's.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaEmbeddingGroupingTests
{
    [TestMethod]
    public void ARepeatedIdListReusesItsGroupingAndEveryGradientMatchesTheCpu()
    {
        using var twins = new TwinBackends(GpuSupport.RequireCudaOps(), seed: 9);
        const int rows = 70, dim = 33, vocabulary = 13;
        Slice dOutput = twins.Random((long)rows * dim), dTable = twins.Random(vocabulary * dim);
        IndexSlice[] lists = new IndexSlice[6];
        for (int i = 0; i < lists.Length; i++) lists[i] = twins.Indices(twins.Ints(rows, vocabulary));

        long Uploaded(IndexSlice ids)
        {
            HostDeviceTraffic before = twins.Gpu.HostDeviceTraffic;
            twins.Run(ops => ops.EmbeddingBackward(ids, dOutput, dTable, rows, dim));
            twins.AssertClose(dTable, 1e-4f, "embedding backward");
            return (twins.Gpu.HostDeviceTraffic - before).BytesUp;
        }

        (long hits, long misses) = twins.Gpu.EmbeddingGroupings;
        Assert.IsTrue(Uploaded(lists[0]) > 0, "a new id list is grouped and uploaded");
        Assert.AreEqual(0, Uploaded(lists[0]), "the same list again: its grouping is on the device");
        Assert.IsTrue(Uploaded(lists[1]) > 0, "another list");
        Assert.AreEqual(0, Uploaded(lists[0]), "both are kept");
        Assert.AreEqual(0, Uploaded(lists[1]), "both are kept");
        Assert.AreEqual((hits + 3, misses + 2), twins.Gpu.EmbeddingGroupings);

        // Four more lists: 2, 3, 4 fill the regions, 5 evicts the least recently used (list 0).
        for (int i = 2; i < 6; i++) Assert.IsTrue(Uploaded(lists[i]) > 0, $"list {i}");
        Assert.IsTrue(Uploaded(lists[0]) > 0, "list 0 was evicted");
        Assert.AreEqual(0, Uploaded(lists[5]), "list 5 is still there");
        twins.AssertArenasClose(1e-4f, "nothing else changed");
    }
}
