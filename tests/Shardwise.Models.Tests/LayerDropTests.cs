using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// The code the generator emits for <c>[LayerDrop]</c> layers: with a micro-batch's <see cref="LayerKeep"/> set, a skipped
/// layer is the identity (its gradients exactly zero) and a kept one scales its branches, and the backward agrees with
/// float64 finite differences of that forward; with every layer kept unscaled it is the program without layer drop.
/// </summary>
[TestClass]
public sealed class LayerDropTests
{
    private const int Batch = 2;

    [TestMethod]
    public void GradientsMatchFiniteDifferencesWithASkippedLayerAndScaledOnes()
    {
        var p = new DroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 31);
        p.LayerKeep = new LayerKeep([true, false, true], [1.25, 1.5, 1 / 0.6]);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); })
            .WithZeroGradients(slot => slot.StartsWith("blocks.1.", StringComparison.Ordinal))
            .Check();
        Console.WriteLine($"blocks.1 skipped, blocks.0 and blocks.2 scaled: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void CheckpointedBranchFirstBlocksRecomputeOnlyWhatRuns()
    {
        var p = new CheckpointedDroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 43);
        p.LayerKeep = new LayerKeep([false, true, true], [2.0, 1 / 0.7, 1 / 0.55]);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); })
            .WithZeroGradients(slot => slot.StartsWith("blocks.0.", StringComparison.Ordinal))
            .Check();
        Console.WriteLine($"checkpointed, blocks.0 skipped: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void ASkippedMiddleBlockLeavesTheTwoBlockModel()
    {
        var droppable = new DroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(droppable, seed: 47);
        var two = new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        foreach (var slot in two.Layout.Slots)
            Slot(droppable, slot.Name.Replace("blocks.1.", "blocks.2.")).CopyTo(Slot(two, slot.Name));

        droppable.LayerKeep = new LayerKeep([true, false, true], [1.0, 1.0, 1.0]);
        droppable.ZeroGradients();
        two.ZeroGradients();
        double droppedLoss = droppable.Forward(ids, targets);
        droppable.Backward(1.0);
        double twoLoss = two.Forward(ids, targets);
        two.Backward(1.0);

        Assert.AreEqual(twoLoss, droppedLoss, 1e-13, "the loss without the middle block");
        foreach (var slot in two.Layout.Slots)
        {
            var expected = SlotGradient(two, slot.Name);
            var actual = SlotGradient(droppable, slot.Name.Replace("blocks.1.", "blocks.2."));
            for (int i = 0; i < expected.Length; i++)
                Assert.AreEqual(expected[i], actual[i], 1e-12 * Math.Max(1, Math.Abs(expected[i])), $"{slot.Name}[{i}]");
        }
        foreach (var slot in droppable.Layout.Slots)
        {
            if (!slot.Name.StartsWith("blocks.1.", StringComparison.Ordinal)) continue;
            foreach (double g in SlotGradient(droppable, slot.Name)) Assert.AreEqual(0.0, g, slot.Name);
        }

        // Not vacuous: with the middle block run, the loss is another.
        droppable.LayerKeep = null;
        Assert.AreNotEqual(droppedLoss, droppable.Forward(ids, targets), 1e-6);
    }

    [TestMethod]
    public void AKeptLayerScalesItsBranchesLikeScaledOutputWeights()
    {
        const double scale = 1.6;
        var scaled = new DroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(scaled, seed: 53);
        var weights = new DroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        scaled.Parameters.CopyTo(weights.Parameters);
        // Each branch ends in a Linear: its output times s is that Linear with weight and bias times s.
        foreach (string name in new[] { "blocks.1.attention.projection.weight", "blocks.1.attention.projection.bias", "blocks.1.down.weight", "blocks.1.down.bias" })
        {
            var values = Slot(weights, name);
            for (int i = 0; i < values.Length; i++) values[i] *= scale;
        }

        scaled.LayerKeep = new LayerKeep([true, true, true], [1.0, scale, 1.0]);
        double expected = weights.Forward(ids, targets);
        Assert.AreEqual(expected, scaled.Forward(ids, targets), 1e-12);
        scaled.LayerKeep = null;
        Assert.AreNotEqual(expected, scaled.Forward(ids, targets), 1e-6, "the scale must change the loss");
    }

    [TestMethod]
    public void EveryLayerKeptUnscaledIsTheProgramWithoutLayerDrop()
    {
        var p = new DroppableGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 59);
        p.ZeroGradients();
        double plain = p.Forward(ids, targets);
        p.Backward(1.0);
        var plainGradients = p.Gradients.ToArray();

        p.LayerKeep = new LayerKeep([true, true, true], [1.0, 1.0, 1.0]);
        p.ZeroGradients();
        Assert.AreEqual(plain, p.Forward(ids, targets), 0.0);
        p.Backward(1.0);
        CollectionAssert.AreEqual(plainGradients, p.Gradients.ToArray());
    }

    private static (int[] Ids, int[] Targets) Prepare(CompiledModel<double> program, int seed)
    {
        RandomData.Parameters(program, seed);
        var random = new Random(seed + 1);
        return (RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary),
            RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary));
    }

    private static Span<double> Slot(CompiledModel<double> program, string name)
    {
        foreach (var slot in program.Layout.Slots)
            if (slot.Name == name) return program.Parameters.Slice((int)slot.Offset, (int)slot.Length);
        throw new ArgumentException("no slot " + name);
    }

    private static double[] SlotGradient(CompiledModel<double> program, string name)
    {
        foreach (var slot in program.Layout.Slots)
            if (slot.Name == name) return program.Gradients.Slice((int)slot.Offset, (int)slot.Length).ToArray();
        throw new ArgumentException("no slot " + name);
    }
}
