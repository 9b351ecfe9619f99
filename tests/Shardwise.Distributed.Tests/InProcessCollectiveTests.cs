using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;

namespace Shardwise.Distributed.Tests;

/// <summary>Every collective on in-process groups of 1–4 ranks against a reference computed here, bit for bit.</summary>
[TestClass]
public sealed class InProcessCollectiveTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // 1000 is divisible by 1, 2, 4 but not 3; 7 by none but 1.
    private static readonly int[] Lengths = [1, 7, 1000];

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void AllReduceSumFloatEqualsRankOrderSumOnEveryRank(int size)
    {
        foreach (int n in Lengths)
        {
            float[][] inputs = TestData.FloatsPerRank(n, size, n);
            float[][] results = InProcessGroup.Run(size, comm =>
            {
                float[] data = (float[])inputs[comm.Rank].Clone();
                comm.AllReduceSum(data);
                return data;
            }, Timeout);

            float[] expected = Reference.Sum(inputs);
            for (int rank = 0; rank < size; rank++) Bitwise.AreEqual(expected, results[rank], $"N={size} n={n} rank {rank}");
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void AllReduceSumDoubleEqualsRankOrderSumOnEveryRank(int size)
    {
        foreach (int n in Lengths)
        {
            double[][] inputs = TestData.DoublesPerRank(n + 1, size, n);
            double[][] results = InProcessGroup.Run(size, comm =>
            {
                double[] data = (double[])inputs[comm.Rank].Clone();
                comm.AllReduceSum(data);
                return data;
            }, Timeout);

            double[] expected = Reference.Sum(inputs);
            for (int rank = 0; rank < size; rank++) Bitwise.AreEqual(expected, results[rank], $"N={size} n={n} rank {rank}");
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void AllReduceMaxEqualsElementwiseMaxOnEveryRank(int size)
    {
        foreach (int n in Lengths)
        {
            double[][] inputs = TestData.DoublesPerRank(n + 2, size, n);
            double[][] results = InProcessGroup.Run(size, comm =>
            {
                double[] data = (double[])inputs[comm.Rank].Clone();
                comm.AllReduceMax(data);
                return data;
            }, Timeout);

            double[] expected = Reference.Max(inputs);
            for (int rank = 0; rank < size; rank++) Bitwise.AreEqual(expected, results[rank], $"N={size} n={n} rank {rank}");
        }
    }

    [TestMethod]
    public void AllReduceMaxPropagatesNaNAndInfinity()
    {
        double[][] results = InProcessGroup.Run(3, comm =>
        {
            double[] data = comm.Rank switch
            {
                0 => [1, double.NaN, 1],
                1 => [double.PositiveInfinity, 2, -5],
                _ => [3, 3, -7],
            };
            comm.AllReduceMax(data);
            return data;
        }, Timeout);

        foreach (double[] result in results)
        {
            Assert.AreEqual(double.PositiveInfinity, result[0]);
            Assert.IsTrue(double.IsNaN(result[1]), "an overflow flag (NaN) on any rank must reach every rank");
            Assert.AreEqual(1.0, result[2]);
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void ReduceScatterGivesEachRankItsShareOfTheSum(int size)
    {
        foreach (int n in Lengths)
        {
            float[][] inputs = TestData.FloatsPerRank(n + 3, size, n * size);
            float[][] results = InProcessGroup.Run(size, comm =>
            {
                var output = new float[n];
                comm.ReduceScatterSum(inputs[comm.Rank], output);
                return output;
            }, Timeout);

            float[] sum = Reference.Sum(inputs);
            for (int rank = 0; rank < size; rank++)
                Bitwise.AreEqual(sum.AsSpan(rank * n, n), results[rank], $"N={size} n={n} rank {rank}");
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void AllGatherConcatenatesInputsInRankOrder(int size)
    {
        foreach (int n in Lengths)
        {
            float[][] inputs = TestData.FloatsPerRank(n + 4, size, n);
            float[][] results = InProcessGroup.Run(size, comm =>
            {
                var output = new float[n * size];
                comm.AllGather(inputs[comm.Rank], output);
                return output;
            }, Timeout);

            float[] expected = inputs.SelectMany(input => input).ToArray();
            for (int rank = 0; rank < size; rank++) Bitwise.AreEqual(expected, results[rank], $"N={size} n={n} rank {rank}");
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void BroadcastCopiesTheRootsDataFromEveryRoot(int size)
    {
        for (int root = 0; root < size; root++)
        {
            float[][] inputs = TestData.FloatsPerRank(root + 5, size, 100);
            int r = root;
            float[][] results = InProcessGroup.Run(size, comm =>
            {
                float[] data = (float[])inputs[comm.Rank].Clone();
                comm.Broadcast(data, r);
                return data;
            }, Timeout);

            for (int rank = 0; rank < size; rank++) Bitwise.AreEqual(inputs[root], results[rank], $"N={size} root {root} rank {rank}");
        }
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void SendReceiveAroundARingDeliversEachMessageIntact(int size)
    {
        float[][] inputs = TestData.FloatsPerRank(6, size, 333);
        float[][] results = InProcessGroup.Run(size, comm =>
        {
            int next = (comm.Rank + 1) % size, previous = (comm.Rank + size - 1) % size;
            var received = new float[333];
            // Two messages with different tags, received in the opposite order: tags must keep them apart.
            comm.Send(inputs[comm.Rank], next, tag: 1);
            comm.Send(inputs[comm.Rank].Select(x => -x).ToArray(), next, tag: 2);
            var negated = new float[333];
            comm.Receive(negated, previous, tag: 2);
            comm.Receive(received, previous, tag: 1);
            Bitwise.AreEqual(received.Select(x => -x).ToArray(), negated, $"rank {comm.Rank} tag 2");
            return received;
        }, Timeout);

        for (int rank = 0; rank < size; rank++)
            Bitwise.AreEqual(inputs[(rank + size - 1) % size], results[rank], $"N={size} rank {rank}");
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(4)]
    public void ManyCollectivesInARowStayInStepAndRepeatBitForBit(int size)
    {
        // Mixed calls back to back exercise the rendezvous reuse; two runs must agree to the bit.
        float[][] Run() => InProcessGroup.Run(size, comm =>
        {
            float[] data = TestData.Floats(comm.Rank + 7, 64);
            var shard = new float[64 / size];
            var gathered = new float[64];
            for (int step = 0; step < 50; step++)
            {
                comm.AllReduceSum(data);
                comm.ReduceScatterSum(data, shard);
                comm.AllGather(shard, gathered);
                comm.Barrier();
                comm.Broadcast(gathered, step % size);
                for (int i = 0; i < data.Length; i++) data[i] = gathered[i] * 0.25f + data[i] * 1e-3f;
            }
            return data;
        }, Timeout);

        float[][] first = Run(), second = Run();
        for (int rank = 0; rank < size; rank++)
        {
            Bitwise.AreEqual(first[0], first[rank], $"rank {rank} vs rank 0");
            Bitwise.AreEqual(first[rank], second[rank], $"rank {rank}, run 1 vs run 2");
        }
    }

    [TestMethod]
    public void WrongLengthsAndRanksAreRejectedBeforeAnyPeerIsInvolved()
    {
        InProcessCommunicator[] group = InProcessGroup.Create(2, Timeout);
        InProcessCommunicator comm = group[0];
        Assert.ThrowsExactly<ArgumentException>(() => comm.ReduceScatterSum(new float[5], new float[2]));
        Assert.ThrowsExactly<ArgumentException>(() => comm.AllGather(new float[2], new float[5]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => comm.Broadcast(new float[2], root: 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => comm.Send(new float[2], peer: 0, tag: 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => comm.Receive(new float[2], peer: 1, tag: -1));
    }
}
