namespace Shardwise.Training.Config;

/// <summary>
/// The "bf16" section (legacy name "bfloat16"). bf16 has fp32's exponent range, so there is no loss
/// scaling: the scaler is fixed at 1.0 and fp16 scaler keys written here have no effect.
/// </summary>
public sealed record Bf16Config
{
    private static readonly string[] Fp16OnlyKeys =
        ["loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis", "consecutive_hysteresis", "min_loss_scale", "auto_cast"];

    public required bool Enabled { get; init; }

    internal static Bf16Config Read(JsonSection parent, ConfigOverrides overrides)
    {
        var key = "bf16";
        if (parent.Has("bfloat16"))
        {
            if (parent.Has("bf16"))
            {
                parent.Error("bfloat16", "both \"bf16\" and its legacy alias \"bfloat16\" are present; keep only \"bf16\"");
                parent.TryTake("bfloat16", out _);
            }
            else
            {
                key = "bfloat16";
                parent.Warning(key, "legacy alias of \"bf16\"; read as bf16");
            }
        }
        else
        {
            parent.TryTake("bfloat16", out _);
        }

        var section = parent.Section(key);
        var enabled = section.BoolOrAuto("enabled", overrides.Bf16, "pass --bf16 true|false") ?? false;
        foreach (var fp16Key in Fp16OnlyKeys)
        {
            if (section.TryTake(fp16Key, out _))
            {
                section.Warning(fp16Key, "fp16 loss-scaling key has no effect under bf16 (bf16 needs no loss scaling); ignored");
            }
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return new Bf16Config { Enabled = enabled };
    }
}
