using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// Resumable checkpoints of pipelined / tensor-parallel runs (the trainer CLI under real mpirun jobs): a run checkpointed
/// after 5 steps and resumed for 5 more equals the uninterrupted 10-step run, and because the checkpoint is in the
/// one-process format it resumes in one process (the whole program) and a one-process checkpoint resumes on the stages.
/// </summary>
[TestClass]
public sealed class PipelineCheckpointMpiTests
{
    [TestMethod]
    public void AHybridRunCheckpointedHalfwayResumesOnItsRanksAndInOneProcessLikeTheUninterruptedRun()
    {
        using var run = new TrainingRun("HybridGpt");
        string whole = run.Train("uninterrupted", ranks: 4, steps: 10);
        string first = run.Train("first-half", ranks: 4, steps: 5);
        string checkpoint = Path.Combine(first, File.ReadAllText(Path.Combine(first, "latest")));
        Assert.AreEqual("step-000005", Path.GetFileName(checkpoint));
        foreach (string file in new[] { "model.safetensors", "optimizer.safetensors", "state.json", "tokenizer.json" })
            Assert.IsTrue(File.Exists(Path.Combine(checkpoint, file)), $"the pipelined checkpoint lacks {file}");
        // The one-process format: whole tensors under the model's parameter names, as the gathered final weights have them.
        CollectionAssert.AreEquivalent(SafeTensorsFile.Read(Path.Combine(whole, "weights.safetensors")).Keys.ToArray(),
            SafeTensorsFile.Read(Path.Combine(checkpoint, "model.safetensors")).Keys.ToArray());

        string resumed = run.Train("resumed", ranks: 4, steps: 10, resume: first);
        StringAssert.Contains(File.ReadAllText(Path.Combine(resumed, "log.txt")), "at step 5");
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(resumed), 1e-6, "resumed on 4 ranks");
        double difference = SafeTensorsFile.RelativeDifference(Path.Combine(whole, "weights.safetensors"), Path.Combine(resumed, "weights.safetensors"));
        Assert.IsTrue(difference < 1e-6, $"final weights of the resumed run differ from the uninterrupted run's by {difference:E2} (relative)");

        string alone = run.Train("resumed-in-one-process", ranks: 0, steps: 10, resume: first);
        StringAssert.Contains(File.ReadAllText(Path.Combine(alone, "log.txt")), "one process: training HybridGpt's whole program");
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(alone), 1e-5, "resumed in one process");
    }

    [TestMethod]
    public void AOneProcessCheckpointResumesOnTheStagesOfAPipelinedRun()
    {
        using var run = new TrainingRun("PipelineGpt");
        string whole = run.Train("uninterrupted-one-process", ranks: 0, steps: 10);
        string first = run.Train("first-half-one-process", ranks: 0, steps: 5);
        string resumed = run.Train("resumed-on-2-ranks", ranks: 2, steps: 10, resume: first);

        StringAssert.Contains(File.ReadAllText(Path.Combine(resumed, "log.txt")), "ranks: 2 = data 1 × pipeline 2 × tensor 1");
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(resumed), 1e-5, "one-process checkpoint resumed on 2 ranks");
    }

    [TestMethod]
    public void AZeroOneRunWithTwoDataReplicasCheckpointsItsShardedStateAndResumesInOneProcess()
    {
        using var run = new TrainingRun("PipelineGpt");
        // 2 replicas × 1 row = the one process's 2 rows: the same global batch, so the data order carries over.
        string sharded = run.WriteConfig("zero1.json", TrainingRun.Config(microBatch: 1, zeroStage: 1));
        string whole = run.Train("uninterrupted-4-ranks", ranks: 4, steps: 10, config: sharded);
        StringAssert.Contains(File.ReadAllText(Path.Combine(whole, "log.txt")), "ranks: 4 = data 2 × pipeline 2 × tensor 1");
        string first = run.Train("first-half-4-ranks", ranks: 4, steps: 5, config: sharded);
        string alone = run.Train("resumed-in-one-process", ranks: 0, steps: 10, resume: first);

        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(alone), 1e-5, "ZeRO-1 checkpoint resumed in one process");
    }

    /// <summary>
    /// ZeRO-3 on the stages of p2 × d2: no rank holds its stage's whole parameters, so the checkpoint gathers them from
    /// the data group's pieces; the run resumed on its ranks continues as the uninterrupted one, and its checkpoint
    /// resumes in one process (ZeRO-3 there too) as well.
    /// </summary>
    [TestMethod]
    public void AZeroThreeRunOnTheStagesCheckpointsItsPartitionedParametersAndResumes()
    {
        using var run = new TrainingRun("PipelineGpt");
        // Slots from 50 elements on are partitioned (the default threshold of 1e5 would keep all of this model's whole).
        string ZeroThree(int microBatch) => TrainingRun.Config(microBatch, zeroStage: 3)
            .Replace("\"stage\": 3", "\"stage\": 3, \"stage3_param_persistence_threshold\": 50", StringComparison.Ordinal);
        string partitioned = run.WriteConfig("zero3.json", ZeroThree(microBatch: 1));
        string whole = run.Train("uninterrupted-4-ranks", ranks: 4, steps: 10, config: partitioned);
        string log = File.ReadAllText(Path.Combine(whole, "log.txt"));
        StringAssert.Contains(log, "ranks: 4 = data 2 × pipeline 2 × tensor 1");
        StringAssert.Contains(log, "ZeRO stage 3");
        // 2 micro-batches × 2 passes × the stage's partitioned slots per step; all but each step's first prefetched.
        StringAssert.Matches(log, new System.Text.RegularExpressions.Regex(@"ZeRO-3 parameter gathers: \d+ requests, \d+ served from prefetch \(rank 0, stage 0\)"));
        // `plan` predicted the memory stage 0's rank reports, before anything ran.
        string memory = log.Split('\n').Single(line => line.StartsWith("memory (stage 0, 2 activation windows): ", StringComparison.Ordinal))["memory (stage 0, 2 activation windows): ".Length..].Trim();
        StringAssert.Contains(run.Plan(ranks: 4, partitioned), "  stage 0 (2 activation windows): " + memory + "  total ");
        string first = run.Train("first-half-4-ranks", ranks: 4, steps: 5, config: partitioned);
        string resumed = run.Train("resumed-4-ranks", ranks: 4, steps: 10, resume: first, config: partitioned);
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(resumed), 1e-6, "ZeRO-3 resumed on 4 ranks");
        double difference = SafeTensorsFile.RelativeDifference(Path.Combine(whole, "weights.safetensors"), Path.Combine(resumed, "weights.safetensors"));
        Assert.IsTrue(difference < 1e-6, $"final weights of the resumed run differ from the uninterrupted run's by {difference:E2} (relative)");

        // 2 replicas × 1 row = the one process's 2 rows: the same global batch, so the data order carries over.
        string alone = run.Train("resumed-in-one-process", ranks: 0, steps: 10, resume: first, config: run.WriteConfig("zero3-alone.json", ZeroThree(microBatch: 2)));
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(alone), 1e-5, "ZeRO-3 checkpoint resumed in one process");
    }

    /// <summary>
    /// Compression training on the stages: the checkpoint at 5 holds the masks taken at update 2 on both stages (gathered
    /// into one file), and the run resumed from it on its ranks, with the row masks still to be taken at 7, continues as
    /// the uninterrupted one.
    /// </summary>
    [TestMethod]
    public void ACompressedPipelineResumesWithItsMasks()
    {
        using var run = new TrainingRun("PipelineGpt");
        string compressed = run.WriteConfig("compressed.json",
            TrainingRun.Config(microBatch: 2, zeroStage: 0).TrimEnd().TrimEnd('}') + TrainingRun.CompressionSection(rowPruningOffset: 7) + " }");
        string whole = run.Train("uninterrupted", ranks: 2, steps: 10, config: compressed);
        string first = run.Train("first-half", ranks: 2, steps: 5, config: compressed);
        var masks = SafeTensorsFile.ReadBytes(Path.Combine(first, "step-000005", "compression_masks.safetensors"));
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 4).Select(b => $"blocks.{b}.down.sparse_mask").ToArray(), masks.Keys.ToArray(), "both stages' sparse masks, no row mask yet");
        string resumed = run.Train("resumed", ranks: 2, steps: 10, resume: first, config: compressed);
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[5..], TrainingRun.Losses(resumed), 1e-6, "resumed on 2 ranks");
        var final = SafeTensorsFile.ReadBytes(Path.Combine(whole, "step-000010", "compression_masks.safetensors"));
        var resumedFinal = SafeTensorsFile.ReadBytes(Path.Combine(resumed, "step-000010", "compression_masks.safetensors"));
        Assert.AreEqual(8, final.Count);
        foreach (var (name, mask) in final) CollectionAssert.AreEqual(mask, resumedFinal[name], name);
    }

    /// <summary>
    /// Learned (topk) head and row masks, and 8-bit activations into the MLP's down projections, on the stages: the
    /// two-stage run follows the one process, its checkpoint holds every block's scores gathered from both stages under
    /// the one-process names, and the run resumed from it at 4 continues as the uninterrupted one, scores and all.
    /// </summary>
    [TestMethod]
    public void ALearnedMaskPipelineFollowsOneProcessAndResumesWithItsScores()
    {
        using var run = new TrainingRun("PipelineGpt");
        string learned = run.WriteConfig("learned.json", TrainingRun.Config(microBatch: 2, zeroStage: 0).TrimEnd().TrimEnd('}') + """
            , "compression_training": {
                "head_pruning": { "shared_parameters": { "enabled": true, "num_heads": 2, "schedule_offset": 1 },
                  "different_groups": { "hp": { "params": { "dense_ratio": 0.5 }, "modules": ["attention\\.projection"] } } },
                "row_pruning": { "shared_parameters": { "enabled": true, "method": "topk", "schedule_offset": 2 },
                  "different_groups": { "rp": { "params": { "dense_ratio": 0.75 }, "modules": ["up"] } } },
                "activation_quantization": { "shared_parameters": { "enabled": true, "schedule_offset": 1 },
                  "different_groups": { "aq": { "params": { "bits": 8 }, "modules": ["down"] } } } } }
            """);
        // Each stage quantizes its blocks' "down" inputs (3 · 8 columns) over micro-batch 2 × 6 tokens, in fp32.
        StringAssert.Contains(run.Plan(ranks: 2, learned), $"plus the quantized Linear inputs' scratch (activation_quantization): {2 * 6 * 24 * 4:N0} bytes");
        string alone = run.Train("one-process", ranks: 0, steps: 8, config: learned);
        string whole = run.Train("uninterrupted", ranks: 2, steps: 8, config: learned);
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(alone), TrainingRun.Losses(whole), 1e-5, "two stages against one process");
        var aloneScores = SafeTensorsFile.Read(Path.Combine(alone, "step-000008", "compression_scores.safetensors"));
        var wholeScores = SafeTensorsFile.Read(Path.Combine(whole, "step-000008", "compression_scores.safetensors"));
        CollectionAssert.AreEquivalent(aloneScores.Keys.ToArray(), wholeScores.Keys.ToArray(), "the same score tensors");
        Assert.AreEqual(4 * 3 * 2 + 2, aloneScores.Count, "head and row scores with two moments for 4 blocks, and two step counts");

        string first = run.Train("first-half", ranks: 2, steps: 4, config: learned);
        string resumed = run.Train("resumed", ranks: 2, steps: 8, resume: first, config: learned);
        TrainingRun.AssertLossesMatch(TrainingRun.Losses(whole)[4..], TrainingRun.Losses(resumed), 1e-6, "resumed on 2 ranks");
        var resumedScores = SafeTensorsFile.ReadBytes(Path.Combine(resumed, "step-000008", "compression_scores.safetensors"));
        foreach (var (name, bytes) in SafeTensorsFile.ReadBytes(Path.Combine(whole, "step-000008", "compression_scores.safetensors")))
            CollectionAssert.AreEqual(bytes, resumedScores[name], name);
    }

    /// <summary>
    /// train --init-from on the stages: a HybridGpt job (2 stages × 2 tensor ranks) starts from a one-process run's weights,
    /// each rank taking its slices of the whole model; with a learning rate of 0 its gathered weights are those weights.
    /// </summary>
    [TestMethod]
    public void APipelinedRunStartsFromAOneProcessRunsWeights()
    {
        using var run = new TrainingRun("HybridGpt");
        string trained = run.Train("trained-one-process", ranks: 0, steps: 5);
        string frozen = run.WriteConfig("lr0.json", TrainingRun.Config(microBatch: 2, zeroStage: 0).Replace("\"lr\": 1e-2", "\"lr\": 0"));
        string started = run.Train("started-on-4-ranks", ranks: 4, steps: 1, config: frozen, initFrom: trained);
        StringAssert.Contains(File.ReadAllText(Path.Combine(started, "log.txt")), "initialized from the fp32 masters of");
        var expected = SafeTensorsFile.Read(Path.Combine(trained, "step-000005", "model.safetensors"));
        var actual = SafeTensorsFile.Read(Path.Combine(started, "weights.safetensors"));
        CollectionAssert.AreEquivalent(expected.Keys.ToArray(), actual.Keys.ToArray());
        foreach (var (name, values) in expected) CollectionAssert.AreEqual(values, actual[name], name);
    }
}
