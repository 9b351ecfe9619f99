using System;
using System.Diagnostics;
using System.IO;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>bench</c>: full training steps (forward, backward, optimizer) on random tokens: ms/step, tokens/s, and, for the
/// configured ZeRO stage and rank count (run it under mpirun), memory by category and bytes moved per step.
/// </summary>
public static class BenchCommand
{
    public const int WarmupSteps = 5;

    public static int Run<TModel>(RunSettings settings, TextWriter output) where TModel : ILanguageModelDefinition
    {
        using var communicator = Communicators.Create();
        var log = communicator.Rank == 0 ? output : TextWriter.Null;
        var batch = settings.Config.Resolve(communicator.Size);
        var program = TModel.Compile(TrainingEngine.CreateBackend(settings.Config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
        TModel.ParameterLayout.Initialize(program.Parameters, seed: 1);
        var engine = TrainingEngine.Initialize(program, settings.Config, communicator);
        var random = Xoshiro256StarStar.FromSeed(settings.Seed);
        var inputs = new int[batch.MicroBatchPerGpu * program.SequenceLength];
        var targets = new int[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = random.NextInt(TModel.VocabularySize);
            targets[i] = random.NextInt(TModel.VocabularySize);
        }

        long steps = Math.Min(settings.TotalSteps, 50);
        for (int i = 0; i < WarmupSteps; i++) Step();
        communicator.Traffic.Reset();
        var clock = Stopwatch.StartNew();
        for (long i = 0; i < steps; i++) Step();
        double ms = clock.Elapsed.TotalMilliseconds / steps;
        double tokens = batch.TrainBatchSize * program.SequenceLength / (ms / 1000);

        int stage = settings.Config.ZeroOptimization.Stage, ranks = communicator.Size;
        log.WriteLine("| model | ranks | ZeRO | global batch | precision | ms/step | tokens/s |");
        log.WriteLine("|---|---|---|---|---|---|---|");
        log.WriteLine($"| {typeof(TModel).Name} ({TModel.ParameterLayout.ParameterCount:N0} params) | {ranks} | {stage} | {batch.TrainBatchSize} × {program.SequenceLength} | {engine.Storage} | {ms:F1} | {tokens:N0} |");
        log.WriteLine("memory per rank: " + engine.Memory.Describe());
        if (ranks > 1)
        {
            long psi = engine.CommunicatedElements;
            int factor = stage == 3 ? 3 : 2; // ZeRO-3 gathers parameters again for backward
            log.WriteLine($"traffic per rank per step (fp32 elements; formula {factor}Ψ(N−1)/N = {factor * (double)psi * (ranks - 1) / ranks:N0}):");
            log.WriteLine($"  sent {communicator.Traffic.TotalSent / 4.0 / steps:N0}, received {communicator.Traffic.TotalReceived / 4.0 / steps:N0}");
            foreach (var line in communicator.Traffic.Describe().Split('\n', StringSplitOptions.RemoveEmptyEntries)) log.WriteLine($"  {line} (total over {steps} steps)");
        }
        log.WriteLine($"CPU backend, {Environment.ProcessorCount} cores, {steps} timed steps after {WarmupSteps} warm-up steps");
        return 0;

        void Step()
        {
            for (int micro = 0; micro < batch.GradientAccumulationSteps; micro++)
            {
                engine.Forward(inputs, targets);
                engine.Backward();
                engine.Step();
            }
        }
    }
}
