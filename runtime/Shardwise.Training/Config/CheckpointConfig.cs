using System;

namespace Shardwise.Training.Config;

/// <summary>How loading treats checkpoint tags that differ across ranks (DeepSpeed's tag_validation).</summary>
public enum TagValidation
{
    Ignore,
    Warn,
    Fail,
}

/// <summary>The "checkpoint" section (constants.py:403-412).</summary>
public sealed record CheckpointConfig
{
    public required TagValidation TagValidation { get; init; }

    /// <summary>Resume from a universal (topology-independent) checkpoint.</summary>
    public required bool LoadUniversal { get; init; }

    public required bool UseNodeLocalStorage { get; init; }

    internal static CheckpointConfig Read(JsonSection parent)
    {
        var section = parent.Section("checkpoint");
        var tagName = section.String("tag_validation") ?? ConfigDefaults.CheckpointTagValidation;
        if (!Enum.TryParse<TagValidation>(tagName, ignoreCase: true, out var tag) || int.TryParse(tagName, out _))
        {
            section.Error("tag_validation", $"unknown value \"{tagName}\"; use Ignore, Warn or Fail");
            tag = TagValidation.Warn;
        }

        var config = new CheckpointConfig
        {
            TagValidation = tag,
            LoadUniversal = section.Bool("load_universal") ?? ConfigDefaults.CheckpointLoadUniversal,
            UseNodeLocalStorage = section.Bool("use_node_local_storage") ?? ConfigDefaults.CheckpointUseNodeLocalStorage,
        };

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
