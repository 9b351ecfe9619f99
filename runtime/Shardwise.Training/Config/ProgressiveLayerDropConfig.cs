namespace Shardwise.Training.Config;

/// <summary>
/// The "progressive_layer_drop" section (DeepSpeed's runtime/progressive_layer_drop.py): while training, each
/// <c>[LayerDrop]</c> layer of the model is skipped at random, more often deeper and later in training. The keep
/// probability of the whole model decays from 1 to <see cref="Theta"/>: θ(t) = (1 − theta)·e^(−gamma·t) + theta.
/// Defaults are DeepSpeed's (theta 1.0, gamma 0.001).
/// </summary>
public sealed record ProgressiveLayerDropConfig
{
    public required bool Enabled { get; init; }

    /// <summary>The keep probability the schedule decays to (0 &lt; theta ≤ 1; 1 never drops).</summary>
    public required double Theta { get; init; }

    /// <summary>How fast it decays, per optimizer step (≥ 0).</summary>
    public required double Gamma { get; init; }

    public static ProgressiveLayerDropConfig Disabled { get; } = new() { Enabled = false, Theta = 1.0, Gamma = 0.001 };

    internal static ProgressiveLayerDropConfig Read(JsonSection parent)
    {
        var section = parent.Section("progressive_layer_drop");
        var config = new ProgressiveLayerDropConfig
        {
            Enabled = section.Bool("enabled") ?? Disabled.Enabled,
            Theta = section.Number("theta", AutoRule.NotAllowed) ?? Disabled.Theta,
            Gamma = section.Number("gamma", AutoRule.NotAllowed) ?? Disabled.Gamma,
        };
        if (config.Theta is <= 0 or > 1)
            section.Error("theta", $"{JsonSection.Format(config.Theta)} is out of range: the keep probability the schedule decays to, above 0 and at most 1");
        if (config.Gamma < 0)
            section.Error("gamma", $"{JsonSection.Format(config.Gamma)} is out of range: the decay rate per step, 0 or more");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
