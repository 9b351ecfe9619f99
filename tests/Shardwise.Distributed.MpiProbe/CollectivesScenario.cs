using System;
using System.Linq;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>
/// Every collective and a send/receive ring, each checked on every rank against a reference computed from all ranks'
/// inputs (which every rank can regenerate), plus the traffic formulas. Lengths include one not divisible by Size.
/// </summary>
internal static class CollectivesScenario
{
    public static void Run(ICommunicator comm)
    {
        int size = comm.Size, rank = comm.Rank;
        foreach (int n in new[] { 1, 7, 1000, 100_000 }) // 100 000 floats exceed the eager limit: rendezvous sends
        {
            comm.Traffic.Reset();
            int seed = n;

            float[] sum = ProbeData.Floats(seed, rank, n);
            comm.AllReduceSum(sum);
            Check.Equal<float>(Reference(n, size, r => ProbeData.Floats(seed, r, n), (a, b) => a + b), sum, $"AllReduceSum(float[{n}])");

            double[] dsum = ProbeData.Doubles(seed + 1, rank, n);
            comm.AllReduceSum(dsum);
            Check.Equal<double>(Reference(n, size, r => ProbeData.Doubles(seed + 1, r, n), (a, b) => a + b), dsum, $"AllReduceSum(double[{n}])");

            double[] max = ProbeData.Doubles(seed + 2, rank, n);
            comm.AllReduceMax(max);
            Check.Equal<double>(Reference(n, size, r => ProbeData.Doubles(seed + 2, r, n), Math.Max), max, $"AllReduceMax(double[{n}])");

            float[] full = ProbeData.Floats(seed + 3, rank, n * size);
            float[] shard = new float[n];
            comm.ReduceScatterSum(full, shard);
            float[] fullSum = Reference(n * size, size, r => ProbeData.Floats(seed + 3, r, n * size), (a, b) => a + b);
            Check.Equal<float>(fullSum.AsSpan(rank * n, n), shard, $"ReduceScatterSum(float[{n * size}])");

            float[] gathered = new float[n * size];
            comm.AllGather(ProbeData.Floats(seed + 4, rank, n), gathered);
            float[] expectedGather = Enumerable.Range(0, size).SelectMany(r => ProbeData.Floats(seed + 4, r, n)).ToArray();
            Check.Equal<float>(expectedGather, gathered, $"AllGather(float[{n}])");

            int root = size - 1;
            float[] broadcast = rank == root ? ProbeData.Floats(seed + 5, root, n) : new float[n];
            comm.Broadcast(broadcast, root);
            Check.Equal<float>(ProbeData.Floats(seed + 5, root, n), broadcast, $"Broadcast(float[{n}], root {root})");

            if (size > 1)
            {
                // Ring: send to the next rank, receive from the previous. Even ranks send first so it cannot deadlock
                // even if sends block until matched.
                int next = (rank + 1) % size, previous = (rank + size - 1) % size;
                float[] received = new float[n];
                if (rank % 2 == 0)
                {
                    comm.Send(ProbeData.Floats(seed + 6, rank, n), next, 9);
                    comm.Receive(received, previous, 9);
                }
                else
                {
                    comm.Receive(received, previous, 9);
                    comm.Send(ProbeData.Floats(seed + 6, rank, n), next, 9);
                }
                Check.Equal<float>(ProbeData.Floats(seed + 6, previous, n), received, $"Receive(float[{n}]) from rank {previous}");
            }

            comm.Barrier();

            // Three all-reduces: one over floats, two over doubles.
            Check.Equal(RingTraffic.AllReduce(n, size) * 4 + 2 * RingTraffic.AllReduce(n, size) * 8,
                comm.Traffic.Sent(Collective.AllReduce), $"AllReduce bytes sent (n={n})");
            Check.Equal((long)(size - 1) * n * 4, comm.Traffic.Received(Collective.ReduceScatter), $"ReduceScatter bytes received (n={n})");
            Check.Equal((long)(size - 1) * n * 4, comm.Traffic.Sent(Collective.AllGather), $"AllGather bytes sent (n={n})");
            Check.Equal(size > 1 && rank == root ? n * 4L : 0, comm.Traffic.Sent(Collective.Broadcast), $"Broadcast bytes sent (n={n})");
        }
    }

    private static T[] Reference<T>(int length, int size, Func<int, T[]> input, Func<T, T, T> combine)
    {
        T[] result = input(0);
        for (int r = 1; r < size; r++)
        {
            T[] next = input(r);
            for (int i = 0; i < length; i++) result[i] = combine(result[i], next[i]);
        }
        return result;
    }
}
