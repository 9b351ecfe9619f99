namespace Shardwise.Training.Config;

public sealed partial record CompressionTrainingConfig
{
    /// <summary>
    /// The section, and the legacy top-level quantize_training (MoQ) as its weight quantization; null when absent or
    /// every technique (layer reduction included) is off. Every technique's keys are read, built or not, so that refusals name their key and
    /// typos get a did-you-mean; errors go to the diagnostics as usual.
    /// </summary>
    internal static CompressionTrainingConfig? Read(JsonSection root)
    {
        var compression = root.Section("compression_training");
        var weightQuantization = WeightQuantizationConfig.Read(compression);
        var sparsePruning = PruningConfig.Read(compression, PruningConfig.SparsePruningKey);
        var rowPruning = PruningConfig.Read(compression, PruningConfig.RowPruningKey);
        var headPruning = PruningConfig.Read(compression, PruningConfig.HeadPruningKey);
        var layerReduction = LayerReductionConfig.Read(compression);
        var activationQuantization = ActivationQuantizationConfig.Read(compression);
        RefusedCompressionTechniques.Read(compression);
        UnsupportedFeaturePolicy.ReportLeftovers(compression);

        if (MoqQuantizeTrainingConfig.Read(root) is { } moq)
        {
            if (weightQuantization.Enabled)
                root.Diagnostics.ErrorSentence(MoqQuantizeTrainingConfig.SectionPath,
                    $"and {WeightQuantizationConfig.SectionPath} both quantize the weights: keep one quantizer (quantize_training is DeepSpeed's older MoQ section, weight_quantization its successor)");
            else
                weightQuantization = moq;
        }

        var config = new CompressionTrainingConfig
        {
            WeightQuantization = weightQuantization,
            SparsePruning = sparsePruning,
            RowPruning = rowPruning,
            HeadPruning = headPruning,
            LayerReduction = layerReduction,
            ActivationQuantization = activationQuantization,
        };
        return config.Enabled || layerReduction.Enabled || activationQuantization.Enabled ? config : null;
    }
}
