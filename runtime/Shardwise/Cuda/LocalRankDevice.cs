using System;
using System.Globalization;

namespace Shardwise.Cuda;

/// <summary>
/// Which GPU a process of an mpirun job uses: its local rank (OMPI_COMM_WORLD_LOCAL_RANK, this process's index among
/// the job's ranks on its node; 0 without mpirun) modulo the node's device count. The backend (<see cref="Backends"/>)
/// and the NCCL communicator pick the same device this way, so a rank's compute and its collectives share one GPU;
/// with more local ranks than GPUs several ranks share a device (only the host-staged MPI path allows that).
/// </summary>
public static class LocalRankDevice
{
    /// <summary>OMPI_COMM_WORLD_LOCAL_RANK; 0 when it is not set.</summary>
    public static int LocalRank => ReadInt("OMPI_COMM_WORLD_LOCAL_RANK", 0);

    /// <summary>OMPI_COMM_WORLD_LOCAL_SIZE: how many of the job's ranks run on this node (1 without it).</summary>
    public static int LocalRanks => ReadInt("OMPI_COMM_WORLD_LOCAL_SIZE", 1);

    /// <summary>The device ordinal for this process: <see cref="LocalRank"/> mod the device count (initialises the driver).</summary>
    public static int Ordinal => LocalRank % Math.Max(1, CudaDevice.Count);

    private static int ReadInt(string variable, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), NumberStyles.Integer, CultureInfo.InvariantCulture,
            out int value) && value >= 0 ? value : fallback;
}
