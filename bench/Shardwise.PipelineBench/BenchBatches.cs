using System;
using Shardwise.Training.Config;

namespace Shardwise.PipelineBench;

/// <summary>
/// The data and optimizer every run of the benchmark shares, so the pipelined and the one-process runs train the same
/// model on the same batches: random token ids from a fixed seed per step, targets by a fixed rule (so the loss falls
/// and the two runs' losses can be compared), fp32 AdamW with clipping, no ZeRO.
/// </summary>
internal static class BenchBatches
{
    public const int Seed = 11;

    public static DeepSpeedConfig Config(int microBatch, int microBatches) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": {{microBatch}}, "gradient_accumulation_steps": {{microBatches}}, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
          "zero_optimization": { "stage": 0 } }
        """).Config;

    /// <summary>Fills one step's ids and targets (all its micro-batches, one after the other).</summary>
    public static void Fill(int step, Span<int> tokens, Span<int> targets)
    {
        var random = new Random(Seed * 1000 + step);
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = random.Next(BenchGptShape.Vocabulary);
            targets[i] = (7 * tokens[i] + 3) % BenchGptShape.Vocabulary;
        }
    }
}
