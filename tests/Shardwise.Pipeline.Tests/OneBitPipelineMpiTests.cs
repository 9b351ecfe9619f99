using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The 1-bit optimizers on a pipelined model (PipelineGpt, two stages; HybridGpt, two stages of two tensor ranks) under
/// mpirun: with one data replica there is
/// nothing to compress, so the stages must train exactly like one process (the local-gradient clip spanning the stages,
/// the tied embedding stepped alike on both holders), and a checkpoint past the freeze step, whose 1-bit state the stages
/// gather into the model's layout, must resume on the stages and in one process like the uninterrupted run. With two data
/// replicas each stage compresses over its own data group.
/// </summary>
[TestClass]
public sealed class OneBitPipelineMpiTests
{
    private static string Config(string optimizer, string settings, int microBatch = 2) => $$"""
        { "train_micro_batch_size_per_gpu": {{microBatch}}, "gradient_accumulation_steps": 2, "steps_per_print": 1, "gradient_clipping": 0.25,
          "optimizer": { "type": "{{optimizer}}", "params": { "lr": 1e-2, "weight_decay": 0.1, "bias_correction": false, {{settings}} } } }
        """;

    // ZeroOneAdam: the variance from steps 1–4, local steps from step 6, synchronised at 6 and then every 2, then 4
    // steps, so the step-7 checkpoint holds local updates not yet synchronised (its momentum accumulator, gathered from
    // both stages). A variance from only two or three steps leaves elements whose m/(√v + ε) magnifies the rounding
    // differences between the split programs' gradients and the whole program's past 1e-5 in the loss within a few
    // steps (1e-4 for ZeroOneAdam with two, 2e-5 for OneBitAdam on HybridGpt with three), hence the longer warm-ups.
    [TestMethod]
    [DataRow("PipelineGpt", 2, "OneBitAdam", "\"freeze_step\": 3", 5)]
    [DataRow("PipelineGpt", 2, "ZeroOneAdam", "\"var_freeze_step\": 4, \"var_update_scaler\": 4, \"local_step_scaler\": 1, \"local_step_clipper\": 4", 7)]
    [DataRow("HybridGpt", 4, "OneBitAdam", "\"freeze_step\": 5", 7)] // tensor ranks too: the clip counts a replicated tensor once
    public void OnStagesItTrainsLikeOneProcessAndResumesPastItsFreeze(string model, int ranks, string optimizer, string settings, int split)
    {
        using var run = new TrainingRun(model);
        string config = run.WriteConfig("onebit.json", Config(optimizer, settings));
        double[] alone = TrainingRun.Losses(run.Train("one-process", ranks: 0, steps: 10, config: config));
        string staged = run.Train("pipelined", ranks: ranks, steps: 10, config: config);
        StringAssert.Contains(File.ReadAllText(Path.Combine(staged, "log.txt")), $"ranks: {ranks} = data 1 × pipeline 2 × tensor {ranks / 2}");
        TrainingRun.AssertLossesMatch(alone, TrainingRun.Losses(staged), 1e-5, $"{optimizer} on two stages against one process");

        string first = run.Train("first-part", ranks: ranks, steps: split, config: config);
        string resumed = run.Train("resumed-on-stages", ranks: ranks, steps: 10, resume: first, config: config);
        TrainingRun.AssertLossesMatch(alone[split..], TrainingRun.Losses(resumed), 1e-5, $"{optimizer} resumed on the stages");
        string resumedAlone = run.Train("resumed-in-one-process", ranks: 0, steps: 10, resume: first, config: config);
        TrainingRun.AssertLossesMatch(alone[split..], TrainingRun.Losses(resumedAlone), 1e-5, $"{optimizer}'s pipelined checkpoint resumed in one process");
    }

    [TestMethod]
    [DataRow("OneBitAdam", "\"freeze_step\": 3")]
    [DataRow("ZeroOneAdam", "\"var_freeze_step\": 10, \"var_update_scaler\": 8, \"local_step_scaler\": 2, \"local_step_clipper\": 2")]
    public void WithTwoDataReplicasEachStageCompressesOverItsDataGroup(string optimizer, string settings)
    {
        using var run = new TrainingRun("PipelineGpt");
        string config = run.WriteConfig("onebit.json", Config(optimizer, settings, microBatch: 1));
        string output = run.Train("four-ranks", ranks: 4, steps: 16, config: config);
        string log = File.ReadAllText(Path.Combine(output, "log.txt"));
        StringAssert.Contains(log, "ranks: 4 = data 2 × pipeline 2 × tensor 1");
        StringAssert.Contains(log, "1-bit compression");
        double[] losses = TrainingRun.Losses(output);
        // Micro-batches of one sample make single steps noisy (a step-11 loss of 2.7 on this machine's OpenBLAS): the mean
        // of every step after the first three, not of the last few, is what must fall.
        Assert.IsTrue(losses.Skip(3).Average() < losses.Take(3).Average() - 0.15, $"the loss must fall: {string.Join(", ", losses)}");
    }
}
