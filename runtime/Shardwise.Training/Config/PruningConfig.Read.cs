namespace Shardwise.Training.Config;

public sealed partial record PruningConfig
{
    internal const string SparsePruningKey = "sparse_pruning";
    internal const string RowPruningKey = "row_pruning";
    internal const string HeadPruningKey = "head_pruning";

    /// <summary>Magnitude pruning: masks taken once, from the weights' magnitudes.</summary>
    public const string L1 = "l1";

    /// <summary>Learned pruning: a score per masked entry, trained with the model, the top ones kept (TopKBinarizer).</summary>
    public const string TopK = "topk";

    private const string SnipMomentum = "snip_momentum";
    private const long DefaultScheduleOffset = 1000;

    /// <summary>DeepSpeed's sparse-pruning methods (the newest list, with Intel neural_compressor's snip_momentum).</summary>
    private static readonly string[] SparseMethods = [L1, TopK, SnipMomentum];

    private static readonly string[] RowMethods = [L1, TopK];

    /// <summary>DeepSpeed lists both for head pruning but builds only topk (l1 raises NotImplementedError there).</summary>
    private static readonly string[] HeadMethods = [L1, TopK];

    /// <summary>
    /// compression_training.sparse_pruning, row_pruning or head_pruning (<paramref name="key"/>). Built: "l1" and "topk"
    /// for sparse and row pruning, "topk" (DeepSpeed's default and only working method) for head pruning, which also
    /// needs num_heads; snip_momentum is refused when the technique is on, at shared_parameters.method.
    /// </summary>
    internal static PruningConfig Read(JsonSection compression, string key)
    {
        var technique = CompressionTechnique.Open(compression, key);
        bool sparse = key == SparsePruningKey, head = key == HeadPruningKey;
        string method = technique.ReadMethod(sparse ? SparseMethods : head ? HeadMethods : RowMethods, head ? TopK : L1);
        if (technique.Enabled && method == SnipMomentum)
            technique.Shared.Error("method", UnsupportedFeaturePolicy.ErrorMessage(
                $"{key} method \"{SnipMomentum}\" (block pruning by momentum-scored SNIP, through Intel's neural_compressor)", $"use \"{L1}\" (magnitude) or \"{TopK}\" (learned scores)"));
        if (technique.Enabled && head && method == L1)
            technique.Shared.Error("method", $"\"{L1}\" is not a head pruning method DeepSpeed builds (it raises NotImplementedError): use \"{TopK}\", scores learned per head");
        long offset = technique.Shared.Integer("schedule_offset", AutoRule.NotAllowed, min: 0) ?? DefaultScheduleOffset;
        int? heads = null;
        if (head)
        {
            technique.Require(technique.Shared, "num_heads");
            heads = technique.Shared.Int32("num_heads", AutoRule.NotAllowed, min: 1);
        }
        if (sparse) ReadSnipMomentumKeys(technique.Shared);
        string unit = sparse ? "weights" : head ? "attention heads" : "output rows";
        var groups = technique.ReadGroups((modules, parameters) => new PruningGroup(modules, ReadDenseRatio(technique, parameters, unit)));
        technique.ReportLeftovers();
        return new PruningConfig
        {
            Enabled = technique.Enabled, Method = method, ScheduleOffset = offset, Groups = groups, SectionPath = technique.Section.Path, NumHeads = heads,
        };
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
