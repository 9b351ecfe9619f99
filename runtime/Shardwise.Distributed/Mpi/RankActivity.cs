namespace Shardwise.Distributed.Mpi;

/// <summary>
/// What a rank is doing, as heartbeats report it: the call it waits in and its collective sequence number (the
/// count of collectives it has started, this one included), so ranks can tell "in AllReduce #7" from "in AllGather #7".
/// </summary>
internal readonly record struct RankActivity(Collective Call, int Sequence)
{
    public bool IsCollective => Call is not (Collective.Send or Collective.Receive);

    public override string ToString() =>
        IsCollective ? $"{Call} #{Sequence}" : $"{Call} (after collective #{Sequence})";
}

/// <summary>A peer's notice that it gave up on a call; <see cref="MissingRank"/> is -1 when it named no rank.</summary>
internal readonly record struct GiveUpNotice(int Rank, RankActivity Activity, int MissingRank);
