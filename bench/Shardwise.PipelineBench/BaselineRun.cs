using System;
using System.Diagnostics;
using Shardwise.Cpu;
using Shardwise.Training.Engine;

namespace Shardwise.PipelineBench;

/// <summary>
/// The baseline: the model's whole program (<see cref="TwoStageGpt"/>'s generated <c>Compiled&lt;float&gt;</c>, the
/// same architecture as every pipelined twin) trained by <see cref="TrainingEngine"/> in this process, with plain
/// gradient accumulation over the same global batch (M micro-batches of B sequences) and the same data.
/// </summary>
internal static class BaselineRun
{
    public static BenchRow Run(BenchOptions options)
    {
        var program = TwoStageGpt.Compile<float>(new CpuOps<float>(), options.MicroBatch);
        var full = new float[TwoStageGpt.ParameterLayout.TotalElements];
        TwoStageGpt.ParameterLayout.Initialize<float>(full, BenchBatches.Seed);
        full.CopyTo(program.Parameters);
        var engine = TrainingEngine.Initialize(program, BenchBatches.Config(options.MicroBatch, options.MicroBatches));

        int perMicroBatch = options.MicroBatch * BenchGptShape.Context;
        var tokens = new int[options.MicroBatches * perMicroBatch];
        var targets = new int[tokens.Length];
        double timedSeconds = 0, loss = 0;
        for (int step = 0; step < options.Warmup + options.Steps; step++)
        {
            BenchBatches.Fill(step, tokens, targets);
            long start = Stopwatch.GetTimestamp();
            double sum = 0;
            for (int mb = 0; mb < options.MicroBatches; mb++)
            {
                sum += engine.Forward(tokens.AsSpan(mb * perMicroBatch, perMicroBatch), targets.AsSpan(mb * perMicroBatch, perMicroBatch));
                engine.Backward();
                engine.Step(); // updates at the accumulation boundary, the last micro-batch
            }
            if (step >= options.Warmup) timedSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
            loss = sum / options.MicroBatches;
        }
        return new BenchRow(1, options.MicroBatches, options.MicroBatch, timedSeconds / options.Steps * 1000, [], [], loss);
    }
}
