using System;
using System.Runtime.CompilerServices;
using Shardwise.Cuda;
using Shardwise.Distributed;

namespace Shardwise.Training.Nccl;

/// <summary>
/// Plugs <see cref="StagedNcclCommunicator"/> into <see cref="Communicators.Create()"/>: Shardwise.Distributed does
/// not depend on CUDA, so the layer that sees both registers the provider when it loads (before any trainer code
/// can call Communicators.Create).
/// </summary>
public sealed class NcclProvider : INcclCommunicatorProvider
{
#pragma warning disable CA2255 // a library module initializer on purpose: registering is all it does, and it is cheap
    [ModuleInitializer]
    internal static void Register() => Communicators.NcclProvider ??= new NcclProvider();
#pragma warning restore CA2255

    /// <summary>OMPI_COMM_WORLD_LOCAL_RANK: this process's index among the job's ranks on this node (0 without it).</summary>
    public static int LocalRank => LocalRankDevice.LocalRank;

    /// <summary>OMPI_COMM_WORLD_LOCAL_SIZE: how many of the job's ranks run on this node (1 without it).</summary>
    public static int LocalRanks => LocalRankDevice.LocalRanks;

    public NcclFacts Probe()
    {
        if (!CudaRuntime.TryLoad(CudaLibrary.Nccl, out string ncclReport)) return new NcclFacts(ncclReport, 0, LocalRanks);
        if (!CudaRuntime.TryInitialize(out string cudaReport))
            return new NcclFacts($"libnccl loaded, but the CUDA driver did not: {cudaReport}", 0, LocalRanks);
        return new NcclFacts(null, CudaDevice.Count, LocalRanks);
    }

    public ICommunicator Create(ICommunicator bootstrap) =>
        new StagedNcclCommunicator(bootstrap, LocalRankDevice.Ordinal, ownsBootstrap: true);
}
