using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Distributed.Tests;

/// <summary>
/// SHARDWISE_COMMUNICATOR: mpi by default (auto on a GPU job), nccl or refuse with the reason, auto falls back to MPI
/// with a note.
/// </summary>
[TestClass]
public sealed class CommunicatorSelectionTests
{
    private const string NoLibrary = "libnccl.so.2 not found; tried /opt/nccl/lib/libnccl.so.2";

    [TestMethod]
    public void UnsetOrMpiMeansMpiWithoutProbing()
    {
        Assert.AreEqual(CommunicatorKind.Mpi, Communicators.ParseKind(null));
        Assert.AreEqual(CommunicatorKind.Mpi, Communicators.ParseKind(" MPI "));
        CommunicatorDecision decision = Communicators.Decide(CommunicatorKind.Mpi, underMpirun: true, facts: null);
        Assert.AreEqual(new CommunicatorDecision(CommunicatorKind.Mpi, null), decision);
    }

    [TestMethod]
    public void UnsetOnAGpuJobIsAutoAndItsFallbackNoteSaysSo()
    {
        Assert.AreEqual((CommunicatorKind.Auto, true), Communicators.Requested(null, gpuJob: true));
        Assert.AreEqual((CommunicatorKind.Auto, true), Communicators.Requested(" ", gpuJob: true));
        Assert.AreEqual((CommunicatorKind.Mpi, true), Communicators.Requested(null, gpuJob: false));
        Assert.AreEqual((CommunicatorKind.Mpi, false), Communicators.Requested("mpi", gpuJob: true));
        Assert.AreEqual((CommunicatorKind.Nccl, false), Communicators.Requested("nccl", gpuJob: false));

        Assert.AreEqual(CommunicatorKind.Nccl, Communicators.Decide(CommunicatorKind.Auto, true, new NcclFacts(null, 4, 4), defaulted: true).Kind);
        CommunicatorDecision shared = Communicators.Decide(CommunicatorKind.Auto, true, new NcclFacts(null, 1, 2), defaulted: true);
        Assert.AreEqual(CommunicatorKind.Mpi, shared.Kind);
        StringAssert.StartsWith(shared.Note, "SHARDWISE_COMMUNICATOR is unset on a GPU job (auto): using MPI over host buffers because 2 ranks run on this node but it has 1 GPU(s)");
    }

    [TestMethod]
    public void UnknownNameIsRefusedWithTheVariableAndTheChoices()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Communicators.ParseKind("gloo"));
        StringAssert.Contains(e.Message, "SHARDWISE_COMMUNICATOR='gloo'");
        StringAssert.Contains(e.Message, "mpi, nccl, auto");
    }

    [TestMethod]
    public void NcclWithOneGpuPerLocalRankIsChosen()
    {
        CommunicatorDecision decision = Communicators.Decide(CommunicatorKind.Nccl, true, new NcclFacts(null, 2, 2));
        Assert.AreEqual(new CommunicatorDecision(CommunicatorKind.Nccl, null), decision);
        Assert.AreEqual(CommunicatorKind.Nccl,
            Communicators.Decide(CommunicatorKind.Auto, true, new NcclFacts(null, 8, 4)).Kind);
    }

    [TestMethod]
    public void NcclWithoutLibncclFailsNamingTheLibraryAndTheSearchPath()
    {
        var e = Assert.ThrowsExactly<CommunicatorUnavailableException>(() =>
            Communicators.Decide(CommunicatorKind.Nccl, true, new NcclFacts(NoLibrary, 0, 2)));
        StringAssert.Contains(e.Message, "SHARDWISE_COMMUNICATOR=nccl");
        StringAssert.Contains(e.Message, "libnccl");
        StringAssert.Contains(e.Message, "SHARDWISE_CUDA_PATH");
        StringAssert.Contains(e.Message, NoLibrary);
    }

    [TestMethod]
    public void AutoWithoutLibncclFallsBackToMpiWithANote()
    {
        CommunicatorDecision decision = Communicators.Decide(CommunicatorKind.Auto, true, new NcclFacts(NoLibrary, 0, 2));
        Assert.AreEqual(CommunicatorKind.Mpi, decision.Kind);
        Assert.IsNotNull(decision.Note);
        StringAssert.Contains(decision.Note, "using MPI");
        StringAssert.Contains(decision.Note, "libnccl");
    }

    [TestMethod]
    public void TwoRanksOnOneGpuAreRefusedForNcclAndSentToMpiForAuto()
    {
        var facts = new NcclFacts(null, DeviceCount: 1, LocalRanks: 2);
        var e = Assert.ThrowsExactly<CommunicatorUnavailableException>(() =>
            Communicators.Decide(CommunicatorKind.Nccl, true, facts));
        StringAssert.Contains(e.Message, "2 ranks run on this node but it has 1 GPU(s)");
        StringAssert.Contains(e.Message, "NCCL refuses");
        StringAssert.Contains(e.Message, "SHARDWISE_COMMUNICATOR=mpi");

        CommunicatorDecision decision = Communicators.Decide(CommunicatorKind.Auto, true, facts);
        Assert.AreEqual(CommunicatorKind.Mpi, decision.Kind);
        StringAssert.Contains(decision.Note, "share one device");
    }

    [TestMethod]
    public void NoDeviceIsRefused()
    {
        var e = Assert.ThrowsExactly<CommunicatorUnavailableException>(() =>
            Communicators.Decide(CommunicatorKind.Nccl, true, new NcclFacts(null, 0, 1)));
        StringAssert.Contains(e.Message, "no CUDA device");
    }

    [TestMethod]
    public void NcclOutsideMpirunIsRefusedAndAutoStaysSingleProcess()
    {
        var e = Assert.ThrowsExactly<CommunicatorUnavailableException>(() =>
            Communicators.Decide(CommunicatorKind.Nccl, underMpirun: false, facts: null));
        StringAssert.Contains(e.Message, "mpirun");
        Assert.AreEqual(CommunicatorKind.Mpi, Communicators.Decide(CommunicatorKind.Auto, false, null).Kind);
    }
}
