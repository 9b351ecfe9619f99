using System;

namespace Shardwise.Training.Config;

/// <summary>
/// The "fp16" section: mixed precision with fp32 master weights and a loss scaler.
///
/// DEFAULTS QUIRK, decided: DeepSpeed maps the scaler keys into the ZeRO optimizers only when at least one
/// of initial_scale_power, loss_scale_window, min_loss_scale, hysteresis, consecutive_hysteresis appears
/// (config.py:215). A bare {"enabled": true} therefore gets the DynamicLossScaler constructor defaults,
/// 2^32 and hysteresis 1, not the documented 2^16 and hysteresis 2. Users report this as a bug, so
/// Shardwise always applies the DOCUMENTED defaults (2^16, window 1000, hysteresis 2, min 1).
/// <see cref="DynamicScalerKeysPresent"/> records whether the quirk would have applied, so a caller can
/// warn or reproduce DeepSpeed bit-for-bit if it ever needs to.
/// </summary>
public sealed record Fp16Config
{
    private static readonly string[] DynamicScalerKeys =
        ["initial_scale_power", "loss_scale_window", "min_loss_scale", "hysteresis", "consecutive_hysteresis"];

    public required bool Enabled { get; init; }

    /// <summary>Cast inputs to fp16 in the forward pass.</summary>
    public required bool AutoCast { get; init; }

    /// <summary>0 = dynamic scaling; any other value is a fixed scale.</summary>
    public required double LossScale { get; init; }

    public required int InitialScalePower { get; init; }

    public required int LossScaleWindow { get; init; }

    public required int Hysteresis { get; init; }

    public required bool ConsecutiveHysteresis { get; init; }

    public required double MinLossScale { get; init; }

    /// <summary>Whether any of the five dynamic-scaler keys was written (see the quirk above).</summary>
    public required bool DynamicScalerKeysPresent { get; init; }

    public bool IsDynamic => LossScale == 0;

    public double InitialScale => Math.Pow(2, InitialScalePower);

    internal static Fp16Config Read(JsonSection parent, ConfigOverrides overrides)
    {
        var section = parent.Section("fp16");
        var enabled = section.BoolOrAuto("enabled", overrides.Fp16, "pass --fp16 true|false") ?? false;
        var keysPresent = Array.Exists(DynamicScalerKeys, section.Has);
        var config = new Fp16Config
        {
            Enabled = enabled,
            AutoCast = section.Bool("auto_cast") ?? ConfigDefaults.AutoCast,
            LossScale = section.Number("loss_scale", AutoRule.NotAllowed) ?? ConfigDefaults.LossScale,
            InitialScalePower = section.Int32("initial_scale_power", AutoRule.NotAllowed, min: 0, max: 127) ?? ConfigDefaults.InitialScalePower,
            LossScaleWindow = section.Int32("loss_scale_window", AutoRule.NotAllowed, min: 1) ?? ConfigDefaults.LossScaleWindow,
            Hysteresis = section.Int32("hysteresis", AutoRule.NotAllowed, min: 1) ?? ConfigDefaults.Hysteresis,
            ConsecutiveHysteresis = section.Bool("consecutive_hysteresis") ?? ConfigDefaults.ConsecutiveHysteresis,
            MinLossScale = section.Number("min_loss_scale", AutoRule.NotAllowed) ?? ConfigDefaults.MinLossScale,
            DynamicScalerKeysPresent = keysPresent,
        };

        if (section.Bool("fp16_master_weights_and_grads") == true)
        {
            section.Error("fp16_master_weights_and_grads", UnsupportedFeaturePolicy.ErrorMessage("fp16 master weights", "remove it (Shardwise keeps fp32 master weights)"));
        }

        if (config.LossScale < 0)
        {
            section.Error("loss_scale", $"{JsonSection.Format(config.LossScale)} is out of range: 0 means dynamic, otherwise a positive fixed scale");
        }

        if (enabled && config.IsDynamic && !(config.MinLossScale > 0))
        {
            section.Error("min_loss_scale", $"{JsonSection.Format(config.MinLossScale)} must be > 0 with dynamic loss scaling (the scale would halve forever)");
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
