using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Plans;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>What the trainer checks of topk and head pruning before any backend exists, with the JSON paths it names.</summary>
[TestClass]
public sealed class LearnedPruningCheckTests
{
    /// <summary>One block's attention projection [24, 24] with its bias, and an MLP weight [48, 24].</summary>
    private static ParameterLayout Layout() => new(
    [
        new ParameterSlot("blocks.0.attention.projection.weight", [24, 24], 0, 576, ParameterInit.Normal),
        new ParameterSlot("blocks.0.attention.projection.bias", [24], 576, 24, ParameterInit.Zeros),
        new ParameterSlot("blocks.0.expand.weight", [48, 24], 600, 1152, ParameterInit.Normal),
    ], 1752);

    private static DeepSpeedConfig Config(int heads, string rowMethod) => DeepSpeedConfig.Parse("""
        {"train_batch_size": 8, "compression_training": {
           "head_pruning": {"shared_parameters": {"enabled": true, "num_heads": HEADS},
                            "different_groups": {"hp1": {"params": {"dense_ratio": 0.5}, "modules": ["attention\\.projection"]}}},
           "row_pruning": {"shared_parameters": {"enabled": true, "method": "ROW_METHOD"},
                           "different_groups": {"rp1": {"params": {"dense_ratio": 0.5}, "modules": ["expand"]}}}}}
        """.Replace("HEADS", heads.ToString(System.Globalization.CultureInfo.InvariantCulture)).Replace("ROW_METHOD", rowMethod), "topk.json").Config;

    [TestMethod]
    public void HeadsMustDivideTheProjectionsColumns()
    {
        CompressionTrainingCheck.Require(Config(4, "topk"), Layout(), "Tiny");
        var error = Assert.ThrowsExactly<ConfigException>(() => CompressionTrainingCheck.Require(Config(5, "topk"), Layout(), "Tiny"));
        Assert.AreEqual("$.compression_training.head_pruning.shared_parameters.num_heads: 5 heads do not divide the 24 input columns of blocks.0.attention.projection.weight [24, 24] (head pruning masks an attention output projection's columns head by head)",
            error.Errors.Single());
    }

    [TestMethod]
    public void ActivationQuantizationNeedsWholeWeightsAndRows_OneErrorPerKey()
    {
        static DeepSpeedConfig Activations(string extra) => DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, EXTRA "compression_training": {"activation_quantization": {
               "shared_parameters": {"enabled": true},
               "different_groups": {"aq1": {"params": {"bits": 8}, "modules": ["expand"]}}}}}
            """.Replace("EXTRA", extra), "aq.json").Config;

        CompressionTrainingCheck.Require(Activations(""), Layout(), "Tiny");
        var stage3 = Assert.ThrowsExactly<ConfigException>(() => CompressionTrainingCheck.Require(Activations("""
            "zero_optimization": {"stage": 3},
            """), Layout(), "Tiny"));
        Assert.AreEqual("$.zero_optimization.stage: 3 partitions the weights by which $.compression_training.activation_quantization finds its Linear layers: use stage 0, 1 or 2",
            stage3.Errors.Single());

        // With a weight technique on too, the key gets that technique's reason, once.
        var both = DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, "zero_optimization": {"stage": 3}, "compression_training": {
               "activation_quantization": {"shared_parameters": {"enabled": true}, "different_groups": {"aq1": {"params": {"bits": 8}, "modules": ["expand"]}}},
               "row_pruning": {"shared_parameters": {"enabled": true}, "different_groups": {"rp1": {"params": {"dense_ratio": 0.5}, "modules": ["expand"]}}}}}
            """, "both.json").Config;
        var error = Assert.ThrowsExactly<ConfigException>(() => CompressionTrainingCheck.Require(both, Layout(), "Tiny"));
        StringAssert.StartsWith(error.Errors.Single(), "$.zero_optimization.stage: 3 partitions the working weights, which $.compression_training rewrites whole");
    }
}
