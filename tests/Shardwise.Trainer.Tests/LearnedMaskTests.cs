using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;
using Shardwise.Training.Optim;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// topk pruning's mask scores: their gradient is ∂L/∂mask (the binarizer passes it straight through), checked against
/// central differences of a float64 <see cref="SmallGpt"/>'s loss in a continuous multiplier on each head's input
/// columns of the attention projection, each output row (with its bias) of the MLP's expand, and single weights of
/// its contract; and the masks are the top scores.
/// </summary>
[TestClass]
public sealed class LearnedMaskTests
{
    private const int Batch = 2;

    private static CompressionTrainingConfig Config(double ratio = 0.5) => DeepSpeedConfig.Parse("""
        {"train_batch_size": 8, "compression_training": {
           "head_pruning": {"shared_parameters": {"enabled": true, "method": "topk", "num_heads": 2, "schedule_offset": 0},
                            "different_groups": {"hp1": {"params": {"dense_ratio": RATIO}, "modules": ["blocks\\.0\\.attention\\.projection"]}}},
           "row_pruning": {"shared_parameters": {"enabled": true, "method": "topk", "schedule_offset": 0},
                           "different_groups": {"rp1": {"params": {"dense_ratio": RATIO}, "modules": ["blocks\\.1\\.expand"]}}},
           "sparse_pruning": {"shared_parameters": {"enabled": true, "method": "topk", "schedule_offset": 0},
                              "different_groups": {"sp1": {"params": {"dense_ratio": RATIO}, "modules": ["blocks\\.0\\.contract"]}}}}}
        """.Replace("RATIO", ratio.ToString(System.Globalization.CultureInfo.InvariantCulture))).Config.CompressionTraining!;

    [TestMethod]
    public void ScoreGradientsAreTheLossDerivativeInEachMaskedUnit()
    {
        var random = new Random(5);
        var program = new SmallGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var flat = program.Parameters;
        foreach (var slot in program.Layout.Slots)
            for (long i = slot.Offset; i < slot.Offset + slot.Length; i++)
                flat[(int)i] = (slot.Init == Plans.ParameterInit.Ones ? 1.0 : 0.0) + 0.3 * (2 * random.NextDouble() - 1);
        int[] ids = Enumerable.Range(0, Batch * SmallGpt.Context).Select(_ => random.Next(SmallGpt.Vocabulary)).ToArray();
        int[] targets = Enumerable.Range(0, Batch * SmallGpt.Context).Select(_ => random.Next(SmallGpt.Vocabulary)).ToArray();

        program.ZeroGradients();
        program.ForwardBackward(ids, targets, 1.0);
        float[] gradients = program.Gradients.ToArray().Select(g => (float)g).ToArray();
        float[] weights = program.Parameters.ToArray().Select(w => (float)w).ToArray();

        var config = Config();
        var plan = CompressionPlan.For(program.Layout, config);
        Assert.AreEqual(0, plan.Problems.Count, string.Join("; ", plan.Problems));
        var learned = new LearnedMasks(config, plan, new AdamOptions());
        // In two pieces, as a partitioned rank adds its own part: the sums must not depend on where the cut falls.
        int cut = (int)plan.Modules.Single(m => m.Name == "blocks.0.attention.projection").WeightOffset + 37;
        learned.AccumulateGradients(gradients.AsSpan(0, cut), weights.AsSpan(0, cut), 0, 0);
        learned.AccumulateGradients(gradients.AsSpan(cut), weights.AsSpan(cut), cut, 0);

        double Loss() => program.Forward(ids, targets);
        // ∂L/∂m at m = 1 for the multiplier m on the given layout elements.
        double Numeric(long[] elements)
        {
            const double step = 1e-5;
            var saved = elements.Select(e => program.Parameters[(int)e]).ToArray();
            foreach (long e in elements) program.Parameters[(int)e] *= 1 + step;
            double plus = Loss();
            for (int i = 0; i < elements.Length; i++) program.Parameters[(int)elements[i]] = saved[i] * (1 - step);
            double minus = Loss();
            for (int i = 0; i < elements.Length; i++) program.Parameters[(int)elements[i]] = saved[i];
            return (plus - minus) / (2 * step);
        }

        int checkedUnits = 0;
        foreach (var technique in learned.Techniques)
        {
            foreach (var entry in technique.Entries)
            {
                var module = entry.Module;
                int[] units = technique.Kind == PruningKind.Sparse ? [0, 17, module.WeightLength - 1] : Enumerable.Range(0, Math.Min(entry.Length, 3)).ToArray();
                foreach (int unit in units)
                {
                    long[] elements = technique.Kind switch
                    {
                        PruningKind.Sparse => [module.WeightOffset + unit],
                        PruningKind.Row => Enumerable.Range(0, module.Columns).Select(c => module.WeightOffset + (long)unit * module.Columns + c)
                            .Append(module.BiasOffset!.Value + unit).ToArray(),
                        _ => Enumerable.Range(0, module.Rows).SelectMany(r => Enumerable.Range(unit * module.HeadColumns, module.HeadColumns)
                            .Select(c => module.WeightOffset + (long)r * module.Columns + c)).ToArray(),
                    };
                    double numeric = Numeric(elements), analytic = technique.Gradients[entry.Offset + unit];
                    Assert.IsTrue(Math.Abs(numeric) > 1e-6, $"{module.Name} {technique.Kind} {unit}: the loss must depend on the unit ({numeric:E2})");
                    Assert.AreEqual(numeric, analytic, 1e-4 * Math.Abs(numeric) + 1e-6,
                        $"{module.Name} {technique.Kind} unit {unit}: ∂L/∂mask {analytic:E4} against {numeric:E4}");
                    checkedUnits++;
                }
            }
        }
        Assert.AreEqual(3 + 3 + 2, checkedUnits, "weights, rows and both heads were all checked");
    }

    [TestMethod]
    public void MasksKeepTheTopScores_AndOnlyFromTheOffset()
    {
        var program = new SmallGpt.Compiled<float>(new CpuOps<float>(), Batch);
        var config = Config(ratio: 0.5);
        var plan = CompressionPlan.For(program.Layout, config);
        var learned = new LearnedMasks(config, plan, new AdamOptions());
        var heads = learned.Techniques.Single(t => t.Kind == PruningKind.Head);
        var projection = heads.Entries.Single().Module;
        heads.Scores[0] = 0.3f;
        heads.Scores[1] = -0.2f;
        learned.Refresh(0);
        CollectionAssert.AreEqual(new byte[] { 1, 0 }, learned.MaskOf(projection, PruningKind.Head, 0));
        heads.Scores[1] = 0.9f;
        learned.Refresh(1);
        CollectionAssert.AreEqual(new byte[] { 0, 1 }, learned.MaskOf(projection, PruningKind.Head, 1), "the mask follows the scores every update");

        var rows = learned.Techniques.Single(t => t.Kind == PruningKind.Row);
        Assert.AreEqual(rows.Entries.Single().Module.Rows / 2, learned.MaskOf(rows.Entries.Single().Module, PruningKind.Row, 1)!.Count(b => b == 1));
        Assert.IsTrue(rows.Scores.All(s => s >= -1 && s <= 1) && rows.Scores.Distinct().Count() == rows.Scores.Length,
            "row scores start as DeepSpeed's kaiming_uniform_(a=√5) over a fan-in of 1: distinct draws in [−1, 1]");
    }
}
