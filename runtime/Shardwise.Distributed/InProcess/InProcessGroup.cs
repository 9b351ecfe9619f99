using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;

namespace Shardwise.Distributed.InProcess;

/// <summary>Creates in-process groups (ranks as threads of this process): for tests and single-machine experiments.</summary>
public static class InProcessGroup
{
    /// <summary>The <paramref name="size"/> communicators of one new group, indexed by rank; give each to one thread.</summary>
    public static InProcessCommunicator[] Create(int size, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive.");
        var group = new GroupState(size, timeout);
        return Enumerable.Range(0, size).Select(rank => new InProcessCommunicator(group, rank)).ToArray();
    }

    /// <summary>Runs <paramref name="body"/> once per rank, each on its own thread, and waits for all.</summary>
    /// <exception cref="AggregateException">Some ranks threw; see <see cref="Run{T}"/>.</exception>
    public static void Run(int size, Action<ICommunicator> body, TimeSpan timeout) =>
        Run(size, communicator =>
        {
            body(communicator);
            return true;
        }, timeout);

    /// <summary>
    /// Runs <paramref name="body"/> once per rank, each on its own thread, and returns the results by rank. A rank
    /// whose body throws leaves the group at once, so peers waiting for it fail fast instead of at their deadline;
    /// a rank whose body returns disposes its communicator the same way. When any rank threw, this throws an
    /// <see cref="AggregateException"/> whose inner exceptions are in the order they happened: the first is the
    /// cause, the later ones are usually peers' <see cref="CommunicationException"/>s naming the failed rank.
    /// </summary>
    public static T[] Run<T>(int size, Func<ICommunicator, T> body, TimeSpan timeout)
    {
        InProcessCommunicator[] communicators = Create(size, timeout);
        var results = new T[size];
        var failures = new List<(int Rank, Exception Error)>();
        var threads = new Thread[size];
        for (int rank = 0; rank < size; rank++)
        {
            InProcessCommunicator communicator = communicators[rank];
            threads[rank] = new Thread(() =>
            {
                try
                {
                    results[communicator.Rank] = body(communicator);
                    communicator.Dispose();
                }
                catch (Exception error)
                {
                    lock (failures) failures.Add((communicator.Rank, error));
                    communicator.Abandon($"its thread failed: {error.GetType().Name}: {error.Message}");
                }
            })
            {
                // Dedicated threads, not the thread pool: ranks block on each other, which would starve a small pool.
                Name = $"rank {rank}",
                IsBackground = true,
            };
        }

        foreach (Thread thread in threads) thread.Start();
        foreach (Thread thread in threads) thread.Join();
        if (failures.Count == 0) return results;

        (int firstRank, Exception first) = failures[0];
        throw new AggregateException(
            $"{failures.Count} of {size} ranks failed; the first was rank {firstRank}: {first.Message}",
            failures.Select(f => f.Error));
    }
}
