using System;
using System.Diagnostics;
using System.IO;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary><c>bench</c>: full training steps (forward, backward, optimizer) on random tokens: ms/step and tokens/s.</summary>
public static class BenchCommand
{
    public const int WarmupSteps = 5;

    public static int Run<TModel>(RunSettings settings, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var batch = settings.Config.Resolve(dataParallelSize: 1);
        var program = TModel.Compile(new CpuOps<float>(), batch.MicroBatchPerGpu);
        TModel.ParameterLayout.Initialize(program.Parameters, seed: 1);
        var engine = TrainingEngine.Initialize(program, settings.Config);
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
        var clock = Stopwatch.StartNew();
        for (long i = 0; i < steps; i++) Step();
        double ms = clock.Elapsed.TotalMilliseconds / steps;
        double tokens = batch.TrainBatchSize * program.SequenceLength / (ms / 1000);

        log.WriteLine($"| model | batch | precision | ms/step | tokens/s |");
        log.WriteLine($"|---|---|---|---|---|");
        log.WriteLine($"| {typeof(TModel).Name} ({TModel.ParameterLayout.ParameterCount:N0} params) | {batch.TrainBatchSize} × {program.SequenceLength} | {engine.Storage} | {ms:F1} | {tokens:N0} |");
        log.WriteLine("memory: " + engine.Memory.Describe());
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
