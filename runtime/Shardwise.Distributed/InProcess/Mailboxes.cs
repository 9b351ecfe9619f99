using System;
using System.Collections.Generic;

namespace Shardwise.Distributed.InProcess;

/// <summary>
/// Point-to-point messages between in-process ranks: one FIFO queue per (sender, receiver, tag), so messages with the
/// same tag arrive in order, as MPI guarantees. Sends are buffered (they copy and return); a receive waits for its
/// message until the deadline, or fails at once when the sender has left without sending it.
/// </summary>
internal sealed class Mailboxes(GroupState group)
{
    private readonly Dictionary<(int From, int To, int Tag), Queue<float[]>> _queues = new();

    public void Send(int from, int to, int tag, ReadOnlySpan<float> data)
    {
        lock (group.Gate)
        {
            group.ThrowIfBroken(from, Collective.Send);
            if (group.LeftBecause(to) is { } because)
                throw group.Break(from, Collective.Send, to,
                    $"rank {to} left the group ({because}), so nobody will receive the message tagged {tag}.");
            if (!_queues.TryGetValue((from, to, tag), out Queue<float[]>? queue))
                _queues[(from, to, tag)] = queue = new Queue<float[]>();
            queue.Enqueue(data.ToArray());
            System.Threading.Monitor.PulseAll(group.Gate);
        }
    }

    public void Receive(int to, int from, int tag, Span<float> data)
    {
        lock (group.Gate)
        {
            long deadline = group.Deadline();
            while (true)
            {
                group.ThrowIfBroken(to, Collective.Receive);
                if (_queues.TryGetValue((from, to, tag), out Queue<float[]>? queue) && queue.Count > 0)
                {
                    float[] message = queue.Dequeue();
                    if (message.Length != data.Length)
                        throw group.Break(to, Collective.Receive, from,
                            $"rank {from} sent {message.Length} elements tagged {tag}, but rank {to} expected {data.Length}.");
                    message.CopyTo(data);
                    return;
                }

                if (group.LeftBecause(from) is { } because)
                    throw group.Break(to, Collective.Receive, from,
                        $"rank {from} left the group ({because}) without sending the message tagged {tag}.");
                if (!group.WaitForChange(deadline))
                    throw group.Break(to, Collective.Receive, from,
                        $"rank {from} did not send the message tagged {tag} within " +
                        $"{CommunicatorTimeout.Format(group.Timeout)} (timed out); it may have died or be stuck.");
            }
        }
    }
}
