using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// Generated stage programs (the partitioned test models of Shardwise.Models.Tests: PipelineGpt p = 2, TensorGpt t = 2,
/// HybridGpt p = 2 × t = 2) under real mpirun jobs: trained 20 steps through PipelineEngine they equal their whole
/// generated program in one process (loss, gradient norm, weights: relative &lt; 1e-5), and the trainer CLI's
/// <c>train</c> on W = d · p · t ranks matches its one-process run, also under a sequence-length curriculum (its masked
/// targets reach the last stage's loss, vocabulary-parallel with t = 2).
/// </summary>
[TestClass]
public sealed class GeneratedModelMpiTests
{
    private const string Exe = "Shardwise.Pipeline.Models.dll";
    private static readonly TimeSpan CommTimeout = TimeSpan.FromSeconds(30);

    [TestMethod]
    [DataRow("PipelineGpt", 2, 0)]
    [DataRow("PipelineGpt", 4, 1)] // two stages × two data replicas, ZeRO-1 within each data group
    [DataRow("PipelineGpt", 4, 2)] // ZeRO-2: gradients streamed through the stage programs' gradient pools
    [DataRow("PipelineGpt", 4, 3)] // ZeRO-3: parameters gathered within each data group, prefetched in the order of 1F1B's passes
    [DataRow("HybridGpt", 8, 3)]   // and with tensor-parallel stages (p2 × t2 × d2)
    [DataRow("TensorGpt", 2, 0)]
    [DataRow("HybridGpt", 4, 0)]
    [DataRow("CheckpointedHybridGpt", 4, 0)] // also equal to HybridGpt, the same model without [Checkpoint]
    [DataRow("HostCheckpointedHybridGpt", 4, 1)] // inputs in host memory, one store per micro-batch in flight; equal to HybridGpt too
    [DataRow("PartitionedCheckpointHybridGpt", 4, 0)] // inputs kept in halves on the two tensor ranks, all-gathered before each recompute; equal to HybridGpt too
    [DataRow("PartitionedCheckpointHybridGpt", 8, 3)] // and with two data replicas at ZeRO-3
    public void GeneratedStagesTrainedInAJobEqualTheWholeProgram(string model, int ranks, int zeroStage)
    {
        MpiJob job = MpiJob.Run(Exe, ranks, CommTimeout, TimeSpan.FromMinutes(3), ["equivalence", model, "20", zeroStage.ToString(CultureInfo.InvariantCulture)]);

        Assert.AreEqual(0, job.ExitCode, job.Output);
        for (int rank = 0; rank < ranks; rank++) StringAssert.Contains(job.Output, $"models probe rank {rank}: {model} equivalence ok", job.Output);
    }

    [TestMethod]
    [DataRow("PipelineGpt", 2, false)]
    [DataRow("HybridGpt", 4, false)]
    [DataRow("HybridGpt", 4, true)]
    [DataRow("DroppableHybridGpt", 4, false)] // progressive layer drop: every stage and tensor rank skips a micro-batch's blocks alike
    [DataRow("DroppableHybridGpt", 4, false, true)] // and random-LTD: every stage and tensor rank drops a micro-batch's tokens alike
    [DataRow("PipelineGpt", 2, false, false, true)] // compression training: each stage quantizes and prunes its whole tensors alike
    [DataRow("ParallelGpt", 4, false)] // examples/ParallelGpt: TinyGpt's shape on p2 × t2, blocks checkpointed with their inputs in halves
    public void TrainerCliTrainsAPartitionedModelOnItsStagesLikeOneProcess(string model, int ranks, bool curriculum, bool tokenDrop = false, bool compression = false)
    {
        bool layerDrop = model.StartsWith("Droppable", StringComparison.Ordinal);
        string directory = Path.Combine(Path.GetTempPath(), $"shardwise-pipeline-cli-{model}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        try
        {
            string data = Path.Combine(directory, "words.txt"), config = Path.Combine(directory, "ds_config.json");
            var random = new Random(1);
            string[] words = ["abc", "bad", "cab", "dace", "ace", "bead", "deed", "faced"];
            File.WriteAllText(data, string.Join(" ", Enumerable.Range(0, 3000).Select(_ => words[random.Next(words.Length)])));
            // The curriculum: the first 5 steps on 3 of the context's 6 tokens, then all of them.
            string schedule = curriculum
                ? """
                  , "curriculum_learning": { "enabled": true, "curriculum_type": "seqlen", "min_difficulty": 3, "max_difficulty": 6,
                    "schedule_type": "fixed_discrete", "schedule_config": { "difficulty": [3, 6], "max_step": [5] } }
                  """
                : "";
            // The keep probability falls to 0.5–0.8 within a few steps: blocks are skipped from the second step on.
            if (layerDrop) schedule += """, "progressive_layer_drop": { "enabled": true, "theta": 0.5, "gamma": 0.5 }""";
            // Blocks 1 and 2 on 2 of the 6 tokens at first, 4 from step 5, all 6 from step 10.
            if (tokenDrop)
                schedule += """
                    , "data_efficiency": { "enabled": true, "data_routing": { "enabled": true, "random_ltd": { "enabled": true,
                        "total_layer_num": 4, "random_ltd_layer_num": 2, "random_ltd_layer_id": [1, 2],
                        "random_ltd_schedule": { "min_value": 2, "max_value": 6, "schedule_type": "fixed_linear",
                                                 "schedule_config": { "require_steps": 10, "seq_per_step": 2 } } } } }
                    """;
            // 4-bit MoQ on every module (the tied embedding on both of its stages), then pruning of the MLPs.
            if (compression) schedule += TrainingRun.CompressionSection(rowPruningOffset: 3);
            File.WriteAllText(config, $$"""
                { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "steps_per_print": 1, "gradient_clipping": 0.25,
                  "optimizer": { "type": "AdamW", "params": { "lr": 1e-2, "weight_decay": 0.1 } } {{schedule}} }
                """);
            string[] Train(string output) => ["cli", model, "train", "--config", config, "--data", data, "--steps", "10", "--eval-interval", "0", "--output", output];

            string alone = Path.Combine(directory, "one-process"), pipelined = Path.Combine(directory, "pipelined");
            MpiJob single = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(2), Train(alone));
            Assert.AreEqual(0, single.ExitCode, single.Output);
            StringAssert.Contains(single.Output, $"one process: training {model}'s whole program");
            if (curriculum) StringAssert.Contains(single.Output, "curriculum: sequence length fixed_discrete [3, 6] up to steps [5]; full context (6) from step 6");
            if (layerDrop) StringAssert.Contains(single.Output, "progressive layer drop: keep probability θ(t) = (1 − 0.5)·exp(−0.5·t) + 0.5");
            if (tokenDrop) StringAssert.Contains(single.Output, "random-LTD: layers 1, 2 of 4 keep 2→6 tokens");
            if (compression) StringAssert.Contains(single.Output, "compression: row pruning (l1) rp: keeps 0.75 of each weight's rows from update 3; 4 module(s)");
            MpiJob consolidate = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
                ["cli", model, "consolidate", "--resume", alone, "--output", Path.Combine(alone, "weights.safetensors")]);
            Assert.AreEqual(0, consolidate.ExitCode, consolidate.Output);

            MpiJob job = MpiJob.Run(Exe, ranks, CommTimeout, TimeSpan.FromMinutes(2), Train(pipelined));
            Assert.AreEqual(0, job.ExitCode, job.Output);
            StringAssert.Contains(job.Output, $"ranks: {ranks} = data 1 × pipeline 2 × tensor {ranks / 2}");
            if (curriculum) StringAssert.Contains(job.Output, "full context (6) from step 6");
            if (layerDrop) StringAssert.Contains(job.Output, "layers blocks.0, blocks.1, blocks.2, blocks.3");
            if (tokenDrop) StringAssert.Contains(job.Output, "random-LTD: layers 1, 2 of 4 keep 2→6 tokens");
            if (compression)
            {
                StringAssert.Contains(job.Output, "compression: row pruning (l1) rp: keeps 0.75 of each weight's rows from update 3; 4 module(s)");
                // The stages' masks, gathered into one file, are the one process's.
                var expectedMasks = SafeTensorsFile.ReadBytes(Path.Combine(alone, "step-000010", "compression_masks.safetensors"));
                var actualMasks = SafeTensorsFile.ReadBytes(Path.Combine(pipelined, "step-000010", "compression_masks.safetensors"));
                CollectionAssert.AreEquivalent(expectedMasks.Keys.ToArray(), actualMasks.Keys.ToArray());
                Assert.AreEqual(8, expectedMasks.Count, "4 sparse and 4 row masks of the blocks");
                foreach (var (name, mask) in expectedMasks) CollectionAssert.AreEqual(mask, actualMasks[name], name);
            }

            double[] expected = Losses(Path.Combine(alone, "metrics.csv")), actual = Losses(Path.Combine(pipelined, "metrics.csv"));
            Assert.AreEqual(10, expected.Length);
            Assert.AreEqual(expected.Length, actual.Length);
            for (int step = 0; step < expected.Length; step++)
                Assert.IsTrue(Math.Abs(actual[step] - expected[step]) / expected[step] < 1e-5, $"step {step + 1}: loss {actual[step]:R}, one process {expected[step]:R}");

            var reference = SafeTensorsFile.Read(Path.Combine(alone, "weights.safetensors"));
            var weights = SafeTensorsFile.Read(Path.Combine(pipelined, "weights.safetensors"));
            CollectionAssert.AreEquivalent(reference.Keys.ToArray(), weights.Keys.ToArray());
            double difference = 0, norm = 0;
            foreach (var (name, values) in reference)
                for (int i = 0; i < values.Length; i++)
                {
                    difference += Math.Pow(weights[name][i] - values[i], 2);
                    norm += (double)values[i] * values[i];
                }
            Assert.IsTrue(Math.Sqrt(difference / norm) < 1e-5, $"final weights differ by {Math.Sqrt(difference / norm):E2} (relative)");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// partition_activations is the model's [Checkpoint(PartitionInputs = true)]: the plan report of a model that has it
    /// says so, per stage, and the trainer's check is silent for it; a model that keeps its checkpointed inputs whole
    /// draws the warning.
    /// </summary>
    [TestMethod]
    public void PartitionActivationsAgreesWithAModelThatKeepsItsCheckpointsInParts()
    {
        var config = Shardwise.Training.Config.DeepSpeedConfig.Parse("""{ "activation_checkpointing": { "partition_activations": true } }""").Config.ActivationCheckpointing;
        StringAssert.Contains(Shardwise.Models.Tests.PartitionedCheckpointHybridGpt.PlanReport,
            "checkpointed inputs in parts over 2 tensor ranks: stage 0 keeps 2 parts (48 of 96 elements per sample), stage 1 keeps 1 part (24 of 48 elements per sample), all-gathered before their layer's recompute");
        Assert.IsNull(Shardwise.Training.Cli.ActivationCheckpointingCheck.Warning(config, "PartitionedCheckpointHybridGpt", Shardwise.Models.Tests.PartitionedCheckpointHybridGpt.PlanReport));
        StringAssert.Contains(Shardwise.Training.Cli.ActivationCheckpointingCheck.Warning(config, "CheckpointedHybridGpt", Shardwise.Models.Tests.CheckpointedHybridGpt.PlanReport),
            "write [Checkpoint(PartitionInputs = true)] on them");
    }

    /// <summary>
    /// tensor_parallel.autotp_size against HybridGpt's build-time Tensor = 2, in one process (the check comes before
    /// the job's size is looked at): 2 is the plan and trains; 4 stops naming the key and the planned degree.
    /// </summary>
    [TestMethod]
    public void AnAutoTpDegreeIsCheckedAgainstThePlannedTensorDegree()
    {
        string directory = Path.Combine(Path.GetTempPath(), $"shardwise-autotp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        try
        {
            string Config(int degree)
            {
                string path = Path.Combine(directory, $"tp{degree}.json");
                File.WriteAllText(path, $$"""{ "train_micro_batch_size_per_gpu": 2, "tensor_parallel": { "autotp_size": {{degree}} } }""");
                return path;
            }

            string data = Path.Combine(directory, "words.txt");
            File.WriteAllText(data, string.Join(" ", Enumerable.Repeat("bead cab faced deed", 200)));
            MpiJob planned = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
                ["cli", "HybridGpt", "train", "--config", Config(2), "--data", data, "--steps", "1", "--eval-interval", "0", "--output", Path.Combine(directory, "two")]);
            Assert.AreEqual(0, planned.ExitCode, planned.Output);
            MpiJob other = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
                ["cli", "HybridGpt", "train", "--config", Config(4), "--data", data, "--steps", "1", "--output", Path.Combine(directory, "four")]);
            Assert.AreNotEqual(0, other.ExitCode, other.Output);
            StringAssert.Contains(other.Output, "$.tensor_parallel.autotp_size is 4, but HybridGpt is planned for [Model(Tensor = 2)]", other.Output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// pipeline.stages against HybridGpt's build-time Pipeline = 2, in one process: "auto" and 2 are the plan and train;
    /// 4 stops naming the key and the planned count, before anything is trained.
    /// </summary>
    [TestMethod]
    public void APipelineStageCountIsCheckedAgainstThePlannedCut()
    {
        string directory = Path.Combine(Path.GetTempPath(), $"shardwise-stages-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        try
        {
            string Config(string stages)
            {
                string path = Path.Combine(directory, $"stages-{stages.Trim('"')}.json");
                File.WriteAllText(path, $$"""{ "train_micro_batch_size_per_gpu": 2, "pipeline": { "stages": {{stages}} } }""");
                return path;
            }

            string data = Path.Combine(directory, "words.txt");
            File.WriteAllText(data, string.Join(" ", Enumerable.Repeat("bead cab faced deed", 200)));
            foreach (string stages in new[] { "\"auto\"", "2" })
            {
                MpiJob planned = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
                    ["cli", "HybridGpt", "train", "--config", Config(stages), "--data", data, "--steps", "1", "--eval-interval", "0", "--output", Path.Combine(directory, "run-" + stages.Trim('"'))]);
                Assert.AreEqual(0, planned.ExitCode, planned.Output);
            }
            MpiJob other = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
                ["cli", "HybridGpt", "train", "--config", Config("4"), "--data", data, "--steps", "1", "--output", Path.Combine(directory, "four")]);
            Assert.AreNotEqual(0, other.ExitCode, other.Output);
            StringAssert.Contains(other.Output, "$.pipeline.stages is 4, but HybridGpt is planned for [Model(Pipeline = 2)]", other.Output);
            Assert.IsFalse(Directory.Exists(Path.Combine(directory, "four", "step-000001")), "nothing is trained");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [TestMethod]
    public void AJobWhoseSizeIsNotAMultipleOfTheModelsDegreesIsRefused()
    {
        MpiJob job = MpiJob.Run(Exe, 3, CommTimeout, TimeSpan.FromMinutes(1), ["cli", "HybridGpt", "train", "--steps", "1"]);

        Assert.AreNotEqual(0, job.ExitCode, job.Output);
        StringAssert.Contains(job.Output,
            "HybridGpt: the job has 3 ranks, but the model is planned for [Model(Pipeline = 2, Tensor = 2)]: the number of ranks must be a multiple of Pipeline × Tensor = 4", job.Output);
    }

    private static double[] Losses(string csv) => File.ReadAllLines(csv).Skip(1)
        .Select(line => double.Parse(line.Split(',')[2], CultureInfo.InvariantCulture)).ToArray();
}
