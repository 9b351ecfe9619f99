using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Offload;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// offload_optimizer.device = "nvme" (ZeRO-Infinity's optimizer swap) against "cpu": the same TinyGpt job, with the
/// masters and moments in a swap file streamed in chunks that do not divide the partition, ends with the same
/// weights and moments bit for bit, at ZeRO 1, 2 and 3, on one and several ranks, in fp32, bf16 and fp16 with skipped
/// overflow steps; a checkpoint round trip and a host edit of the masters go through the swap; the memory plan
/// predicts what the engine holds, with the state off host memory; the trainer runs it end to end.
/// </summary>
[TestClass]
public sealed class NvmeOffloadTests
{
    private const int Steps = 8;
    private string _swapDirectory = null!;

    [TestInitialize]
    public void MakeDirectory() => _swapDirectory = TrainerRun.TempDirectory();

    [TestCleanup]
    public void RemoveDirectory() => Directory.Delete(_swapDirectory, recursive: true);

    private string Config(int stage, string precision, string device, int buffers = 4, bool pipeline = false, string parameters = "none") => $$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
          {{precision}},
          "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 50000, "sub_group_size": 3000,
                                 "stage3_param_persistence_threshold": 1000,
                                 "offload_optimizer": { "device": "{{device}}", "nvme_path": "{{_swapDirectory}}", "buffer_count": {{buffers}},
                                                        "pipeline_read": {{(pipeline ? "true" : "false")}}, "pipeline_write": {{(pipeline ? "true" : "false")}} },
                                 "offload_param": { "device": "{{parameters}}", "nvme_path": "{{_swapDirectory}}" } } }
        """;

    private static readonly string Fp32 = "\"fp16\": { \"enabled\": false }";
    private static readonly string Bf16 = "\"bf16\": { \"enabled\": true }";
    // 2^20 overflows the first steps' fp16 gradients: the swapped job must skip the same steps.
    private static readonly string Fp16 = "\"fp16\": { \"enabled\": true, \"initial_scale_power\": 20, \"hysteresis\": 1, \"loss_scale_window\": 3 }";

    private static TrainingEngine Engine(string json, ICommunicator communicator)
    {
        var config = DeepSpeedConfig.Parse(json).Config;
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        return TrainingEngine.Initialize(program, config, communicator);
    }

    /// <summary>Trains <paramref name="steps"/> optimizer steps on this rank's rows; returns the losses and the outcomes.</summary>
    private static string Train(TrainingEngine engine, ICommunicator communicator, int steps, ulong seed = 9)
    {
        int rows = TinyGpt.SequenceLength, ranks = communicator.Size;
        var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, ranks, rows, seed: seed);
        var inputs = new int[ranks * rows];
        var targets = new int[inputs.Length];
        var log = new System.Text.StringBuilder();
        long target = engine.GlobalStep + steps;
        while (engine.GlobalStep < target)
        {
            sampler.NextBatch(inputs, targets);
            float loss = engine.Forward(inputs.AsSpan(communicator.Rank * rows, rows), targets.AsSpan(communicator.Rank * rows, rows));
            engine.Backward();
            log.Append(loss.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).Append(' ').Append(engine.Step()).Append('\n');
        }
        return log.ToString();
    }

    [TestMethod]
    [DataRow(1, 1, "fp32")]
    [DataRow(1, 2, "bf16", 2, true)]
    [DataRow(1, 3, "fp16")]
    [DataRow(2, 1, "fp16", 1, true)] // one buffer: the pipelining flags cannot act
    [DataRow(2, 2, "bf16", 3, true)]
    [DataRow(3, 2, "fp32")]
    [DataRow(3, 2, "fp16", 2, true)]
    public void SwappedJobEqualsTheCpuOffloadJobBitForBit(int stage, int ranks, string precision, int buffers = 4, bool pipeline = false)
    {
        string settings = precision switch { "bf16" => Bf16, "fp16" => Fp16, _ => Fp32 };
        (string Log, (float[] Master, float[] ExpAvg, float[] ExpAvgSq) State, string Step) Run(string device) =>
            InProcessGroup.Run(ranks, communicator =>
            {
                var engine = Engine(Config(stage, settings, device, buffers, pipeline), communicator);
                Assert.AreEqual(device == "nvme", engine.OptimizerStateOnNvme);
                string log = Train(engine, communicator, Steps);
                return (log, engine.ExportFullState(), engine.DescribeOptimizerStep());
            }, TimeSpan.FromMinutes(2))[0];

        var cpu = Run("cpu");
        var nvme = Run("nvme");

        StringAssert.Contains(nvme.Step, $"masters and moments swapped to NVMe under {_swapDirectory}");
        Assert.AreEqual(cpu.Log, nvme.Log, "losses and step outcomes");
        if (precision == "fp16") StringAssert.Contains(cpu.Log, "SkippedOverflow", "the fp16 job must skip steps for the comparison to cover them");
        CollectionAssert.AreEqual(cpu.State.Master, nvme.State.Master, "masters");
        CollectionAssert.AreEqual(cpu.State.ExpAvg, nvme.State.ExpAvg, "exp_avg");
        CollectionAssert.AreEqual(cpu.State.ExpAvgSq, nvme.State.ExpAvgSq, "exp_avg_sq");
        Assert.IsTrue(cpu.State.ExpAvgSq.Any(v => v > 0), "the optimizer ran");
        Console.WriteLine($"ZeRO-{stage}, {ranks} rank(s), {precision}: {nvme.Step}");
    }

    /// <summary>
    /// A checkpoint streams the swapped state from the swap file a chunk at a time, in the per-rank format (2 ranks) and
    /// in the one-process format (1 rank, cut along the named tensors) alike: at ZeRO-2 the checkpoint holds what the same
    /// job with the state in host memory saves, bit for bit, and no rank allocates during the save as much as one copy
    /// of its state (reading it all took three).
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void ACheckpointStreamsTheSwappedState(int ranks)
    {
        var root = TrainerRun.TempDirectory();
        ((float[] Master, float[] ExpAvg, float[] ExpAvgSq, long AdamStep) State, long Allocated, long Owned) Save(string device)
        {
            string output = Path.Combine(root, device), config = Path.Combine(root, device + ".json");
            File.WriteAllText(config, Config(2, Fp32, device));
            var settings = Shardwise.Training.Cli.RunSettings.Read(
                Shardwise.Training.Cli.CliArguments.Parse(["train", "--config", config, "--output", output]), "TinyGpt", TextWriter.Null);
            var store = new Shardwise.Training.Cli.TrainingCheckpoint(output);
            var task = new AdditionTask();
            var perRank = InProcessGroup.Run(ranks, communicator =>
            {
                var engine = Engine(File.ReadAllText(config), communicator);
                Train(engine, communicator, 3);
                var sampler = task.CreateDataset(400, seed: 5).CreateSampler(DataSplit.Train, ranks, TinyGpt.SequenceLength, seed: 9);
                long before = GC.GetAllocatedBytesForCurrentThread();
                store.Save(engine, sampler, task.Tokenizer, settings);
                return (GC.GetAllocatedBytesForCurrentThread() - before, engine.OwnedElements);
            }, TimeSpan.FromMinutes(2));
            string checkpoint = Shardwise.Training.Cli.TrainingCheckpoint.FindLatest(output)!;
            return (Shardwise.Training.Cli.TrainingCheckpoint.ReadFullState(checkpoint, TinyGpt.ParameterLayout), perRank.Max(r => r.Item1), perRank.Min(r => r.Item2));
        }

        var cpu = Save("cpu");
        var nvme = Save("nvme");
        CollectionAssert.AreEqual(cpu.State.Master, nvme.State.Master, "masters");
        CollectionAssert.AreEqual(cpu.State.ExpAvg, nvme.State.ExpAvg, "exp_avg");
        CollectionAssert.AreEqual(cpu.State.ExpAvgSq, nvme.State.ExpAvgSq, "exp_avg_sq");
        Assert.AreEqual(cpu.State.AdamStep, nvme.State.AdamStep);
        Console.WriteLine($"bytes allocated by a rank during the save: {nvme.Allocated:N0} (swapped), {cpu.Allocated:N0} (host memory); one copy of a rank's state: {nvme.Owned * sizeof(float):N0}");
        Assert.IsTrue(nvme.Allocated < nvme.Owned * sizeof(float), $"the swapped save allocated {nvme.Allocated:N0} bytes, one state array is {nvme.Owned * sizeof(float):N0}");
        Directory.Delete(root, recursive: true);
    }

    /// <summary>
    /// Loading is the save's mirror: a checkpoint written by 2 ranks (ZeRO-2, state in host memory) resumes on 3 ranks
    /// at ZeRO-1 and ZeRO-2, with the state in host memory or swapped to NVMe, and each rank reads only the layout ranges
    /// its partition holds, straight into its state (a swap chunk at a time): no rank allocates during the load as much
    /// as one copy of its partition (reading the full layout took three full copies), and every rank ends with exactly
    /// its slices of the saved state.
    /// </summary>
    [TestMethod]
    [DataRow(1, "cpu")]
    [DataRow(2, "cpu")]
    [DataRow(2, "nvme")]
    public void ALoadReadsOnlyWhatTheRankOwns(int stage, string device)
    {
        var root = TrainerRun.TempDirectory();
        var task = new AdditionTask();
        string output = Path.Combine(root, "saved"), config = Path.Combine(root, "saved.json");
        File.WriteAllText(config, Config(2, Fp32, "cpu"));
        var settings = Shardwise.Training.Cli.RunSettings.Read(
            Shardwise.Training.Cli.CliArguments.Parse(["train", "--config", config, "--output", output]), "TinyGpt", TextWriter.Null);
        InProcessGroup.Run(2, communicator =>
        {
            var engine = Engine(File.ReadAllText(config), communicator);
            Train(engine, communicator, 3);
            var sampler = task.CreateDataset(400, seed: 5).CreateSampler(DataSplit.Train, 2, TinyGpt.SequenceLength, seed: 9);
            return new Shardwise.Training.Cli.TrainingCheckpoint(output).Save(engine, sampler, task.Tokenizer, settings);
        }, TimeSpan.FromMinutes(2));
        string checkpoint = Shardwise.Training.Cli.TrainingCheckpoint.FindLatest(output)!;
        var saved = Shardwise.Training.Cli.TrainingCheckpoint.ReadFullState(checkpoint, TinyGpt.ParameterLayout);

        const int ranks = 3;
        var loaded = InProcessGroup.Run(ranks, communicator =>
        {
            var engine = Engine(Config(stage, Fp32, device), communicator);
            var sampler = task.CreateDataset(400, seed: 5).CreateSampler(DataSplit.Train, ranks, TinyGpt.SequenceLength, seed: 9);
            // One step first: the state and the gathers' buffers exist (as in a run), and the load must replace all of it.
            Train(engine, communicator, 1, seed: 4);
            long before = GC.GetAllocatedBytesForCurrentThread();
            Shardwise.Training.Cli.TrainingCheckpoint.Load(checkpoint, engine, sampler);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            return (engine.ExportFullState(), engine.Optimizer.State.Step, engine.GlobalStep, allocated, engine.OwnedElements);
        }, TimeSpan.FromMinutes(2));

        foreach (var (state, adamStep, globalStep, allocated, owned) in loaded)
        {
            CollectionAssert.AreEqual(saved.Master, state.Master, "masters");
            CollectionAssert.AreEqual(saved.ExpAvg, state.ExpAvg, "exp_avg");
            CollectionAssert.AreEqual(saved.ExpAvgSq, state.ExpAvgSq, "exp_avg_sq");
            Assert.AreEqual((saved.AdamStep, 3L), (adamStep, globalStep));
            Assert.IsTrue(allocated < owned * sizeof(float), $"ZeRO-{stage} ({device}): the load allocated {allocated:N0} bytes, one array of the rank's partition is {owned * sizeof(float):N0}");
        }
        Console.WriteLine($"ZeRO-{stage} ({device}), 3 ranks: at most {loaded.Max(r => r.allocated):N0} bytes allocated by a rank during the load; " +
                          $"one array of its partition {loaded.Min(r => r.OwnedElements) * sizeof(float):N0}, of the full layout {TinyGpt.ParameterLayout.TotalElements * sizeof(float):N0}");
        Directory.Delete(root, recursive: true);
    }

    /// <summary>
    /// Resuming: a fresh swapped engine that imports the first one's full state continues exactly as the first does; and
    /// masters edited through <see cref="TrainingEngine.MasterWeights"/> reach the swap and the working copy.
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void ImportedStateAndEditedMastersGoThroughTheSwap(int stage)
    {
        var single = new SingleProcessCommunicator();
        string json = Config(stage, Bf16, "nvme");
        var first = Engine(json, single);
        Train(first, single, 3);
        var state = first.ExportFullState();

        var second = Engine(json, single);
        second.ImportFullState(state.Master, state.ExpAvg, state.ExpAvgSq, first.Optimizer.State.Step);
        second.RestoreCounters(first.GlobalStep, first.MicroStep);
        Assert.AreEqual(Train(first, single, 3, seed: 21), Train(second, single, 3, seed: 21));
        CollectionAssert.AreEqual(first.ExportFullState().ExpAvgSq, second.ExportFullState().ExpAvgSq);

        // Halve the masters on both the swapped engine and a CPU-offload twin: the next steps must still agree.
        var cpu = Engine(Config(stage, Bf16, "cpu"), single);
        var cpuState = first.ExportFullState();
        cpu.ImportFullState(cpuState.Master, cpuState.ExpAvg, cpuState.ExpAvgSq, first.Optimizer.State.Step);
        cpu.RestoreCounters(first.GlobalStep, first.MicroStep);
        foreach (var engine in new[] { first, cpu })
        {
            var masters = engine.MasterWeights;
            for (int i = 0; i < masters.Length; i++) masters[i] *= 0.5f;
            engine.SyncWorkingParameters();
        }
        Assert.AreEqual(Train(cpu, single, 2, seed: 33), Train(first, single, 2, seed: 33));
        CollectionAssert.AreEqual(cpu.ExportFullState().Master, first.ExportFullState().Master);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void ThePlanPredictsTheSwappedEngineAndItsStateLeavesHostMemory(int stage)
    {
        const int ranks = 3;
        var config = DeepSpeedConfig.Parse(Config(stage, Bf16, "nvme")).Config;
        var cpuConfig = DeepSpeedConfig.Parse(Config(stage, Bf16, "cpu")).Config;
        var reports = InProcessGroup.Run(ranks, communicator =>
        {
            var engine = Engine(Config(stage, Bf16, "nvme"), communicator);
            return (engine.Memory, engine.OwnedElements, engine.OptimizerSwap!.BufferBytes);
        }, TimeSpan.FromMinutes(1));

        for (int rank = 0; rank < ranks; rank++)
        {
            var (memory, owned, buffers) = reports[rank];
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, memory, $"rank {rank}: predicted {predicted.Describe()} but the engine holds {memory.Describe()}");
            Assert.AreEqual(12 * owned, memory.Nvme, "masters and two moments, fp32");
            Assert.AreEqual(0, memory.MasterWeights + memory.OptimizerStates);
            var cpu = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                cpuConfig, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(cpu.Total - 12 * owned + buffers, memory.Total, "the swap trades the state for its buffers");
            StringAssert.Contains(memory.Describe(), " nvme ");
        }
    }

    /// <summary>
    /// offload_param.device = "nvme" at ZeRO-3: the rounded parameter pieces every gather sends are read from their swap
    /// file; the job equals the one that keeps them in host memory bit for bit, with the optimizer state in host memory
    /// or swapped too, and the pieces in the file are the rounded masters.
    /// </summary>
    [TestMethod]
    [DataRow(1, "fp16", "cpu")]
    [DataRow(2, "bf16", "cpu")]
    [DataRow(2, "fp32", "nvme")]
    public void SwappedParameterPiecesEqualThePiecesInHostMemory(int ranks, string precision, string optimizer)
    {
        string settings = precision switch { "bf16" => Bf16, "fp16" => Fp16, _ => Fp32 };
        (string Log, float[] Master, string Step, long Reads, float[]? Pieces, float[] Rounded) Run(string parameters) =>
            InProcessGroup.Run(ranks, communicator =>
            {
                var engine = Engine(Config(3, settings, optimizer, parameters: parameters), communicator);
                Assert.AreEqual(parameters == "nvme", engine.ParameterSwap is not null);
                string log = Train(engine, communicator, Steps);
                var owned = engine.OwnedState().Master;
                var rounded = new float[owned.Length];
                Shardwise.Precision.StorageRounding.Round(owned, rounded, engine.Storage);
                return (log, engine.ExportFullState().Master, engine.DescribeOptimizerStep(), engine.ParameterSwap?.PiecesRead ?? 0,
                    engine.ParameterSwap?.ReadAll(), rounded);
            }, TimeSpan.FromMinutes(2))[0];

        var host = Run("cpu");
        var nvme = Run("nvme");

        Assert.AreEqual(host.Log, nvme.Log, "losses and step outcomes");
        CollectionAssert.AreEqual(host.Master, nvme.Master, "masters");
        StringAssert.Contains(nvme.Step, "parameter pieces swapped to NVMe under " + _swapDirectory);
        Assert.IsTrue(nvme.Reads > 0, "the gathers read the pieces from the swap");
        CollectionAssert.AreEqual(nvme.Rounded, nvme.Pieces, "the swap holds this rank's rounded masters");
        Console.WriteLine($"{ranks} rank(s), {precision}, optimizer {optimizer}: {nvme.Reads:N0} pieces read; {nvme.Step}");
    }

    /// <summary>ZeRO-3 with both swaps: the plan predicts the engine, and the pieces leave host memory for NVMe too.</summary>
    [TestMethod]
    public void ThePlanPredictsBothSwapsAtZeroThree()
    {
        const int ranks = 3;
        string json = Config(3, Bf16, "nvme", parameters: "nvme");
        var config = DeepSpeedConfig.Parse(json).Config;
        var reports = InProcessGroup.Run(ranks, communicator =>
        {
            var engine = Engine(json, communicator);
            return (engine.Memory, engine.OwnedElements, engine.ParameterSwap!.BufferBytes);
        }, TimeSpan.FromMinutes(1));
        for (int rank = 0; rank < ranks; rank++)
        {
            var (memory, owned, pieceBuffer) = reports[rank];
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, memory, $"rank {rank}: predicted {predicted.Describe()} but the engine holds {memory.Describe()}");
            Assert.AreEqual((12 + 2) * owned, memory.Nvme, "fp32 masters and moments, and the rounded pieces at bf16's 2 bytes");
            Assert.IsTrue(pieceBuffer > 0 && pieceBuffer < 4 * owned, "one piece-sized buffer, not the partition");
        }
    }

    /// <summary>
    /// The trainer with both swaps at ZeRO-3: 8 steps equal 4 + save + resume + 4 bit for bit (the resumed job refills
    /// fresh swap files from the checkpoint), and equal the same job with the state in host memory.
    /// </summary>
    [TestMethod]
    public void ASwappedRunResumesExactly()
    {
        var root = TrainerRun.TempDirectory();
        string Write(string name, string optimizer, string parameters)
        {
            var path = Path.Combine(root, name);
            File.WriteAllText(path, Config(3, Bf16, optimizer, parameters: parameters).Replace("\"gradient_clipping\": 1.0,", "\"gradient_clipping\": 1.0, \"steps_per_print\": 100,"));
            return path;
        }
        string swapped = Write("nvme.json", "nvme", "nvme"), inMemory = Write("cpu.json", "cpu", "cpu");
        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split"), host = Path.Combine(root, "host");

        TrainerRun.Succeed("train", "--config", swapped, "--steps", "8", "--output", straight, "--eval-interval", "0");
        TrainerRun.Succeed("train", "--config", swapped, "--steps", "4", "--output", split, "--eval-interval", "0");
        StringAssert.Contains(TrainerRun.Succeed("train", "--config", swapped, "--steps", "8", "--resume", split, "--eval-interval", "0"), "resumed from");
        TrainerRun.Succeed("train", "--config", inMemory, "--steps", "8", "--output", host, "--eval-interval", "0");

        var final = TrainerRun.CheckpointWeights(Path.Combine(straight, "step-000008"));
        CollectionAssert.AreEqual(final, TrainerRun.CheckpointWeights(Path.Combine(split, "step-000008")), "resumed");
        CollectionAssert.AreEqual(final, TrainerRun.CheckpointWeights(Path.Combine(host, "step-000008")), "in host memory");
        Assert.AreNotEqual(0, TrainerRun.RelativeDifference(final, TrainerRun.CheckpointWeights(Path.Combine(split, "step-000004"))), "the resumed steps trained");
        Assert.AreEqual(0, Directory.GetFileSystemEntries(_swapDirectory).Length);
        Directory.Delete(root, recursive: true);
    }

    [TestMethod]
    public void TheTrainerRunsASwappedJobAndPlansItsDisk()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds_nvme.json");
        File.WriteAllText(config, Config(2, Bf16, "nvme", buffers: 2, pipeline: true).Replace("\"gradient_clipping\": 1.0,", "\"gradient_clipping\": 1.0, \"steps_per_print\": 2,"));

        var output = TrainerRun.Succeed("train", "--config", config, "--steps", "4", "--output", Path.Combine(root, "run"));
        StringAssert.Contains(output, "masters and moments swapped to NVMe under " + _swapDirectory);
        StringAssert.Contains(output, "reads pipelined, writes pipelined");
        Assert.AreEqual(0, Directory.GetFileSystemEntries(_swapDirectory).Length, "the swap file leaves no name behind");

        var plan = TrainerRun.Succeed("plan", "--config", config, "--ranks", "2");
        StringAssert.Contains(plan, "NVMe swap (offload_optimizer, masters and moments):");
        StringAssert.Contains(plan, "free there");
        StringAssert.Contains(plan, "host memory of all 2 rank(s) on one node: ");

        File.WriteAllText(config, File.ReadAllText(config).Replace(_swapDirectory, Path.Combine(root, "no-such-dir")));
        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "2", "--output", Path.Combine(root, "run2"));
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, "error: $.zero_optimization.offload_optimizer.nvme_path: \"" + Path.Combine(root, "no-such-dir") + "\" is not an existing directory");
        Directory.Delete(root, recursive: true);
    }
}
