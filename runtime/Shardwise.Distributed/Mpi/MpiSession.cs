using System;
using Shardwise.Distributed.Native;
using MpiApi = Shardwise.Distributed.Native.Mpi;

namespace Shardwise.Distributed.Mpi;

/// <summary>
/// MPI may be initialised and finalised once per process. This initialises it on the first communicator (unless the
/// host already did) and finalises it when the last one it initialised for is disposed cleanly.
/// </summary>
internal static unsafe class MpiSession
{
    private static readonly object Gate = new();
    private static int _users;
    private static bool _initialisedHere;

    public static void Acquire()
    {
        lock (Gate)
        {
            int finalized = 0;
            MpiErrors.Check(MpiApi.Finalized(&finalized), "MPI_Finalized");
            if (finalized != 0)
                throw new InvalidOperationException(
                    "MPI was already finalised in this process; it cannot be started again. Keep one MpiCommunicator " +
                    "for the life of the process.");

            int initialised = 0;
            MpiErrors.Check(MpiApi.Initialized(&initialised), "MPI_Initialized");
            if (initialised == 0)
            {
                // SERIALIZED: .NET code may move between threads, but the communicator is used by one at a time.
                int provided = 0;
                MpiErrors.Check(MpiApi.InitThread(null, null, MpiApi.ThreadSerialized, &provided),
                    "MPI_Init_thread");
                _initialisedHere = true;
            }
            _users++;
        }
    }

    /// <summary>
    /// Gives up one use; the last finalises MPI when it was initialised here. <paramref name="clean"/> false (after a
    /// failed call) skips MPI_Finalize: it synchronises with peers that may be dead and would hang; the process is
    /// then expected to exit non-zero, which makes mpirun end the job.
    /// </summary>
    public static void Release(bool clean)
    {
        lock (Gate)
        {
            if (--_users > 0 || !_initialisedHere || !clean) return;
            MpiErrors.Check(MpiApi.Finalize(), "MPI_Finalize");
        }
    }
}
