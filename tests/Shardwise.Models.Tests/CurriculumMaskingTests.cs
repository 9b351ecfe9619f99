using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Training.Curriculum;

namespace Shardwise.Models.Tests;

/// <summary>
/// What the sequence-length curriculum rests on: masking a causal model's targets past length L (the ignore index)
/// gives the loss and the parameter gradients of the same model run on sequences truncated to L, which is what
/// DeepSpeed and Megatron train on. TwoBlockGpt (context 6) with targets masked from position 4 against
/// ShortTwoBlockGpt (context 4) with the same weights (its position table is the first four rows), in float64.
/// </summary>
[TestClass]
public sealed class CurriculumMaskingTests
{
    private const int Batch = 3;

    [TestMethod]
    public void MaskedTargetsTrainAsTruncatedSequences()
    {
        const int length = ShortTwoBlockGpt.Context, full = TwoBlockGpt.Context, width = TwoBlockGpt.Width;
        var whole = new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var truncated = new ShortTwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(whole, seed: 61);
        foreach (var slot in truncated.Layout.Slots)
        {
            var source = whole.Layout.Slots.Single(s => s.Name == slot.Name);
            whole.Parameters.Slice((int)source.Offset, (int)slot.Length).CopyTo(truncated.Parameters.Slice((int)slot.Offset, (int)slot.Length));
        }

        var random = new Random(62);
        int[] ids = RandomData.Tokens(random, Batch * full, TwoBlockGpt.Vocabulary);
        int[] targets = RandomData.Tokens(random, Batch * full, TwoBlockGpt.Vocabulary);
        int[] masked = (int[])targets.Clone();
        SequenceLengthCurriculum.MaskTargets(masked, full, length);
        Assert.AreEqual(Batch * (full - length), masked.Count(t => t == CrossEntropyKernels.IgnoreIndex));
        int[] shortIds = Prefixes(ids, full, length), shortTargets = Prefixes(targets, full, length);

        whole.ZeroGradients();
        truncated.ZeroGradients();
        double wholeLoss = whole.ForwardBackward(ids, masked, 1.0);
        double truncatedLoss = truncated.ForwardBackward(shortIds, shortTargets, 1.0);
        Assert.AreEqual(truncatedLoss, wholeLoss, 1e-12 * Math.Abs(truncatedLoss), "loss");

        foreach (var slot in truncated.Layout.Slots)
        {
            var source = whole.Layout.Slots.Single(s => s.Name == slot.Name);
            double[] expected = truncated.Gradients.Slice((int)slot.Offset, (int)slot.Length).ToArray();
            double[] actual = whole.Gradients.Slice((int)source.Offset, (int)slot.Length).ToArray();
            double scale = Math.Max(1e-30, expected.Max(Math.Abs));
            for (int i = 0; i < expected.Length; i++)
                Assert.AreEqual(expected[i], actual[i], 1e-12 * scale, $"{slot.Name}[{i}]");
            Assert.IsTrue(expected.Any(g => g != 0), $"{slot.Name}: the truncated run has a gradient to compare");
            if (source.Length == slot.Length) continue;
            // The position rows past the length feed only masked positions, which no earlier position attends to.
            Assert.IsTrue(whole.Gradients.Slice((int)(source.Offset + slot.Length), (int)(source.Length - slot.Length)).ToArray().All(g => g == 0),
                $"{slot.Name}: rows {length}..{full - 1} get no gradient");
            Assert.AreEqual(full * width, source.Length, $"{slot.Name} is the position table");
        }

        // Without the mask the whole sequences count: a different loss, so the comparison above measured something.
        Assert.AreNotEqual(truncatedLoss, whole.Forward(ids, targets), "masking changed the loss");
    }

    private static int[] Prefixes(int[] rows, int sequence, int length)
    {
        var prefixes = new int[rows.Length / sequence * length];
        for (int row = 0; row < rows.Length / sequence; row++)
            Array.Copy(rows, row * sequence, prefixes, row * length, length);
        return prefixes;
    }
}
