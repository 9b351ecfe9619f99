using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// In fp32, data parallelism and ZeRO-1/2/3 (with and without CPU offload) on 2 and 4 ranks (threads, in-process communicator) give the same
/// weights as one process with the same global batch after 20 steps (relative difference &lt; 1e-5).
/// </summary>
[TestClass]
public sealed class ZeroEquivalenceTests
{
    private const int Steps = 20;
    private const int MicroPerRank = 1;

    // With layer drop, ZeRO-3 streams every slot (threshold 0), the norms too, so a gather wrongly skipped for a dropped
    // block would be a parameter used while not gathered.
    private static string Config(int micro, int stage, bool offload, bool overlap, bool tokenDrop = false, bool layerDrop = false) => $$"""
        { "train_micro_batch_size_per_gpu": {{micro}}, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{(tokenDrop ? RandomLtd : "")}}
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
          "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 50000, "overlap_comm": {{(overlap ? "true" : "false")}},
                                 "stage3_param_persistence_threshold": {{(stage == 3 ? (layerDrop ? 0 : 1000) : 100000)}}, "stage3_prefetch_bucket_size": 60000,
                                 "offload_optimizer": { "device": "{{(offload ? "cpu" : "none")}}" } } }
        """;

    /// <summary>Random-LTD on TinyGpt's middle blocks: 24 of 64 tokens at first, 8 more every 10 steps.</summary>
    private const string RandomLtd = """
        "data_efficiency": { "enabled": true, "data_routing": { "enabled": true, "random_ltd": { "enabled": true,
            "total_layer_num": 4, "random_ltd_layer_num": 2, "random_ltd_layer_id": [1, 2],
            "random_ltd_schedule": { "min_value": 24, "max_value": 64, "schedule_type": "fixed_linear",
                                     "schedule_config": { "require_steps": 50, "seq_per_step": 8 } } } } },
        """;

    /// <summary>
    /// Trains TinyGpt; each rank takes its rows of the same global batch. Returns the rank's full parameters. With
    /// <paramref name="layerDrop"/>, progressive layer drop (theta 0.5, gamma 0.5) skips blocks from the third step; with
    /// <paramref name="tokenDrop"/>, random-LTD runs the middle blocks on some tokens, each row's drawn by its global index.
    /// </summary>
    private static float[] Train(ICommunicator communicator, int stage, int microPerRank, bool offload = false, bool overlap = false, bool layerDrop = false,
        bool tokenDrop = false)
    {
        int ranks = communicator.Size;
        var config = DeepSpeedConfig.Parse(Config(microPerRank, stage, offload, overlap, tokenDrop, layerDrop)).Config;
        Assert.AreEqual(offload, config.ZeroOptimization.OffloadOptimizer.IsEnabled);
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), microPerRank);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config, communicator);
        Assert.AreEqual(offload, engine.OffloadOptimizer);

        int rowTokens = TinyGpt.SequenceLength, globalRows = ranks * microPerRank;
        var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, globalRows, rowTokens, seed: 9);
        var inputs = new int[globalRows * rowTokens];
        var targets = new int[inputs.Length];
        int mine = communicator.Rank * microPerRank * rowTokens, length = microPerRank * rowTokens;
        var drop = layerDrop
            ? new Training.LayerDrop.ProgressiveLayerDrop(new ProgressiveLayerDropConfig { Enabled = true, Theta = 0.5, Gamma = 0.5 }, TinyGpt.DroppableLayers, seed: 7)
            : null;
        var ltd = Training.TokenDrop.RandomLtd.For(config, TinyGpt.TokenDropLayers, "TinyGpt", seed: 7);
        Assert.AreEqual(tokenDrop, ltd is not null);
        int micro = 0;
        while (engine.GlobalStep < Steps)
        {
            sampler.NextBatch(inputs, targets);
            program.LayerKeep = drop?.Sample(engine.GlobalStep, micro);
            program.TokenKeep = ltd?.Keep(engine.GlobalStep, micro, microPerRank, rowTokens, firstSample: communicator.Rank * microPerRank);
            micro = (micro + 1) % 2; // gradient_accumulation_steps
            engine.Forward(inputs.AsSpan(mine, length), targets.AsSpan(mine, length));
            engine.Backward();
            if (stage == 3 && ranks > 1 && engine.GlobalStep > 0)
                Assert.IsTrue(engine.PrefetchHits > 0, "ZeRO-3 must serve requests from the static-order prefetch");
            if (overlap && engine.IsGradientAccumulationBoundary && ranks > 1)
                Assert.IsTrue(engine.OverlappedBuckets > 5, $"only {engine.OverlappedBuckets} buckets were reduced during backward");
            engine.Step();
        }
        // ZeRO-3 gathers nothing for a dropped block's own weights (its norm before the MLP still: its fused residual add runs).
        if (stage == 3 && layerDrop) Assert.IsTrue(engine.DroppedLayerSkips > 0, "a dropped block's slots must not be gathered");
        if (!layerDrop) Assert.AreEqual(0, engine.DroppedLayerSkips);
        // The full fp32 weights, assembled from every rank's partition (under ZeRO-3 no rank holds them otherwise).
        return engine.ExportFullState().Master;
    }


    [TestMethod]
    [DataRow(0, 2)]
    [DataRow(1, 2)]
    [DataRow(2, 2)]
    [DataRow(0, 4)]
    [DataRow(1, 4)]
    [DataRow(2, 4)]
    [DataRow(1, 2, true)]
    [DataRow(2, 4, true)]
    [DataRow(3, 2)]
    [DataRow(3, 4)]
    [DataRow(3, 2, true)]
    [DataRow(0, 2, false, true)]
    [DataRow(0, 4, false, true)]
    [DataRow(0, 2, false, true, true)] // progressive layer drop: skipped blocks' gradients reduced as zeros, overlapped with backward
    [DataRow(2, 2, false, false, true)] // streamed through the gradient pool
    [DataRow(3, 2, false, false, true)] // and their parameters still gathered in the static order
    [DataRow(0, 4, false, true, false, true)] // random-LTD: each rank's rows drop the tokens one process drops for them
    [DataRow(3, 2, false, false, false, true)]
    public void ShardedRunEqualsOneProcessWithTheSameGlobalBatch(int stage, int ranks, bool offload = false, bool overlap = false, bool layerDrop = false,
        bool tokenDrop = false)
    {
        var reference = Train(new SingleProcessCommunicator(), stage: 0, microPerRank: ranks * MicroPerRank, layerDrop: layerDrop, tokenDrop: tokenDrop);
        var results = InProcessGroup.Run(ranks, communicator => Train(communicator, stage, MicroPerRank, offload, overlap, layerDrop, tokenDrop), TimeSpan.FromMinutes(2));

        for (int rank = 1; rank < ranks; rank++)
            CollectionAssert.AreEqual(results[0], results[rank], $"rank {rank} holds different parameters than rank 0");
        double relative = TrainerRun.RelativeDifference(results[0], reference);
        Console.WriteLine($"stage {stage}{(offload ? " + CPU offload" : "")}{(overlap ? " + overlap_comm" : "")}{(layerDrop ? " + layer drop" : "")}{(tokenDrop ? " + random-LTD" : "")}, {ranks} ranks: relative difference to one process {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");
        Assert.IsTrue(TrainerRun.RelativeDifference(results[0], InitialParameters()) > 1e-3, "training must have moved the weights");
        if (layerDrop || tokenDrop)
            Assert.IsTrue(TrainerRun.RelativeDifference(reference, Train(new SingleProcessCommunicator(), 0, ranks * MicroPerRank)) > 1e-4,
                "the drop must have changed the training");
    }

    private static float[] InitialParameters()
    {
        var initial = new float[TinyGpt.ParameterLayout.TotalElements];
        TinyGpt.ParameterLayout.Initialize<float>(initial, seed: 3);
        return initial;
    }
}
