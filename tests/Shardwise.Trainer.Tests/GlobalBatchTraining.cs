using System;
using System.Collections.Generic;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Training on the addition task where each rank takes its rows of the same global batch (weights from seed 3, data
/// from seeds 5 and 9), so a run on N ranks with micro-batch m sees what one process with micro-batch N·m sees.
/// </summary>
internal static class GlobalBatchTraining
{
    /// <summary>
    /// Trains <typeparamref name="TModel"/> until <paramref name="steps"/> optimizer steps are done, calling
    /// <paramref name="afterBackward"/> after each micro-batch's backward. Returns every micro-batch's loss, the
    /// engine, and how many steps fp16 overflow skipped.
    /// </summary>
    public static (List<float> Losses, TrainingEngine Engine, int Skipped) Train<TModel>(ICommunicator communicator, DeepSpeedConfig config,
        int microPerRank, int steps, Action<TrainingEngine>? afterBackward = null)
        where TModel : ILanguageModelDefinition
    {
        var program = TModel.Compile(TrainingEngine.CreateBackend(config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool), microPerRank);
        TModel.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config, communicator);

        int rowTokens = TModel.SequenceLength, globalRows = communicator.Size * microPerRank;
        var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, globalRows, rowTokens, seed: 9);
        var inputs = new int[globalRows * rowTokens];
        var targets = new int[inputs.Length];
        int mine = communicator.Rank * microPerRank * rowTokens, length = microPerRank * rowTokens;
        var losses = new List<float>();
        int skipped = 0;
        while (engine.GlobalStep < steps)
        {
            sampler.NextBatch(inputs, targets);
            losses.Add(engine.Forward(inputs.AsSpan(mine, length), targets.AsSpan(mine, length)));
            engine.Backward();
            afterBackward?.Invoke(engine);
            if (engine.Step() == StepOutcome.SkippedOverflow) skipped++;
        }
        return (losses, engine, skipped);
    }
}
