using System;
using Shardwise.Distributed.Mpi;

namespace Shardwise.Distributed;

/// <summary>Picks the communicator for how this process was started.</summary>
public static class Communicators
{
    /// <summary>
    /// An <see cref="MpiCommunicator"/> when launched by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE), else a
    /// <see cref="SingleProcessCommunicator"/>. The timeout comes from SHARDWISE_COMM_TIMEOUT_SECONDS (default 300 s).
    /// </summary>
    public static ICommunicator Create() => Create(CommunicatorTimeout.FromEnvironment());

    public static ICommunicator Create(TimeSpan timeout) =>
        MpiCommunicator.IsLaunchedByMpirun ? new MpiCommunicator(timeout) : new SingleProcessCommunicator(timeout);
}
