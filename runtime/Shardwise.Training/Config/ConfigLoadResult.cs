using System.Collections.Generic;

namespace Shardwise.Training.Config;

/// <summary>A config that passed validation, and the warnings about it (returned, never printed here).</summary>
public sealed record ConfigLoadResult(DeepSpeedConfig Config, IReadOnlyList<string> Warnings);
