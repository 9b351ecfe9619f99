namespace Shardwise.PipelineBench;

/// <summary>Seconds one rank spent inside the calls a <see cref="TimedCommunicator"/> times, over all its groups.</summary>
internal sealed class BlockingClock
{
    /// <summary>In sends to a neighbouring stage: large messages go by rendezvous, so a send waits for its receive.</summary>
    public double SendSeconds { get; set; }

    /// <summary>In collectives (tied gradients, gradient norm, the loss): where a stage that finished early waits.</summary>
    public double CollectiveSeconds { get; set; }
}
