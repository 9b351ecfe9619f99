using System;
using System.Threading;
using Shardwise.Distributed.Native;
using MpiApi = Shardwise.Distributed.Native.Mpi;

namespace Shardwise.Distributed.Mpi;

/// <summary>
/// The ranks are the processes of an mpirun job (MPI_COMM_WORLD), over Open MPI. Every call is a nonblocking MPI
/// operation polled with MPI_Test until it completes or <see cref="Timeout"/> passes, so no call can hang. On a
/// timeout the rank asks every peer "are you there?" on a separate control communicator and names the silent ones
/// (see <see cref="TimeoutDiagnosis"/>), tells its peers it gave up (so those still waiting fail at once), and throws
/// <see cref="CommunicationException"/>. After any failure the communicator is unusable; the process should exit
/// non-zero, which makes mpirun end the job. Use it from one thread at a time.
/// Traffic is counted with the ring formulas (<see cref="RingTraffic"/>), whatever algorithm Open MPI picks.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private readonly MpiHandles _handles;
    private readonly IntPtr _world;
    private readonly ControlChannel _control;
    private readonly StagingBuffer _staging = new();
    private readonly System.Collections.Generic.List<MpiCommunicator> _children = [];
    private IntPtr _ownedGroup; // a split's communicator, freed on disposal; zero for MPI_COMM_WORLD
    private IntPtr _data;
    private IntPtr _controlComm;
    private RankActivity _current;
    private int _sequence;
    private CommunicationException? _failure;
    private bool _disposed;

    /// <summary>Initialises MPI (unless already initialised) and joins MPI_COMM_WORLD; collective over all ranks.</summary>
    public MpiCommunicator(TimeSpan timeout) : this(IntPtr.Zero, timeout)
    {
    }

    /// <summary>
    /// Joins <paramref name="group"/> (a communicator made by <see cref="Split"/>, which this instance then owns and
    /// frees), or MPI_COMM_WORLD when it is zero.
    /// </summary>
    private MpiCommunicator(IntPtr group, TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive.");
        Timeout = timeout;
        MpiSession.Acquire();
        _handles = MpiHandles.Instance;
        _ownedGroup = group;
        _world = group == IntPtr.Zero ? _handles.CommWorld : group;

        // Errors come back as codes (and become exceptions naming the call) instead of aborting the job.
        MpiErrors.Check(MpiApi.CommSetErrhandler(_world, _handles.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank, size;
        MpiErrors.Check(MpiApi.CommRank(_world, &rank), "MPI_Comm_rank");
        MpiErrors.Check(MpiApi.CommSize(_world, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;

        // Private duplicates (they inherit the error handler): our traffic never matches another library's messages
        // on MPI_COMM_WORLD, and control messages never match the user's tags.
        IntPtr data, control;
        MpiErrors.Check(MpiApi.CommDup(_world, &data), "MPI_Comm_dup");
        MpiErrors.Check(MpiApi.CommDup(_world, &control), "MPI_Comm_dup");
        _data = data;
        _controlComm = control;
        _control = new ControlChannel(control, _handles.Int);
    }

    /// <summary>With the timeout from SHARDWISE_COMM_TIMEOUT_SECONDS (default 300 s).</summary>
    public static MpiCommunicator FromEnvironment() => new(CommunicatorTimeout.FromEnvironment());

    /// <summary>True when this process was started by Open MPI's mpirun (it sets OMPI_COMM_WORLD_SIZE).</summary>
    public static bool IsLaunchedByMpirun =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE"));

    public int Rank { get; }

    public int Size { get; }

    public TimeSpan Timeout { get; }

    public TrafficCounter Traffic { get; } = new();

    /// <summary>How long a timed-out rank waits for heartbeat answers before it reports.</summary>
    private TimeSpan Grace => TimeSpan.FromSeconds(Math.Clamp(Timeout.TotalSeconds / 4, 0.2, 5));

    public void AllReduceSum(Span<float> data) => AllReduce(data, _handles.Float, _handles.Sum);

    public void AllReduceMax(Span<double> data) => AllReduce(data, _handles.Double, _handles.Max);

    public void AllReduceSum(Span<double> data) => AllReduce(data, _handles.Double, _handles.Sum);

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.ReduceScatter(input.Length, output.Length, Size);
        Begin(Collective.ReduceScatter);
        float* send = _staging.Get<float>((long)input.Length + output.Length);
        float* receive = send + input.Length;
        input.CopyTo(new Span<float>(send, input.Length));
        IntPtr request;
        Issue(MpiApi.IreduceScatterBlock(send, receive, output.Length, _handles.Float, _handles.Sum, _data, &request),
            "MPI_Ireduce_scatter_block");
        Wait(&request, null, 0, null);
        new Span<float>(receive, output.Length).CopyTo(output);
        long bytes = RingTraffic.ReduceScatter(output.Length, Size) * sizeof(float);
        Traffic.Add(Collective.ReduceScatter, bytes, bytes);
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.AllGather(input.Length, output.Length, Size);
        Begin(Collective.AllGather);
        float* send = _staging.Get<float>((long)input.Length + output.Length);
        float* receive = send + input.Length;
        input.CopyTo(new Span<float>(send, input.Length));
        IntPtr request;
        Issue(MpiApi.Iallgather(send, input.Length, _handles.Float, receive, input.Length, _handles.Float, _data,
            &request), "MPI_Iallgather");
        Wait(&request, null, 0, null);
        new Span<float>(receive, output.Length).CopyTo(output);
        long bytes = RingTraffic.AllGather(input.Length, Size) * sizeof(float);
        Traffic.Add(Collective.AllGather, bytes, bytes);
    }

    public void Broadcast(Span<float> data, int root)
    {
        CollectiveArguments.Root(root, Size);
        Begin(Collective.Broadcast);
        float* buffer = _staging.Get<float>(data.Length);
        if (Rank == root) data.CopyTo(new Span<float>(buffer, data.Length));
        IntPtr request;
        Issue(MpiApi.Ibcast(buffer, data.Length, _handles.Float, root, _data, &request), "MPI_Ibcast");
        Wait(&request, null, 0, null);
        if (Rank != root) new Span<float>(buffer, data.Length).CopyTo(data);
        (long sent, long received) = RingTraffic.Broadcast(data.Length, Size, Rank == root);
        Traffic.Add(Collective.Broadcast, sent * sizeof(float), received * sizeof(float));
    }

    public void Send(ReadOnlySpan<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        Begin(Collective.Send);
        float* buffer = _staging.Get<float>(data.Length);
        data.CopyTo(new Span<float>(buffer, data.Length));
        IntPtr request;
        Issue(MpiApi.Isend(buffer, data.Length, _handles.Float, peer, tag, _data, &request), "MPI_Isend");
        // Complete means MPI is done with the buffer (buffered or delivered), as MPI_Send returns.
        Wait(&request, peer, tag, null);
        Traffic.Add(Collective.Send, (long)data.Length * sizeof(float), 0);
    }

    public void Receive(Span<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        Begin(Collective.Receive);
        float* buffer = _staging.Get<float>(data.Length);
        IntPtr request;
        MpiStatus status;
        Issue(MpiApi.Irecv(buffer, data.Length, _handles.Float, peer, tag, _data, &request), "MPI_Irecv");
        Wait(&request, peer, tag, &status);
        int count = 0;
        Issue(MpiApi.GetCount(&status, _handles.Float, &count), "MPI_Get_count");
        // A longer message fails in MPI_Test (truncation); a shorter one completes, so check its length here.
        if (count != data.Length)
            throw Fail(peer, $"rank {peer} sent {count} elements tagged {tag}, but rank {Rank} expected {data.Length}.");
        new Span<float>(buffer, data.Length).CopyTo(data);
        Traffic.Add(Collective.Receive, 0, (long)data.Length * sizeof(float));
    }

    public void Barrier()
    {
        Begin(Collective.Barrier);
        IntPtr request;
        Issue(MpiApi.Ibarrier(_data, &request), "MPI_Ibarrier");
        Wait(&request, null, 0, null);
    }

    /// <summary>
    /// MPI_Comm_split of this group. MPI_Comm_split blocks and has no nonblocking form, so a barrier with this
    /// group's deadline comes first: a dead or absent rank fails it (named by the heartbeat diagnosis) instead of
    /// hanging the split. The child has its own control channel, so its calls detect dead ranks the same way.
    /// </summary>
    public ICommunicator Split(int color, int key)
    {
        CollectiveArguments.Color(color);
        Barrier();
        IntPtr split;
        MpiErrors.Check(MpiApi.CommSplit(_data, color, key, &split), "MPI_Comm_split", Collective.Barrier);
        var child = new MpiCommunicator(split, Timeout);
        _children.Add(child);
        return child;
    }

    /// <summary>
    /// Frees the communicators and finalises MPI if this process initialised it. After a failure it does neither:
    /// MPI_Finalize synchronises with peers, which may be dead, and would hang; exit the process non-zero instead.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (MpiCommunicator child in _children) child.Dispose();
        bool clean = _failure is null && !_children.Exists(child => child._failure is not null);
        if (clean)
        {
            _control.Dispose();
            IntPtr data = _data, control = _controlComm;
            MpiErrors.Check(MpiApi.CommFree(&data), "MPI_Comm_free");
            MpiErrors.Check(MpiApi.CommFree(&control), "MPI_Comm_free");
            _data = _controlComm = IntPtr.Zero;
            if (_ownedGroup != IntPtr.Zero)
            {
                IntPtr group = _ownedGroup;
                MpiErrors.Check(MpiApi.CommFree(&group), "MPI_Comm_free");
                _ownedGroup = IntPtr.Zero;
            }
            _staging.Dispose();
        }
        MpiSession.Release(clean);
    }

    private void AllReduce<T>(Span<T> data, IntPtr type, IntPtr op) where T : unmanaged
    {
        Begin(Collective.AllReduce);
        T* buffer = _staging.Get<T>(data.Length);
        data.CopyTo(new Span<T>(buffer, data.Length));
        IntPtr request;
        Issue(MpiApi.Iallreduce(MpiApi.InPlace, buffer, data.Length, type, op, _data, &request), "MPI_Iallreduce");
        Wait(&request, null, 0, null);
        new Span<T>(buffer, data.Length).CopyTo(data);
        long bytes = RingTraffic.AllReduce(data.Length, Size) * sizeof(T);
        Traffic.Add(Collective.AllReduce, bytes, bytes);
    }

    /// <summary>Starts a call: refuses after disposal or an earlier failure, and records what heartbeats report.</summary>
    private void Begin(Collective call)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is not null)
            throw new CommunicationException(call, _failure.MissingRank,
                $"{call} on rank {Rank} failed: the communicator is unusable after an earlier failure ({_failure.Message})");
        bool collective = call is not (Collective.Send or Collective.Receive);
        _current = new RankActivity(call, collective ? ++_sequence : _sequence);
    }

    private void Issue(int code, string call)
    {
        if (code != MpiApi.Success)
            throw Fail(null, $"{call} failed: {MpiErrors.Describe(code)} (MPI error code {code}).");
    }

    /// <summary>
    /// Polls <paramref name="request"/> until it completes, answering peers' heartbeats meanwhile. Fails at once when
    /// a peer announces it gave up, and at the deadline after asking the peers who is there.
    /// </summary>
    private void Wait(IntPtr* request, int? peer, int tag, MpiStatus* status)
    {
        long deadline = Deadline.After(Timeout);
        var spin = new SpinWait();
        while (true)
        {
            int done = 0;
            int code = MpiApi.Test(request, &done, status);
            if (code != MpiApi.Success)
                throw Fail(peer, $"MPI_Test failed: {MpiErrors.Describe(code)} (MPI error code {code}).");
            if (done != 0) return;

            PollControl(peer);
            if (_control.GaveUp.Count > 0)
            {
                GiveUpNotice notice = _control.GaveUp[0];
                int missing = notice.MissingRank >= 0 ? notice.MissingRank : notice.Rank;
                throw Fail(missing, $"rank {notice.Rank} gave up on {notice.Activity}" +
                    (notice.MissingRank >= 0 ? $", finding rank {notice.MissingRank} missing." : "."), announce: false);
            }

            if (Deadline.HasPassed(deadline))
            {
                (int? missingRank, string reason) = Diagnose(peer, tag);
                throw Fail(missingRank, reason);
            }

            // Spins briefly, then yields and sleeps: ranks often outnumber cores, and a waiter must not starve a peer.
            spin.SpinOnce();
        }
    }

    /// <summary>Asks every peer "are you there?" and collects answers for <see cref="Grace"/>.</summary>
    private (int? MissingRank, string Reason) Diagnose(int? peer, int tag)
    {
        for (int r = 0; r < Size; r++)
            if (r != Rank) _control.AskAreYouThere(r, _current);
        long end = Deadline.After(Grace);
        while (!Deadline.HasPassed(end) && HeardFrom() < Size - 1)
        {
            PollControl(peer);
            Thread.Sleep(1);
        }
        return TimeoutDiagnosis.Explain(Rank, Size, _current, Timeout, Grace, peer, tag, _control.Answers,
            _control.GaveUp);
    }

    /// <summary>Handles control messages; an MPI error there fails the call like any other.</summary>
    private void PollControl(int? peer)
    {
        try
        {
            _control.Poll(_current);
        }
        catch (CommunicationException error)
        {
            throw Fail(peer, error.Message);
        }
    }

    /// <summary>Peers that answered a heartbeat or announced they gave up (a peer may have done both).</summary>
    private int HeardFrom()
    {
        var peers = new System.Collections.Generic.HashSet<int>(_control.Answers.Keys);
        foreach (GiveUpNotice notice in _control.GaveUp) peers.Add(notice.Rank);
        return peers.Count;
    }

    /// <summary>
    /// Marks the communicator failed and builds the exception. The pending request (if any) stays pending, so its
    /// staging memory is abandoned, not freed. Peers are told (unless the news came from one), so those still
    /// waiting fail at once instead of at their own deadlines.
    /// </summary>
    private CommunicationException Fail(int? missingRank, string reason, bool announce = true)
    {
        _staging.Abandon();
        _failure = new CommunicationException(_current.Call, missingRank,
            $"{_current.Call} on rank {Rank} failed: {reason}");
        if (announce)
        {
            for (int r = 0; r < Size; r++)
            {
                if (r == Rank) continue;
                try
                {
                    _control.AnnounceGivingUp(r, _current, missingRank);
                }
                catch (CommunicationException)
                {
                    // Best effort: telling a dead peer can fail; the exception we are about to throw is what matters.
                }
            }
        }
        return _failure;
    }
}
