using System;
using System.Globalization;
using System.Text;

namespace Shardwise.Distributed;

/// <summary>
/// Bytes sent and received per collective by one rank. Implementations count what the algorithm they run moves
/// (a ring all-reduce of n elements sends and receives 2·n·(N−1)/N elements), not what the API call's arguments hold.
/// </summary>
public sealed class TrafficCounter
{
    private readonly long[] _sent = new long[Enum.GetValues<Collective>().Length];
    private readonly long[] _received = new long[Enum.GetValues<Collective>().Length];

    public void Add(Collective collective, long bytesSent, long bytesReceived)
    {
        _sent[(int)collective] += bytesSent;
        _received[(int)collective] += bytesReceived;
    }

    public long Sent(Collective collective) => _sent[(int)collective];

    public long Received(Collective collective) => _received[(int)collective];

    public long TotalSent
    {
        get
        {
            long total = 0;
            foreach (long bytes in _sent) total += bytes;
            return total;
        }
    }

    public long TotalReceived
    {
        get
        {
            long total = 0;
            foreach (long bytes in _received) total += bytes;
            return total;
        }
    }

    public void Reset()
    {
        Array.Clear(_sent);
        Array.Clear(_received);
    }

    /// <summary>One line per collective that moved data: "AllReduce sent 1,234 B received 1,234 B".</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        foreach (var collective in Enum.GetValues<Collective>())
        {
            if (Sent(collective) == 0 && Received(collective) == 0) continue;
            text.Append(string.Format(CultureInfo.InvariantCulture, "{0,-14} sent {1,14:N0} B  received {2,14:N0} B\n",
                collective, Sent(collective), Received(collective)));
        }
        return text.ToString();
    }
}
