namespace Shardwise.Training.Config;

/// <summary>
/// The "flops_profiler" section (DeepSpeed's profiling/config.py): at one optimizer step, rank 0 prints the step's
/// measured forward, backward and optimizer times with the model's FLOPs and parameters per module
/// (<c>Progress/FlopsProfileReport</c>). Defaults are DeepSpeed's.
/// </summary>
public sealed record FlopsProfilerConfig
{
    public required bool Enabled { get; init; }

    /// <summary>The optimizer step profiled: the one that runs while <c>global_steps</c> equals it, as in DeepSpeed.</summary>
    public required int ProfileStep { get; init; }

    /// <summary>How deep the module tables go; -1 for every depth.</summary>
    public required int ModuleDepth { get; init; }

    /// <summary>How many modules the per-depth summary lists.</summary>
    public required int TopModules { get; init; }

    /// <summary>Whether the module tree is printed after the summary.</summary>
    public required bool Detailed { get; init; }

    /// <summary>Where the report also goes (rank 0), or null for the log only.</summary>
    public required string? OutputFile { get; init; }

    /// <summary>
    /// How much of a forward pass activation checkpointing recomputes, as a fraction added to the backward's FLOPs
    /// (DeepSpeed's recompute_fwd_factor; 0 when nothing is recomputed).
    /// </summary>
    public required double RecomputeForwardFactor { get; init; }

    public static FlopsProfilerConfig Disabled { get; } = new()
    {
        Enabled = false, ProfileStep = 1, ModuleDepth = -1, TopModules = 1, Detailed = true, OutputFile = null, RecomputeForwardFactor = 0,
    };

    internal static FlopsProfilerConfig Read(JsonSection parent)
    {
        var section = parent.Section("flops_profiler");
        var config = new FlopsProfilerConfig
        {
            Enabled = section.Bool("enabled") ?? Disabled.Enabled,
            ProfileStep = section.Int32("profile_step", AutoRule.NotAllowed) ?? Disabled.ProfileStep,
            ModuleDepth = section.Int32("module_depth", AutoRule.NotAllowed, min: -1) ?? Disabled.ModuleDepth,
            TopModules = section.Int32("top_modules", AutoRule.NotAllowed, min: 1) ?? Disabled.TopModules,
            Detailed = section.Bool("detailed") ?? Disabled.Detailed,
            OutputFile = section.String("output_file"),
            RecomputeForwardFactor = section.Number("recompute_fwd_factor", AutoRule.NotAllowed) ?? Disabled.RecomputeForwardFactor,
        };
        if (config.Enabled && config.ProfileStep < 0)
            section.Warning("profile_step", $"{config.ProfileStep} is never reached (steps count from 0, as in DeepSpeed): no profile is printed");
        if (config.RecomputeForwardFactor is < 0 or > 1)
            section.Error("recompute_fwd_factor", $"{JsonSection.Format(config.RecomputeForwardFactor)} is out of range: a fraction of the forward, 0 to 1");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
