using System;
using System.Diagnostics;

namespace Shardwise.Distributed;

/// <summary>Deadlines as <see cref="Stopwatch"/> timestamps; saturates, so a huge timeout means "practically never".</summary>
internal static class Deadline
{
    public static long After(TimeSpan timeout)
    {
        double ticks = timeout.TotalSeconds * Stopwatch.Frequency;
        long now = Stopwatch.GetTimestamp();
        return ticks >= long.MaxValue - now ? long.MaxValue : now + (long)ticks;
    }

    public static bool HasPassed(long deadline) => Stopwatch.GetTimestamp() >= deadline;
}
