namespace Shardwise.Training.Cli;

/// <summary>
/// The configuration used when no --config is given: nanoGPT's shakespeare-char recipe (micro-batch 12, AdamW
/// lr 1e-3, β₂ 0.99, weight decay 0.1, clip 1.0, linear warmup (100 steps, or a tenth of a shorter run) then cosine decay to 10%), in fp32 on the CPU.
/// </summary>
public static class DefaultConfig
{
    public const string Json = """
        {
          "train_micro_batch_size_per_gpu": 12,
          "gradient_accumulation_steps": 1,
          "steps_per_print": 50,
          "gradient_clipping": 1.0,
          "optimizer": {
            "type": "AdamW",
            "params": { "lr": 1e-3, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1 }
          },
          "scheduler": {
            "type": "WarmupCosineLR",
            "params": { "warmup_num_steps": "auto", "total_num_steps": "auto", "warmup_min_ratio": 0.0, "cos_min_ratio": 0.1, "warmup_type": "linear" }
          },
          "fp16": { "enabled": false },
          "bf16": { "enabled": false }
        }
        """;
}
