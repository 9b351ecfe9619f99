namespace Shardwise.Training.Config;

/// <summary>
/// The compression_training technique Shardwise does not build: channel pruning (convolutions). Its keys are read (so a
/// typo still gets a did-you-mean and nothing known is called unknown), and switching it on is an error at its
/// "enabled", since ignoring it would change what gets trained.
/// </summary>
internal static class RefusedCompressionTechniques
{
    private const string TurnOff = "set enabled to false";

    public static void Read(JsonSection compression)
    {
        ReadChannelPruning(compression);
    }

    private static void ReadChannelPruning(JsonSection compression)
    {
        var technique = CompressionTechnique.Open(compression, "channel_pruning");
        technique.ReadMethod(["l1", "topk"], "l1");
        technique.Shared.Integer("schedule_offset", AutoRule.NotAllowed, min: 0);
        technique.ReadGroups((_, parameters) => PruningConfig.ReadDenseRatio(technique, parameters, "channels"), requireGroups: false);
        Refuse(technique, "channel pruning (it prunes convolution channels, and Shardwise models have no convolutions)",
            $"{TurnOff}; to prune the output rows of Linear layers, use {CompressionTrainingConfig.SectionPath}.row_pruning");
    }

    private static void Refuse(CompressionTechnique technique, string feature, string advice)
    {
        if (technique.Enabled) technique.Shared.Error("enabled", UnsupportedFeaturePolicy.ErrorMessage(feature, advice));
        technique.ReportLeftovers();
    }
}
