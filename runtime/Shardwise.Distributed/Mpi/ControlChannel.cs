using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using Shardwise.Distributed.Native;
using MpiApi = Shardwise.Distributed.Native.Mpi;

namespace Shardwise.Distributed.Mpi;

/// <summary>
/// Small control messages on a communicator of their own (a duplicate of the world), so they never match the user's
/// Send/Receive tags: "are you there?" heartbeats, their answers, and "I gave up" notices. A rank handles them only
/// while it waits inside a call (<see cref="Poll"/>), so an answer means "alive and inside the communicator"; a rank
/// that is dead, or busy elsewhere for longer than the timeout, stays silent. Every message is four ints:
/// kind, collective, collective sequence number, missing rank (or -1).
/// </summary>
internal sealed unsafe class ControlChannel(IntPtr comm, IntPtr intType) : IDisposable
{
    private const int Tag = 1;
    private const int Ints = 4;

    private enum Kind
    {
        AreYouThere = 0,
        Here = 1,
        GivingUp = 2,
    }

    private readonly List<(IntPtr Request, IntPtr Buffer)> _pendingSends = [];

    /// <summary>Peers that answered a heartbeat, with what they were doing.</summary>
    public Dictionary<int, RankActivity> Answers { get; } = [];

    /// <summary>Peers that announced they gave up, in arrival order of their notices.</summary>
    public List<GiveUpNotice> GaveUp { get; } = [];

    /// <summary>Handles every control message that has arrived; heartbeats are answered with <paramref name="current"/>.</summary>
    public void Poll(RankActivity current)
    {
        ReapSends(current.Call);
        int* message = stackalloc int[Ints];
        while (true)
        {
            int arrived = 0;
            MpiStatus status;
            MpiErrors.Check(MpiApi.Iprobe(MpiApi.AnySource, Tag, comm, &arrived, &status), "MPI_Iprobe", current.Call);
            if (arrived == 0) return;
            MpiErrors.Check(MpiApi.Recv(message, Ints, intType, status.Source, Tag, comm, null), "MPI_Recv", current.Call);

            var activity = new RankActivity((Collective)message[1], message[2]);
            switch ((Kind)message[0])
            {
                case Kind.AreYouThere:
                    Post(status.Source, Kind.Here, current, -1);
                    break;
                case Kind.Here:
                    Answers[status.Source] = activity;
                    break;
                case Kind.GivingUp:
                    GaveUp.Add(new GiveUpNotice(status.Source, activity, message[3]));
                    break;
            }
        }
    }

    public void AskAreYouThere(int peer, RankActivity current) => Post(peer, Kind.AreYouThere, current, -1);

    public void AnnounceGivingUp(int peer, RankActivity current, int? missingRank) =>
        Post(peer, Kind.GivingUp, current, missingRank ?? -1);

    /// <summary>Frees the buffers of sends that completed; those still pending (to a dead peer) are left alone.</summary>
    public void Dispose() => ReapSends(Collective.Barrier);

    private void Post(int peer, Kind kind, RankActivity current, int missingRank)
    {
        // Isend, not Send: a blocking send to a dead peer could hang. The buffer lives until the send completes.
        int* buffer = (int*)NativeMemory.Alloc(Ints * sizeof(int));
        buffer[0] = (int)kind;
        buffer[1] = (int)current.Call;
        buffer[2] = current.Sequence;
        buffer[3] = missingRank;
        IntPtr request;
        MpiErrors.Check(MpiApi.Isend(buffer, Ints, intType, peer, Tag, comm, &request), "MPI_Isend", current.Call);
        _pendingSends.Add((request, (IntPtr)buffer));
    }

    private void ReapSends(Collective during)
    {
        for (int i = _pendingSends.Count - 1; i >= 0; i--)
        {
            IntPtr request = _pendingSends[i].Request;
            int done = 0;
            MpiErrors.Check(MpiApi.Test(&request, &done, null), "MPI_Test", during);
            if (done == 0) continue;
            NativeMemory.Free((void*)_pendingSends[i].Buffer);
            _pendingSends.RemoveAt(i);
        }
    }
}
