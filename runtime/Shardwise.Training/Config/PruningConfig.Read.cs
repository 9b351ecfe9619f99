namespace Shardwise.Training.Config;

public sealed partial record PruningConfig
{
    internal const string SparsePruningKey = "sparse_pruning";
    internal const string RowPruningKey = "row_pruning";

    /// <summary>Magnitude pruning: the one method Shardwise builds.</summary>
    public const string L1 = "l1";

    private const string TopK = "topk";
    private const string SnipMomentum = "snip_momentum";
    private const long DefaultScheduleOffset = 1000;

    /// <summary>DeepSpeed's sparse-pruning methods (the newest list, with Intel neural_compressor's snip_momentum).</summary>
    private static readonly string[] SparseMethods = [L1, TopK, SnipMomentum];

    private static readonly string[] RowMethods = [L1, TopK];

    /// <summary>
    /// compression_training.sparse_pruning or row_pruning (<paramref name="key"/>). Only "l1" is built; the learned
    /// methods are refused when the technique is on, at shared_parameters.method.
    /// </summary>
    internal static PruningConfig Read(JsonSection compression, string key)
    {
        var technique = CompressionTechnique.Open(compression, key);
        bool sparse = key == SparsePruningKey;
        string method = technique.ReadMethod(sparse ? SparseMethods : RowMethods, L1);
        if (technique.Enabled && method != L1)
            technique.Shared.Error("method", UnsupportedFeaturePolicy.ErrorMessage(LearnedMethod(key, method), $"use \"{L1}\" (magnitude pruning), the one method Shardwise builds"));
        long offset = technique.Shared.Integer("schedule_offset", AutoRule.NotAllowed, min: 0) ?? DefaultScheduleOffset;
        if (sparse) ReadSnipMomentumKeys(technique.Shared);
        string unit = sparse ? "weights" : "output rows";
        var groups = technique.ReadGroups((modules, parameters) => new PruningGroup(modules, ReadDenseRatio(technique, parameters, unit)));
        technique.ReportLeftovers();
        return new PruningConfig { Enabled = technique.Enabled, ScheduleOffset = offset, Groups = groups, SectionPath = technique.Section.Path };
    }

    /// <summary>
    /// A group's dense_ratio: the fraction of <paramref name="unit"/> kept, above 0 (0 would prune everything) and at
    /// most 1. Required when the technique is on; 1 (keep all) otherwise.
    /// </summary>
    internal static double ReadDenseRatio(CompressionTechnique technique, JsonSection parameters, string unit)
    {
        technique.Require(parameters, "dense_ratio");
        double? ratio = parameters.Number("dense_ratio", AutoRule.NotAllowed);
        if (ratio is not { } r) return 1.0;
        if (r > 0 && r <= 1) return r;
        parameters.Error("dense_ratio", $"{JsonSection.Format(r)} is out of range: the fraction of {unit} the group keeps, above 0 and at most 1");
        return 1.0;
    }

    private static string LearnedMethod(string key, string method) => method == SnipMomentum
        ? $"{key} method \"{SnipMomentum}\" (block pruning by momentum-scored SNIP, through Intel's neural_compressor)"
        : $"{key} method \"{TopK}\" (a mask learned from scores trained with the model)";

    /// <summary>
    /// The shared_parameters keys only the snip_momentum method reads (DeepSpeed's WeightPruningConfig): read, so that they
    /// are not reported as unknown, and otherwise unused since that method is refused.
    /// </summary>
    private static void ReadSnipMomentumKeys(JsonSection shared)
    {
        shared.String("block_pattern");
        shared.Number("dense_ratio", AutoRule.NotAllowed);
        shared.Integer("schedule_offset_stride", AutoRule.NotAllowed, min: 1);
        shared.Integer("schedule_offset_end", AutoRule.NotAllowed, min: 0);
        if (shared.TryTake("excluded_modules", out var excluded))
            CompressionModulePatterns.ReadStrings(excluded, shared.PathOf("excluded_modules"), shared.Diagnostics, "module names");
    }
}
