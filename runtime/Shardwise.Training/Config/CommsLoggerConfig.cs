using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using Shardwise.Distributed;

namespace Shardwise.Training.Config;

/// <summary>
/// The "comms_logger" section (DeepSpeed's comm/config.py): time every communicator call on each rank and print rank 0's
/// summary at the end of training (<see cref="CommsLog.Summary"/>). Defaults are DeepSpeed's: off; when on, every
/// operation (prof_all) unless prof_all is false, then only those in prof_ops.
/// </summary>
public sealed record CommsLoggerConfig
{
    public required bool Enabled { get; init; }

    /// <summary>Print each call as it completes (rank 0).</summary>
    public required bool Verbose { get; init; }

    public required bool ProfileAll { get; init; }

    /// <summary>The operations logged when <see cref="ProfileAll"/> is false (DeepSpeed's names).</summary>
    public required IReadOnlyList<string> ProfileOperations { get; init; }

    public static CommsLoggerConfig Disabled { get; } = new() { Enabled = false, Verbose = false, ProfileAll = true, ProfileOperations = [] };

    /// <summary>The operations to log: null for all of them.</summary>
    public IReadOnlyList<string>? Only => ProfileAll ? null : ProfileOperations;

    internal static CommsLoggerConfig Read(JsonSection parent)
    {
        var section = parent.Section("comms_logger");
        var operations = new List<string>();
        if (section.TryTake("prof_ops", out var list))
        {
            if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                section.Error("prof_ops", $"expected a list of operation names, found {JsonSection.Describe(list)}");
            else
                operations.AddRange(list.EnumerateArray().Select(e => e.GetString()!));
        }
        var config = new CommsLoggerConfig
        {
            Enabled = section.Bool("enabled") ?? Disabled.Enabled,
            Verbose = section.Bool("verbose") ?? Disabled.Verbose,
            ProfileAll = section.Bool("prof_all") ?? Disabled.ProfileAll,
            ProfileOperations = operations,
        };
        // debug adds the calling Python function to each record: there is none here.
        if (section.Bool("debug") == true) section.Warning("debug", "has no effect: Shardwise's calls come from the engine, not from model code");
        foreach (var name in operations.Where(n => !CommsLog.Operations.Contains(n)))
            section.Warning("prof_ops", $"\"{name}\" is not an operation Shardwise calls (it calls {string.Join(", ", CommsLog.Operations)}); it is never logged");
        if (config.Enabled && !config.ProfileAll && operations.Count == 0)
            section.Warning("prof_all", "false with no prof_ops: nothing is logged (DeepSpeed then logs only calls a model marks with prof=True, and Shardwise's generated code marks none); set prof_all to true");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
