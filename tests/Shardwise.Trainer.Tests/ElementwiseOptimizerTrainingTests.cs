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

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Lion and Adagrad in the engine: element-wise, so ZeRO 1 and 2 on 2 ranks step their partitions to the weights the
/// unpartitioned 2-rank job reaches, and the NVMe swap's chunked step equals the host step bit for bit; and they train.
/// </summary>
[TestClass]
public sealed class ElementwiseOptimizerTrainingTests
{
    private const int Steps = 12;

    private const string Lion = """{ "type": "Lion", "params": { "lr": 3e-4, "betas": [0.9, 0.99], "weight_decay": 0.1 } }""";
    private const string Adagrad = """{ "type": "Adagrad", "params": { "lr": 1e-2, "weight_decay": 0.01 } }""";

    private static string Config(string optimizer, int stage, string device, string swap) => $$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": {{optimizer}},
          "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 50000, "sub_group_size": 3000,
                                 "offload_optimizer": { "device": "{{device}}", "nvme_path": "{{swap}}" } } }
        """;

    private static (float[] Master, double FirstLoss, double LastLoss) Train(int stage, int ranks, string device = "none", string optimizer = Lion)
    {
        string swap = Directory.CreateTempSubdirectory("shardwise-lion-").FullName;
        try
        {
            return InProcessGroup.Run(ranks, communicator =>
            {
                var config = DeepSpeedConfig.Parse(Config(optimizer, stage, device, swap)).Config;
                var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
                TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
                var engine = TrainingEngine.Initialize(program, config, communicator);
                int rows = TinyGpt.SequenceLength;
                var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, ranks, rows, seed: 9);
                var inputs = new int[ranks * rows];
                var targets = new int[inputs.Length];
                double first = double.NaN, last = 0;
                while (engine.GlobalStep < Steps)
                {
                    sampler.NextBatch(inputs, targets);
                    last = engine.Forward(inputs.AsSpan(communicator.Rank * rows, rows), targets.AsSpan(communicator.Rank * rows, rows));
                    if (double.IsNaN(first)) first = last;
                    engine.Backward();
                    engine.Step();
                }
                return (engine.ExportFullState().Master, first, last);
            }, TimeSpan.FromMinutes(2))[0];
        }
        finally
        {
            Directory.Delete(swap, recursive: true);
        }
    }

    [TestMethod]
    public void PartitionsAndTheSwapStepAsTheWholeBufferDoes()
    {
        var whole = Train(stage: 0, ranks: 2);
        Assert.IsTrue(whole.LastLoss < whole.FirstLoss, $"Lion trains: loss {whole.FirstLoss:F4} → {whole.LastLoss:F4}");
        CollectionAssert.AreEqual(whole.Master, Train(stage: 1, ranks: 2).Master, "ZeRO-1: the same averaged gradients, a partition at a time");

        // ZeRO-2 averages by bucketed reduce-scatter, which rounds sums in another order: where the interpolated momentum
        // is within that rounding of zero its sign can differ, moving a weight by up to 2·lr for that step.
        var slots = Train(stage: 2, ranks: 2);
        var differences = whole.Master.Zip(slots.Master).Select(p => Math.Abs(p.First - p.Second)).Where(d => d > 0).ToList();
        Console.WriteLine($"ZeRO-2: {differences.Count} of {whole.Master.Length} weights differ from ZeRO-0's, at most by {(differences.Count == 0 ? 0 : differences.Max()):E2}");
        Assert.IsTrue(differences.Count < whole.Master.Length / 1000, $"{differences.Count} weights differ");
        Assert.IsTrue(differences.All(d => d <= 2 * 3e-4 * Steps), "no more than sign flips");
        CollectionAssert.AreEqual(slots.Master, Train(stage: 2, ranks: 2, device: "nvme").Master, "the NVMe swap's chunked step");
    }

    /// <summary>Adagrad is continuous in its gradients, so ZeRO-2's other summation order moves it by rounding only.</summary>
    [TestMethod]
    public void AdagradPartitionsAndSwapMatchTheWholeBuffer()
    {
        var whole = Train(stage: 0, ranks: 2, optimizer: Adagrad);
        Assert.IsTrue(whole.LastLoss < whole.FirstLoss, $"Adagrad trains: loss {whole.FirstLoss:F4} → {whole.LastLoss:F4}");
        CollectionAssert.AreEqual(whole.Master, Train(stage: 1, ranks: 2, optimizer: Adagrad).Master, "ZeRO-1");
        var slots = Train(stage: 2, ranks: 2, optimizer: Adagrad);
        double relative = TrainerRun.RelativeDifference(whole.Master, slots.Master);
        Assert.IsTrue(relative < 1e-5, $"ZeRO-2 against ZeRO-0: relative difference {relative:E2}");
        CollectionAssert.AreEqual(slots.Master, Train(stage: 2, ranks: 2, device: "nvme", optimizer: Adagrad).Master, "the NVMe swap's chunked step");
    }
}
