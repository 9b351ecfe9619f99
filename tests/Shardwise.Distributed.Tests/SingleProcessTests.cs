using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Distributed.Tests;

/// <summary>The one-rank communicator a program gets without mpirun, and how the factory and timeout are chosen.</summary>
[TestClass]
public sealed class SingleProcessTests
{
    [TestMethod]
    public void CollectivesOverOneRankAreIdentitiesAndMoveNothing()
    {
        using var comm = new SingleProcessCommunicator(TimeSpan.FromSeconds(5));
        float[] data = TestData.Floats(1, 9);
        float[] original = (float[])data.Clone();
        comm.AllReduceSum(data);
        Bitwise.AreEqual(original, data, "AllReduceSum");
        double[] doubles = TestData.Doubles(2, 9), originalDoubles = (double[])doubles.Clone();
        comm.AllReduceSum(doubles);
        comm.AllReduceMax(doubles);
        Bitwise.AreEqual(originalDoubles, doubles, "AllReduce doubles");
        var output = new float[9];
        comm.ReduceScatterSum(data, output);
        Bitwise.AreEqual(original, output, "ReduceScatterSum");
        comm.AllGather(data, output);
        Bitwise.AreEqual(original, output, "AllGather");
        comm.Broadcast(data, 0);
        comm.Barrier();
        Bitwise.AreEqual(original, data, "Broadcast");
        Assert.AreEqual(0L, comm.Traffic.TotalSent + comm.Traffic.TotalReceived);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => comm.Send(data, 1, 0));
    }

    [TestMethod]
    public void WithoutMpirunTheFactoryGivesASingleRank()
    {
        if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null)
            Assert.Inconclusive("the tests themselves run under mpirun");
        using ICommunicator comm = Communicators.Create(TimeSpan.FromSeconds(7));
        Assert.IsInstanceOfType<SingleProcessCommunicator>(comm);
        Assert.AreEqual((0, 1), (comm.Rank, comm.Size));
        Assert.AreEqual(TimeSpan.FromSeconds(7), comm.Timeout);
    }

    [TestMethod]
    public void TheTimeoutComesFromTheEnvironmentWithADefault()
    {
        string? saved = Environment.GetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable, null);
            Assert.AreEqual(TimeSpan.FromSeconds(300), CommunicatorTimeout.FromEnvironment());
            Environment.SetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable, "2.5");
            Assert.AreEqual(TimeSpan.FromSeconds(2.5), CommunicatorTimeout.FromEnvironment());
            Environment.SetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable, "-1");
            Assert.ThrowsExactly<ArgumentException>(() => CommunicatorTimeout.FromEnvironment());
            Environment.SetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable, "soon");
            Assert.ThrowsExactly<ArgumentException>(() => CommunicatorTimeout.FromEnvironment());
        }
        finally
        {
            Environment.SetEnvironmentVariable(CommunicatorTimeout.EnvironmentVariable, saved);
        }
    }
}
