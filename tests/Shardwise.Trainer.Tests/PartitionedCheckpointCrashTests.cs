using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// A per-rank (ZeRO) checkpoint save that loses a rank midway never becomes `latest`: the survivors fail with the
/// rank named, and the previous checkpoint stays the one that loads.
/// </summary>
[TestClass]
public sealed class PartitionedCheckpointCrashTests
{
    [TestMethod]
    public void ARankLostDuringSaveLeavesThePreviousCheckpoint()
    {
        var root = TrainerRun.TempDirectory();
        var settings = RunSettings.Read(CliArguments.Parse(new[] { "train", "--config", TrainerRun.WriteZeroConfig(root, 1, 2), "--output", root }), "TinyGpt", TextWriter.Null);
        var store = new TrainingCheckpoint(root);
        var task = new AdditionTask();

        var outcomes = InProcessGroup.Run(3, communicator =>
        {
            var config = settings.Config;
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
            TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 1);
            var engine = TrainingEngine.Initialize(program, config, communicator);
            var sampler = task.CreateDataset(200, seed: 1).CreateSampler(DataSplit.Train, 3, TinyGpt.SequenceLength, seed: 2);
            store.Save(engine, sampler, task.Tokenizer, settings); // step 0: a good checkpoint

            var inputs = new int[3 * TinyGpt.SequenceLength];
            var targets = new int[inputs.Length];
            sampler.NextBatch(inputs, targets);
            int mine = communicator.Rank * TinyGpt.SequenceLength;
            for (int micro = 0; micro < 2; micro++)
            {
                engine.Forward(inputs.AsSpan(mine, TinyGpt.SequenceLength), targets.AsSpan(mine, TinyGpt.SequenceLength));
                engine.Backward();
                engine.Step();
            }

            if (communicator.Rank == 2)
            {
                ((InProcessCommunicator)communicator).Abandon("the test killed it during the save");
                return "abandoned";
            }
            try
            {
                store.Save(engine, sampler, task.Tokenizer, settings);
                return "saved";
            }
            catch (CommunicationException error)
            {
                return error.Message;
            }
        }, TimeSpan.FromSeconds(30));

        StringAssert.Contains(outcomes[0], "2");
        StringAssert.Contains(outcomes[1], "2");
        var latest = TrainingCheckpoint.FindLatest(root);
        Assert.IsNotNull(latest);
        StringAssert.EndsWith(latest, "step-000000");
        var weights = TrainerRun.CheckpointWeights(latest);
        var initial = new float[TinyGpt.ParameterLayout.TotalElements];
        TinyGpt.ParameterLayout.Initialize<float>(initial, seed: 1);
        CollectionAssert.AreEqual(initial, weights, "the surviving checkpoint holds the step-0 weights");
    }
}
