using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Tests;

/// <summary>
/// communication_data_type, prescale_gradients and gradient_predivide_factor on the host path: every rank ends with
/// the sum a reference computes element by element (each rank's scaled values rounded to the wire type, added in fp32
/// in rank order, the sum rounded once, then scaled back), a 16-bit wire sends half the bytes, and fp16 overflows in
/// the sum exactly where DeepSpeed's would.
/// </summary>
[TestClass]
public sealed class GradientReductionTests
{
    private static float[] Random(int length, int seed, float spread = 2f)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2 - 1) * spread)).ToArray();
    }

    private static GradientCommunicationConfig Wire(StorageType? type, bool prescale = false, double predivide = 1.0)
        => new() { DataType = type, PrescaleGradients = prescale, PredivideFactor = predivide };

    /// <summary>What every rank must hold: post · round(Σ_r round(pre · x_r)), the sums in fp32 in rank order.</summary>
    private static float[] Expected(int ranks, int length, Func<int, float[]> input, StorageType wire, float pre)
    {
        var sum = new float[length];
        for (int r = 0; r < ranks; r++)
        {
            var scaled = input(r).Select(x => x * pre).ToArray();
            StorageRounding.RoundInPlace(scaled, wire);
            for (int i = 0; i < length; i++) sum[i] += scaled[i];
        }
        StorageRounding.RoundInPlace(sum, wire);
        return sum.Select(x => x * (1f / pre)).ToArray();
    }

    [TestMethod]
    [DataRow(StorageType.BFloat16, 2, 1001, 1.0)]
    [DataRow(StorageType.Float16, 3, 700, 1.0)]
    [DataRow(StorageType.Float16, 4, 257, 8.0)]
    [DataRow(StorageType.BFloat16, 4, 5, 2.0)] // fewer values than a segment per rank for some ranks
    public void SixteenBitAllReduceRoundsEachRanksValuesAndTheSumOnce(StorageType wire, int ranks, int length, double predivide)
    {
        float[] Input(int rank) => Random(length, seed: 40 + rank);
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var reduction = new GradientReduction(communicator, Wire(wire, predivide: predivide), maxElements: length + 100);
            var data = Input(communicator.Rank);
            reduction.AllReduceSum(data);
            return (Data: data, Sent: communicator.Traffic.TotalSent);
        }, TimeSpan.FromMinutes(1));

        var expected = Expected(ranks, length, Input, wire, (float)(1 / predivide));
        var exact = Enumerable.Range(0, length).Select(i => Enumerable.Range(0, ranks).Sum(r => (double)Input(r)[i])).ToArray();
        foreach (var (data, sent) in results)
        {
            CollectionAssert.AreEqual(expected, data);
            // A ring all-reduce in fp32 sends 2·(N−1)/N of the values at 4 bytes; two bytes each here, plus a segment's padding.
            double fp32Ring = 2.0 * (ranks - 1) / ranks * length * sizeof(float);
            Assert.IsTrue(sent <= 0.5 * fp32Ring + 2 * ranks * sizeof(float), $"sent {sent} B against the fp32 ring's {fp32Ring} B");
        }
        double error = exact.Zip(results[0].Data, (a, b) => Math.Abs(a - b)).Max();
        Assert.IsTrue(error > 0 && error < 0.02 * ranks * 2, $"a 16-bit sum is not the exact one, but close: largest error {error}");
    }

    [TestMethod]
    [DataRow(StorageType.BFloat16, 2, 301, false)]
    [DataRow(StorageType.Float16, 4, 128, true)]
    [DataRow(StorageType.Float16, 3, 99, false)]
    public void SixteenBitReduceScatterGivesEachRankItsRoundedSegment(StorageType wire, int ranks, int segment, bool prescale)
    {
        float[] Input(int rank) => Random(segment * ranks, seed: 60 + rank);
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var reduction = new GradientReduction(communicator, Wire(wire, prescale: prescale), maxElements: segment * ranks);
            var output = new float[segment];
            reduction.ReduceScatterSum(Input(communicator.Rank), output);
            return output;
        }, TimeSpan.FromMinutes(1));

        var expected = Expected(ranks, segment * ranks, Input, wire, prescale ? 1f / ranks : 1f);
        for (int rank = 0; rank < ranks; rank++)
            CollectionAssert.AreEqual(expected.AsSpan(rank * segment, segment).ToArray(), results[rank], $"rank {rank}");
    }

    [TestMethod]
    public void Fp32WireWithScalingIsTheSumUpToRoundingAndTheDefaultIsTheCommunicatorsOwn()
    {
        const int ranks = 4, length = 500;
        float[] Input(int rank) => Random(length, seed: 80 + rank);
        foreach (var config in new[] { Wire(null), Wire(StorageType.Float32, prescale: true), Wire(StorageType.Float32, predivide: 3.0) })
        {
            var results = InProcessGroup.Run(ranks, communicator =>
            {
                var plain = Input(communicator.Rank);
                communicator.AllReduceSum(plain);
                var data = Input(communicator.Rank);
                var reduction = new GradientReduction(communicator, config, length);
                reduction.AllReduceSum(data);
                Assert.AreEqual(0, reduction.BufferBytes, "an fp32 wire goes through the communicator's own collectives");
                return (Plain: plain, Data: data);
            }, TimeSpan.FromMinutes(1));
            foreach (var (plain, data) in results)
            {
                if (config.IsDefault) CollectionAssert.AreEqual(plain, data);
                else
                    for (int i = 0; i < length; i++)
                        Assert.AreEqual(plain[i], data[i], 1e-5f * (1 + Math.Abs(plain[i])), $"{config.Describe()}, element {i}");
            }
        }
    }

    /// <summary>
    /// Why DeepSpeed has gradient_predivide_factor: four ranks' fp16 gradients of 30,000 each sum past fp16's 65,504,
    /// so the sum is ∞ (the loss scaler then skips the step), while divided by 4 first they sum to 30,000 and come back
    /// as 120,000 in fp32. Prescaling does the same.
    /// </summary>
    [TestMethod]
    public void AnFp16SumOverflowsUnlessPredividedOrPrescaled()
    {
        const int ranks = 4;
        float[] Reduce(GradientCommunicationConfig config) => InProcessGroup.Run(ranks, communicator =>
        {
            var data = new[] { 30000f, -30000f, 1f, 0.5f };
            new GradientReduction(communicator, config, data.Length).AllReduceSum(data);
            return data;
        }, TimeSpan.FromMinutes(1))[0];

        var plain = Reduce(Wire(StorageType.Float16));
        Assert.IsTrue(float.IsPositiveInfinity(plain[0]) && float.IsNegativeInfinity(plain[1]), string.Join(", ", plain));
        CollectionAssert.AreEqual(new[] { 120000f, -120000f, 4f, 2f }, Reduce(Wire(StorageType.Float16, predivide: 4)));
        CollectionAssert.AreEqual(new[] { 120000f, -120000f, 4f, 2f }, Reduce(Wire(StorageType.Float16, prescale: true)));
        // bf16 has fp32's range but 8 bits of precision: 30,000 travels as 29,952.
        CollectionAssert.AreEqual(new[] { 119808f, -119808f, 4f, 2f }, Reduce(Wire(StorageType.BFloat16)), "bf16 has fp32's range");
    }

    [TestMethod]
    public void BuffersAreWhatThePlanPredictsAndACallLargerThanPlannedIsRefused()
    {
        const int ranks = 3, length = 1001;
        var config = Wire(StorageType.BFloat16);
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var reduction = new GradientReduction(communicator, config, length);
            long before = reduction.BufferBytes;
            reduction.Reserve();
            var tooLong = new float[length + ranks];
            var error = Assert.ThrowsExactly<ArgumentException>(() => reduction.AllReduceSum(tooLong));
            return (Before: before, After: reduction.BufferBytes, error.Message);
        }, TimeSpan.FromMinutes(1));
        foreach (var (before, after, message) in results)
        {
            Assert.AreEqual(0, before, "allocated only once the engine knows the reduction runs on the host");
            Assert.AreEqual(GradientReduction.BufferBytesFor(config, ranks, length), after);
            StringAssert.Contains(message, "a segment of 335 values is larger than the 334 this reduction was sized for");
        }
    }
}
