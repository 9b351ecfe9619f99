using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Training.Nccl;

namespace Shardwise.Training.Tests.Nccl;

/// <summary>The NCCL unique id survives the float broadcast that carries it from rank 0 to the others.</summary>
[TestClass]
public sealed class NcclUniqueIdCodecTests
{
    [TestMethod]
    public void EveryByteValueRoundTripsThroughABroadcast()
    {
        var id = new byte[NcclUniqueId.Size];
        new Random(7).NextBytes(id);
        id[0] = 0;
        id[1] = 255; // both ends of the range
        byte[][] received = InProcessGroup.Run(3, comm =>
        {
            var floats = new float[NcclUniqueId.Size];
            if (comm.Rank == 0) NcclUniqueIdCodec.ToFloats(id).CopyTo(floats, 0);
            comm.Broadcast(floats, root: 0);
            return NcclUniqueIdCodec.FromFloats(floats);
        }, TimeSpan.FromSeconds(30));
        foreach (byte[] bytes in received) CollectionAssert.AreEqual(id, bytes);
        CollectionAssert.AreEqual(id, NcclUniqueId.FromBytes(received[2]).ToArray());
    }

    [TestMethod]
    public void ACorruptedElementIsRefusedNamingItsIndex()
    {
        float[] floats = NcclUniqueIdCodec.ToFloats(new byte[4]);
        floats[2] = 1.5f;
        var e = Assert.ThrowsExactly<FormatException>(() => NcclUniqueIdCodec.FromFloats(floats));
        StringAssert.Contains(e.Message, "element 2 is 1.5");
        floats[2] = 256;
        Assert.ThrowsExactly<FormatException>(() => NcclUniqueIdCodec.FromFloats(floats));
        floats[2] = float.NaN;
        Assert.ThrowsExactly<FormatException>(() => NcclUniqueIdCodec.FromFloats(floats));
    }
}
