using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Precision;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Tests;

/// <summary>
/// ZeRO++'s block quantization and the two collectives built on it, on random data: every value decodes within half
/// a step of its block's scale, a non-finite value poisons its block and only that block, and the quantized
/// all-gather and reduce-scatter give what each rank's encoding implies, close to the exact collective.
/// </summary>
[TestClass]
public sealed class BlockQuantizerTests
{
    private static float[] Random(int length, int seed, float spread = 3f)
    {
        var random = new Random(seed);
        // Blocks of different magnitudes, so one block's scale is not every block's.
        return Enumerable.Range(0, length).Select(i => (float)((random.NextDouble() * 2 - 1) * spread * (1 + i / BlockQuantizer.BlockElements))).ToArray();
    }

    [TestMethod]
    [DataRow(8, 1)]
    [DataRow(8, 255)]
    [DataRow(8, 256)]
    [DataRow(8, 1000)]
    [DataRow(4, 1)]
    [DataRow(4, 257)]
    [DataRow(4, 1001)]
    public void EveryValueDecodesWithinHalfAStepOfItsBlock(int bits, int length)
    {
        var quantizer = new BlockQuantizer(bits);
        var values = Random(length, seed: length + bits);
        var encoded = new float[quantizer.EncodedLength(length)];
        Assert.AreEqual((length + 255) / 256 + (length * bits + 31) / 32, encoded.Length);
        quantizer.Encode(values, encoded);
        var decoded = new float[length];
        quantizer.Decode(encoded, decoded);
        int levels = (1 << (bits - 1)) - 1, exact = 0;
        for (int start = 0; start < length; start += BlockQuantizer.BlockElements)
        {
            int end = Math.Min(length, start + BlockQuantizer.BlockElements);
            float step = values[start..end].Max(Math.Abs) / levels;
            for (int i = start; i < end; i++)
            {
                Assert.IsTrue(Math.Abs(decoded[i] - values[i]) <= step * 0.5f * (1 + 1e-5f), $"value {i}: {values[i]} decoded as {decoded[i]} (step {step})");
                if (decoded[i] == values[i]) exact++;
            }
            // The block's largest magnitude is a whole number of steps: it comes back exactly (up to the division).
            int largest = start + Array.IndexOf(values[start..end].Select(Math.Abs).ToArray(), values[start..end].Max(Math.Abs));
            Assert.AreEqual(values[largest], decoded[largest], Math.Abs(values[largest]) * 1e-6f);
        }
        Assert.IsTrue(exact < length || length == 1, "random values are not on the grid: quantization must have changed some");
    }

    /// <summary>
    /// The vector forms give the scalar forms' bits: random blocks, a partial last block, and values exactly half way
    /// between two steps (a block whose largest magnitude equals the level count has a scale of exactly 1), where
    /// rounding to nearest even must agree.
    /// </summary>
    [TestMethod]
    [DataRow(8, 4096 + 37)]
    [DataRow(4, 4096 + 37)]
    [DataRow(8, 63)]
    [DataRow(4, 300)]
    public void VectorsGiveTheScalarFormsBits(int bits, int length)
    {
        var quantizer = new BlockQuantizer(bits);
        var values = Random(length, seed: 31 + bits);
        int levels = (1 << (bits - 1)) - 1;
        if (length >= 256)
        {
            for (int i = 0; i < 256; i++) values[i] = (i % (2 * levels - 1) - (levels - 1)) + (i % 2 == 0 ? 0.5f : -0.5f);
            values[255] = levels; // largest magnitude = levels: scale 1, so the halves stay halves
        }
        var vector = new float[quantizer.EncodedLength(length)];
        var scalar = new float[vector.Length];
        quantizer.Encode(values, vector);
        quantizer.EncodeScalar(values, scalar);
        CollectionAssert.AreEqual(scalar.Select(BitConverter.SingleToInt32Bits).ToArray(), vector.Select(BitConverter.SingleToInt32Bits).ToArray());

        var decoded = new float[length];
        var reference = new float[length];
        quantizer.Decode(vector, decoded);
        quantizer.DecodeScalar(vector, reference, accumulate: false);
        CollectionAssert.AreEqual(reference, decoded);
        var sum = Random(length, seed: 2);
        var referenceSum = (float[])sum.Clone();
        quantizer.DecodeAdd(vector, sum);
        quantizer.DecodeScalar(vector, referenceSum, accumulate: true);
        CollectionAssert.AreEqual(referenceSum, sum);
        if (length >= 256)
            for (int i = 0; i < 255; i++) Assert.AreEqual(MathF.Round(values[i]), reference[i], $"value {i}: {values[i]} rounds to the even step");
    }

    [TestMethod]
    public void EncodingIgnoresWhatTheBufferHeldBefore()
    {
        var quantizer = new BlockQuantizer(4);
        var values = Random(333, seed: 4);
        var clean = new float[quantizer.EncodedLength(values.Length)];
        var dirty = Enumerable.Repeat(BitConverter.Int32BitsToSingle(-1), clean.Length).ToArray();
        quantizer.Encode(values, clean);
        quantizer.Encode(values, dirty);
        CollectionAssert.AreEqual(clean.Select(BitConverter.SingleToInt32Bits).ToArray(), dirty.Select(BitConverter.SingleToInt32Bits).ToArray());
    }

    [TestMethod]
    [DataRow(8, float.PositiveInfinity)]
    [DataRow(4, float.NegativeInfinity)]
    [DataRow(8, float.NaN)]
    public void ANonFiniteValuePoisonsItsBlockOnly(int bits, float poison)
    {
        var quantizer = new BlockQuantizer(bits);
        var values = Random(600, seed: 8);
        values[300] = poison; // block 1
        var encoded = new float[quantizer.EncodedLength(values.Length)];
        quantizer.Encode(values, encoded);
        var decoded = new float[values.Length];
        quantizer.Decode(encoded, decoded);
        for (int i = 0; i < values.Length; i++)
            Assert.AreEqual(i is >= 256 and < 512, float.IsNaN(decoded[i]), $"value {i}");
    }

    [TestMethod]
    public void AZeroBlockDecodesToZerosAndDecodeAddAdds()
    {
        var quantizer = new BlockQuantizer(8);
        var values = new float[300];
        Random(44, seed: 3).CopyTo(values, 256); // block 0 all zeros, block 1 random
        var encoded = new float[quantizer.EncodedLength(values.Length)];
        quantizer.Encode(values, encoded);
        var decoded = new float[values.Length];
        quantizer.Decode(encoded, decoded);
        Assert.IsTrue(decoded.Take(256).All(v => v == 0f));
        var sum = Random(300, seed: 5);
        var expected = sum.Zip(decoded, (a, b) => a + b).ToArray();
        quantizer.DecodeAdd(encoded, sum);
        CollectionAssert.AreEqual(expected, sum);
    }

    [TestMethod]
    [DataRow(2, 700)]
    [DataRow(3, 513)]
    [DataRow(4, 100)]
    public void QuantizedAllGatherGivesEveryRankTheSameDecodedPieces(int ranks, int piece)
    {
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var gather = new QuantizedAllGather(communicator, maxSegment: piece + 50, StorageType.BFloat16);
            var gathered = new float[piece * ranks];
            gather.AllGather(Random(piece, seed: 10 + communicator.Rank), gathered);
            return (Gathered: gathered, Sent: communicator.Traffic.TotalSent);
        }, TimeSpan.FromMinutes(1));

        var quantizer = new BlockQuantizer(QuantizedAllGather.Bits);
        var expected = new float[piece * ranks];
        var exact = new float[piece * ranks];
        for (int r = 0; r < ranks; r++)
        {
            var values = Random(piece, seed: 10 + r);
            values.CopyTo(exact, r * piece);
            var encoded = new float[quantizer.EncodedLength(piece)];
            quantizer.Encode(values, encoded);
            quantizer.Decode(encoded, expected.AsSpan(r * piece, piece));
        }
        StorageRounding.RoundInPlace(expected, StorageType.BFloat16);
        foreach (var (gathered, sent) in results)
        {
            CollectionAssert.AreEqual(expected, gathered);
            // int8 + one scale per 256: about a quarter of the fp32 bytes an exact gather sends.
            Assert.IsTrue(sent < 0.27 * piece * (ranks - 1) * sizeof(float) + 64, $"sent {sent} B");
        }
        double error = exact.Zip(results[0].Gathered, (a, b) => Math.Abs(a - b)).Max();
        Assert.IsTrue(error > 0 && error < 0.05 * exact.Max(Math.Abs), $"largest error {error}");
    }

    [TestMethod]
    [DataRow(2, 700)]
    [DataRow(3, 300)]
    [DataRow(4, 257)]
    public void QuantizedReduceScatterSumsEachRanksEncodedSegmentsInRankOrder(int ranks, int segment)
    {
        float[] Input(int rank) => Random(segment * ranks, seed: 20 + rank, spread: 0.01f);
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var reduce = new QuantizedReduceScatter(communicator, maxSegment: segment);
            var output = new float[segment];
            reduce.ReduceScatterSum(Input(communicator.Rank), output);
            return (Output: output, Sent: communicator.Traffic.TotalSent);
        }, TimeSpan.FromMinutes(1));

        var quantizer = new BlockQuantizer(QuantizedReduceScatter.Bits);
        for (int rank = 0; rank < ranks; rank++)
        {
            var expected = new float[segment];
            var exact = new double[segment];
            for (int sender = 0; sender < ranks; sender++)
            {
                var part = Input(sender).AsSpan(rank * segment, segment);
                var encoded = new float[quantizer.EncodedLength(segment)];
                quantizer.Encode(part, encoded);
                quantizer.DecodeAdd(encoded, expected);
                for (int i = 0; i < segment; i++) exact[i] += part[i];
            }
            CollectionAssert.AreEqual(expected, results[rank].Output, $"rank {rank}");
            // Each sender's error is at most half a step of its block (max / 7 at 4 bits).
            double bound = ranks * 0.5 * 0.01 * (1 + (segment * ranks) / 256.0) / 7 * 1.0001;
            double error = exact.Zip(results[rank].Output, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(error > 0 && error <= bound, $"rank {rank}: largest error {error}, bound {bound}");
            // 4 bits + one scale per 256 to each other rank: about an eighth of an fp32 reduce-scatter's bytes.
            Assert.IsTrue(results[rank].Sent < 0.14 * segment * (ranks - 1) * sizeof(float) + 64, $"sent {results[rank].Sent} B");
        }
    }

    /// <summary>
    /// qgZ over hpZ's nodes: within each node of k ranks first (one partial sum per node for each place), then between
    /// nodes among the ranks at the same place; each hop's segments encoded on their own. Equal to that computed
    /// locally, close to the exact sum, and the bytes split as planned: (k−1) node peers get a segment per node,
    /// (N/k − 1) other nodes one segment each.
    /// </summary>
    [TestMethod]
    [DataRow(4, 2, 300)]
    [DataRow(6, 3, 257)]
    [DataRow(4, 4, 100)]
    public void HierarchicalReductionSumsWithinNodesThenAcrossThem(int ranks, int perNode, int segment)
    {
        float[] Input(int rank) => Random(segment * ranks, seed: 40 + rank, spread: 0.01f);
        var zero = Shardwise.Training.Config.DeepSpeedConfig.Parse(
            $$$"""{"train_batch_size": {{{ranks}}}, "zero_optimization": {"stage": 3, "zero_hpz_partition_size": {{{perNode}}}}}""").Config.ZeroOptimization;
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var nodes = NodeGroups.For(zero, communicator)!;
            communicator.Traffic.Reset(); // the splits themselves talk over the world
            var reduce = new QuantizedReduceScatter(communicator, maxSegment: segment, nodes);
            var output = new float[segment];
            reduce.ReduceScatterSum(Input(communicator.Rank), output);
            return (Output: output, Node: nodes.Node.Traffic.TotalSent, Across: nodes.Across.Traffic.TotalSent, World: communicator.Traffic.TotalSent);
        }, TimeSpan.FromMinutes(1));

        var quantizer = new BlockQuantizer(QuantizedReduceScatter.Bits);
        int count = ranks / perNode, encoded = quantizer.EncodedLength(segment);
        float[] RoundTrip(ReadOnlySpan<float> values)
        {
            var packed = new float[encoded];
            quantizer.Encode(values, packed);
            var decoded = new float[values.Length];
            quantizer.Decode(packed, decoded);
            return decoded;
        }
        for (int rank = 0; rank < ranks; rank++)
        {
            int place = rank % perNode, myNode = rank / perNode;
            var expected = new float[segment];
            var exact = new double[segment];
            for (int node = 0; node < count; node++)
            {
                // What the rank at this place in that node summed for this rank's node.
                var partial = new float[segment];
                for (int peer = 0; peer < perNode; peer++)
                {
                    var part = Input(node * perNode + peer).AsSpan(rank * segment, segment);
                    var decoded = RoundTrip(part);
                    for (int i = 0; i < segment; i++) { partial[i] += decoded[i]; exact[i] += part[i]; }
                }
                var hop = RoundTrip(partial);
                for (int i = 0; i < segment; i++) expected[i] += hop[i];
            }
            CollectionAssert.AreEqual(expected, results[rank].Output, $"rank {rank} (node {myNode}, place {place})");
            // Half a step (max / 7 at 4 bits) per sender in the first hop, and per node's partial sum (at most k
            // senders' magnitude) in the second.
            double largest = Enumerable.Range(0, ranks).Max(r => Input(r).Max(Math.Abs));
            double bound = (ranks + count * perNode) * largest / (2 * 7.0) * 1.0001;
            double error = exact.Zip(results[rank].Output, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(error > 0 && error <= bound, $"rank {rank}: largest error {error}, bound {bound}");
            Assert.AreEqual((perNode - 1) * count * encoded * sizeof(float), results[rank].Node, $"rank {rank}: bytes within its node");
            Assert.AreEqual((count - 1) * encoded * sizeof(float), results[rank].Across, $"rank {rank}: bytes between nodes");
            Assert.AreEqual(0, results[rank].World, "nothing in a collective over every rank");
        }
    }

    [TestMethod]
    public void OnlyFourAndEightBitsArePacked()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BlockQuantizer(2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BlockQuantizer(16));
    }
}
