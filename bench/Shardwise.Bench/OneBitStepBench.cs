using System;
using System.Diagnostics;
using System.Linq;
using Shardwise.Distributed;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

/// <summary>
/// The host step of each 1-bit optimizer past its freeze step against AdamW's, one rank (so nothing is compressed: the
/// optimizer's own passes alone), over 16M fp32 parameters in 16 tensors, measured in the same run: ms per step and
/// the ratio to AdamW. A GPU job runs these steps on the host too.
/// </summary>
internal static class OneBitStepBench
{
    private const int Elements = 16 << 20, Tensors = 16, Runs = 5;

    public static void Run()
    {
        var random = new Random(5);
        var gradients = new float[Elements];
        for (int i = 0; i < Elements; i++) gradients[i] = (float)(random.NextDouble() * 2e-3 - 1e-3);
        var tensors = Enumerable.Range(0, Tensors).Select(t => new Range(t * (Elements / Tensors), (t + 1) * (Elements / Tensors))).ToArray();

        double adamW = Time(Optimizer("AdamW", ""), gradients, tensors, warmUp: 0);
        Console.WriteLine($"| host optimizer step, {Elements:N0} fp32 parameters, one rank | ms/step | vs AdamW |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| AdamW | {adamW:F1} | 1.00× |");
        foreach (var (type, settings, name) in new[]
        {
            ("OneBitAdam", ", \"freeze_step\": 1", "OneBitAdam, compressed stage"),
            ("OneBitLamb", ", \"freeze_step\": 1", "OneBitLamb, compressed stage"),
            ("ZeroOneAdam", ", \"var_freeze_step\": 0, \"local_step_clipper\": 1", "ZeroOneAdam, local steps synchronised every step"),
        })
        {
            double ms = Time(Optimizer(type, settings), gradients, tensors, warmUp: 2);
            Console.WriteLine($"| {name} | {ms:F1} | {ms / adamW:F2}× |");
        }
    }

    private static OptimizerConfig Optimizer(string type, string settings) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "{{type}}", "params": { "lr": 1e-4, "weight_decay": 0.1, "bias_correction": false{{settings}} } } }
        """).Config.Optimizer!;

    // Best of the runs, after warmUp steps that carry the 1-bit optimizer past its freeze.
    private static double Time(OptimizerConfig config, float[] gradients, Range[] tensors, int warmUp)
    {
        var parameters = new float[Elements];
        Array.Fill(parameters, 0.02f);
        var options = AdamOptions.FromConfig(config);
        var adam = new AdamOptimizer(Elements, options);
        var communicator = new SingleProcessCommunicator();
        IOneBitOptimizer? oneBit = options.OneBit is { } a ? new OneBitAdam(adam, a.FreezeStep, communicator, tensors)
            : options.OneBitLamb is { } l ? new OneBitLamb(adam, l, communicator, tensors)
            : options.ZeroOneAdam is { } z ? new ZeroOneAdam(adam, z, communicator, tensors)
            : null;
        void Step()
        {
            if (oneBit is null) adam.Step(parameters, gradients, 1e-4);
            else oneBit.Step(parameters, gradients, 1e-4);
        }
        for (int i = 0; i < warmUp + 1; i++) Step();
        double best = double.MaxValue;
        for (int run = 0; run < Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            Step();
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
        }
        return best;
    }
}
