using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>
/// The compression_training section and the legacy quantize_training (MoQ): DeepSpeed's defaults, the built techniques'
/// values, and every refusal and bad value as an error at its JSON path.
/// </summary>
[TestClass]
public sealed class CompressionTrainingConfigTests
{
    private const string Wq = "$.compression_training.weight_quantization";

    private static ConfigLoadResult Parse(string compression) =>
        DeepSpeedConfig.Parse($$"""{"train_batch_size": 8, "compression_training": {{compression}}}""", "ds.json");

    private static ConfigException Fails(string compression) => Assert.ThrowsExactly<ConfigException>(() => Parse(compression));

    /// <summary>The one error of a config that has exactly one, so that a test also fails on extra errors.</summary>
    private static string OnlyError(string compression)
    {
        var error = Fails(compression);
        Assert.AreEqual(1, error.Errors.Count, error.Message);
        return error.Errors[0];
    }

    private static string WeightQuantization(string shared, string groups) =>
        $$$"""{"weight_quantization": {"shared_parameters": {{{shared}}}, "different_groups": {{{groups}}}}}""";

    private static string Pruning(string technique, string shared, string groups) =>
        $$$"""{"{{{technique}}}": {"shared_parameters": {{{shared}}}, "different_groups": {{{groups}}}}}""";

    [TestMethod]
    public void FullSection_ReadsEveryBuiltTechnique()
    {
        var result = Parse("""
            {"weight_quantization": {
               "shared_parameters": {"enabled": true, "quantizer_kernel": false, "schedule_offset": 50, "quantize_groups": 4, "quantize_verbose": true,
                                     "quantization_type": "asymmetric", "rounding": "stochastic", "quantize_weight_in_forward": false,
                                     "fp16_mixed_quantize": {"enabled": true, "quantize_change_ratio": 0.01}},
               "different_groups": {
                 "wq1": {"params": {"start_bits": 12, "target_bits": 8, "quantization_period": 50}, "modules": ["attention\\.qkv", "mlp"]},
                 "wq2": {"params": {"start_bits": 8, "target_bits": 4}}}},
             "sparse_pruning": {"shared_parameters": {"enabled": true, "method": "l1", "schedule_offset": 30},
                                "different_groups": {"sp1": {"params": {"dense_ratio": 0.5}, "modules": ["mlp\\.fc1"]}}},
             "row_pruning": {"shared_parameters": {"enabled": true},
                             "different_groups": {"rp1": {"params": {"dense_ratio": 0.25}, "modules": ["fc1", "fc3"], "related_modules": [["fc2"], ["fc4", "ln"]]}}}}
            """);
        Assert.AreEqual(0, result.Warnings.Count, string.Join("\n", result.Warnings));
        var config = result.Config.CompressionTraining!;

        var wq = config.WeightQuantization;
        Assert.AreEqual((true, 50L, 4, QuantizationType.Asymmetric, QuantizationRounding.Stochastic), (wq.Enabled, wq.ScheduleOffset, wq.QuantizeGroups, wq.Type, wq.Rounding));
        Assert.AreEqual((false, true, 0.01, true, Wq), (wq.InForward, wq.MixedFp16, wq.ChangeRatio, wq.Verbose, wq.Source));
        Assert.AreEqual(2, wq.Groups.Count);
        var (wq1, wq2) = (wq.Groups[0], wq.Groups[1]);
        Assert.AreEqual(("wq1", Wq + ".different_groups.wq1", 12, 8, 50), (wq1.Modules.Name, wq1.Modules.JsonPath, wq1.StartBits, wq1.TargetBits, wq1.QuantizationPeriod));
        CollectionAssert.AreEqual(new[] { "attention\\.qkv", "mlp" }, wq1.Modules.Modules.ToArray());
        Assert.IsNull(wq1.Modules.RelatedModules);
        Assert.AreEqual(("wq2", 8, 4, 1), (wq2.Modules.Name, wq2.StartBits, wq2.TargetBits, wq2.QuantizationPeriod), "quantization_period defaults to 1");
        CollectionAssert.AreEqual(new[] { "*" }, wq2.Modules.Modules.ToArray(), "modules defaults to every module");

        var sparse = config.SparsePruning;
        Assert.AreEqual((true, 30L, "$.compression_training.sparse_pruning"), (sparse.Enabled, sparse.ScheduleOffset, sparse.SectionPath));
        Assert.AreEqual(("sp1", 0.5), (sparse.Groups.Single().Modules.Name, sparse.Groups.Single().DenseRatio));
        CollectionAssert.AreEqual(new[] { "mlp\\.fc1" }, sparse.Groups.Single().Modules.Modules.ToArray());

        var row = config.RowPruning;
        Assert.AreEqual((true, 1000L, "$.compression_training.row_pruning"), (row.Enabled, row.ScheduleOffset, row.SectionPath), "schedule_offset defaults to DeepSpeed's 1000");
        var rp1 = row.Groups.Single();
        Assert.AreEqual(0.25, rp1.DenseRatio);
        Assert.AreEqual(2, rp1.Modules.RelatedModules!.Count);
        CollectionAssert.AreEqual(new[] { "fc2" }, rp1.Modules.RelatedModules[0].ToArray());
        CollectionAssert.AreEqual(new[] { "fc4", "ln" }, rp1.Modules.RelatedModules[1].ToArray());

        Assert.AreEqual("weight quantization: wq1 12→8 bits every 50 updates, wq2 8→4 bits every 1 update (asymmetric, stochastic, 4 scale groups per tensor, "
            + "from update 50, after each update, fp16 mixing, ratio −0.01 per update); sparse pruning l1: sp1 keeps 0.5 of its weights (from update 30); "
            + "row pruning l1: rp1 keeps 0.25 of its rows (from update 1000)", config.Describe());
        StringAssert.Contains(result.Config.Describe(), "$.compression_training = weight quantization: wq1 12→8 bits");
    }

    [TestMethod]
    public void InForwardMode_AcceptsAnnealingBits_AndSaysFp16MixingHasNoEffect()
    {
        var result = Parse(WeightQuantization("""{"enabled": true, "quantize_weight_in_forward": true, "fp16_mixed_quantize": {"enabled": true}}""",
            """{"wq1": {"params": {"start_bits": 8, "target_bits": 4}}}"""));
        var wq = result.Config.CompressionTraining!.WeightQuantization;
        Assert.IsTrue(wq.InForward);
        Assert.AreEqual((8, 4), (wq.Groups[0].StartBits, wq.Groups[0].TargetBits));
        CollectionAssert.Contains(result.Warnings.ToList(), Wq + ".shared_parameters.fp16_mixed_quantize: has no effect with quantize_weight_in_forward: the forward quantizes to target_bits directly, with no fp16 mixing (as in DeepSpeed)");
        StringAssert.Contains(result.Config.CompressionTraining.Describe(), "wq1 4 bits (symmetric, nearest, 1 scale group per tensor, from update 0, in the forward)");
    }

    [TestMethod]
    public void Defaults_AreDeepSpeeds()
    {
        var config = Parse(WeightQuantization("""{"enabled": true}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 8}}}""")).Config.CompressionTraining!;
        var wq = config.WeightQuantization;
        Assert.AreEqual((0L, 1, QuantizationType.Symmetric, QuantizationRounding.Nearest), (wq.ScheduleOffset, wq.QuantizeGroups, wq.Type, wq.Rounding));
        Assert.AreEqual((false, false, 0.001, false), (wq.InForward, wq.MixedFp16, wq.ChangeRatio, wq.Verbose));
        Assert.IsFalse(config.SparsePruning.Enabled);
        Assert.IsFalse(config.RowPruning.Enabled);
        Assert.AreEqual(0, config.SparsePruning.Groups.Count);

        var sparse = Parse(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": 0.3}}}""")).Config.CompressionTraining!.SparsePruning;
        Assert.AreEqual((1000L, 0.3), (sparse.ScheduleOffset, sparse.Groups.Single().DenseRatio));
        Assert.IsFalse(Parse(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": 0.3}}}""")).Config.CompressionTraining!.WeightQuantization.Enabled);
    }

    [TestMethod]
    public void AbsentOrAllOff_IsNull_WithoutWarnings()
    {
        Assert.IsNull(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""").Config.CompressionTraining);
        StringAssert.Contains(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""").Config.Describe(), "$.compression_training = off");
        var off = Parse(File("13_dse_compression_channel_prune.json").Replace("\"enabled\": true", "\"enabled\": false", StringComparison.Ordinal));
        Assert.IsNull(off.Config.CompressionTraining);
        Assert.AreEqual(0, off.Warnings.Count(w => w.Contains("compression_training", StringComparison.Ordinal)), string.Join("\n", off.Warnings));
        // A switched-off technique needs no groups and no required params.
        Assert.IsNull(Parse(WeightQuantization("""{"enabled": false}""", """{"wq1": {"params": {}}}""")).Config.CompressionTraining);
        Assert.IsNull(Parse("""{"sparse_pruning": {"shared_parameters": {"enabled": false}}}""").Config.CompressionTraining);
    }

    [TestMethod]
    public void RefusedTechniques_AreErrorsAtTheirEnabledKey()
    {
        var activation = Parse("""{"activation_quantization": {"shared_parameters": {"enabled": true}, "different_groups": {"aq1": {"params": {"bits": 8}, "modules": ["fc"]}}}}""").Config.CompressionTraining!;
        Assert.AreEqual((true, QuantizationType.Symmetric, 1000L, 8), (activation.ActivationQuantization.Enabled, activation.ActivationQuantization.Type,
            activation.ActivationQuantization.ScheduleOffset, activation.ActivationQuantization.Groups.Single().Bits), "DeepSpeed's defaults: symmetric, dynamic, offset 1000");
        Assert.IsFalse(activation.Enabled, "activation quantization leaves the weights and the step alone");
        string channel = OnlyError("""{"channel_pruning": {"shared_parameters": {"enabled": true}, "different_groups": {"cp1": {"params": {"dense_ratio": 0.5}}}}}""");
        StringAssert.StartsWith(channel, "$.compression_training.channel_pruning.shared_parameters.enabled: known DeepSpeed feature not supported by Shardwise yet: channel pruning (it prunes convolution channels, and Shardwise models have no convolutions)");
        StringAssert.Contains(channel, "use $.compression_training.row_pruning");
    }

    [TestMethod]
    public void LayerReduction_ReadsDeepSpeedsKeys_AndOnItsOwnLeavesTheTrainingStepAlone()
    {
        var result = Parse("""{"layer_reduction": {"enabled": true, "keep_number_layer": 5, "module_name_prefix": "bert.encoder.layer", "teacher_layer": [2, 4, 6, 8, 10], "other_module_name": ["bert.pooler", "bert.embeddings"]}}""");
        var compression = result.Config.CompressionTraining!;
        var reduction = compression.LayerReduction;
        Assert.AreEqual((true, 5, "bert.encoder.layer"), (reduction.Enabled, reduction.KeepNumberLayer, reduction.ModuleNamePrefix));
        CollectionAssert.AreEqual(new[] { 2, 4, 6, 8, 10 }, reduction.TeacherLayers.ToArray());
        CollectionAssert.AreEqual(new[] { "bert.pooler", "bert.embeddings" }, reduction.OtherModuleNames.ToArray());
        Assert.IsFalse(compression.Enabled, "layer reduction acts when the weights load, not on the step (no host step, no masters apart)");
        StringAssert.Contains(compression.Describe(), "layer reduction from the --init-from teacher: bert.encoder.layer.0 ← bert.encoder.layer.2, bert.encoder.layer.1 ← bert.encoder.layer.4");
        StringAssert.Contains(compression.Describe(), "also bert.pooler, bert.embeddings");

        Assert.IsNull(Parse("""{"layer_reduction": {"enabled": false, "teacher_layer": [1]}}""").Config.CompressionTraining, "off: nothing to do");
    }

    [TestMethod]
    public void LayerReduction_NeedsItsKeysWhenOn_AsDeepSpeedHasNoDefaults()
    {
        var missing = Fails("""{"layer_reduction": {"enabled": true}}""");
        Assert.AreEqual(3, missing.Errors.Count, missing.Message);
        StringAssert.StartsWith(missing.Errors[0], "$.compression_training.layer_reduction.module_name_prefix: required when layer reduction is enabled");
        StringAssert.StartsWith(missing.Errors[1], "$.compression_training.layer_reduction.teacher_layer: required when layer reduction is enabled");
        StringAssert.StartsWith(missing.Errors[2], "$.compression_training.layer_reduction.other_module_name: required when layer reduction is enabled");
        StringAssert.StartsWith(OnlyError("""{"layer_reduction": {"enabled": true, "module_name_prefix": "blocks", "teacher_layer": [1, -2], "other_module_name": []}}"""),
            "$.compression_training.layer_reduction.teacher_layer[1]: expected a layer index (0 or more), found the number -2");
        StringAssert.StartsWith(OnlyError("""{"layer_reduction": {"enabled": true, "module_name_prefix": "blocks", "teacher_layer": [], "other_module_name": []}}"""),
            "$.compression_training.layer_reduction.teacher_layer: is empty");
        var typo = Parse("""{"layer_reduction": {"enabled": true, "module_name_prefix": "blocks", "teacher_layers": [1], "teacher_layer": [1], "other_module_name": []}}""");
        StringAssert.Contains(string.Join("\n", typo.Warnings), "$.compression_training.layer_reduction.teacher_layers");
    }

    [TestMethod]
    public void LearnedPruning_ReadsTopK_AndHeadPruningsHeads_AndRefusesSnipMomentum()
    {
        var row = Parse(Pruning("row_pruning", """{"enabled": true, "method": "topk", "schedule_offset": 5}""", """{"rp1": {"params": {"dense_ratio": 0.5}}}""")).Config.CompressionTraining!;
        Assert.AreEqual(("topk", true, 5L), (row.RowPruning.Method, row.RowPruning.Learned, row.RowPruning.ScheduleOffset));
        Assert.IsTrue(row.LearnsMasks);
        StringAssert.Contains(row.Describe(), "row pruning topk: rp1 keeps 0.5 of its rows (from update 5)");

        var head = Parse(Pruning("head_pruning", """{"enabled": true, "num_heads": 12}""", """{"hp1": {"params": {"dense_ratio": 0.25}, "modules": ["attention.projection"]}}""")).Config.CompressionTraining!;
        Assert.AreEqual(("topk", 12, 1000L), (head.HeadPruning.Method, head.HeadPruning.NumHeads, head.HeadPruning.ScheduleOffset), "topk and offset 1000 by default, as DeepSpeed's");
        StringAssert.Contains(head.Describe(), "head pruning of 12 heads topk: hp1 keeps 0.25 of its heads");

        StringAssert.StartsWith(OnlyError(Pruning("head_pruning", """{"enabled": true}""", """{"hp1": {"params": {"dense_ratio": 0.5}}}""")),
            "$.compression_training.head_pruning.shared_parameters.num_heads is required when head_pruning is enabled");
        StringAssert.StartsWith(OnlyError(Pruning("head_pruning", """{"enabled": true, "method": "l1", "num_heads": 4}""", """{"hp1": {"params": {"dense_ratio": 0.5}}}""")),
            "$.compression_training.head_pruning.shared_parameters.method: \"l1\" is not a head pruning method DeepSpeed builds (it raises NotImplementedError): use \"topk\"");
        StringAssert.StartsWith(OnlyError(Pruning("sparse_pruning",
                """{"enabled": true, "method": "snip_momentum", "block_pattern": "4x1", "dense_ratio": 0.4, "schedule_offset_stride": 5, "schedule_offset_end": 90, "excluded_modules": ["classifier"]}""",
                """{"sp1": {"params": {"dense_ratio": 0.5}}}""")),
            "$.compression_training.sparse_pruning.shared_parameters.method: known DeepSpeed feature not supported by Shardwise yet: sparse_pruning method \"snip_momentum\"");
        // Off, snip_momentum is only a value DeepSpeed knows, for sparse pruning alone.
        Assert.IsNull(Parse(Pruning("row_pruning", """{"enabled": false, "method": "topk"}""", "{}")).Config.CompressionTraining);
        StringAssert.StartsWith(OnlyError(Pruning("row_pruning", """{"enabled": false, "method": "snip_momentum"}""", "{}")),
            "$.compression_training.row_pruning.shared_parameters.method: \"snip_momentum\" is not a row_pruning method: use \"l1\" or \"topk\"");
    }

    [TestMethod]
    public void BadBits_AreErrorsAtTheGroupsParams()
    {
        const string Group = Wq + ".different_groups.wq1.params.target_bits";
        Assert.AreEqual($"{Group}: 8 is above start_bits (4): the bits anneal down from start_bits to target_bits",
            OnlyError(WeightQuantization("""{"enabled": true}""", """{"wq1": {"params": {"start_bits": 4, "target_bits": 8}}}""")));
        Assert.AreEqual($"{Group}: 2 bit(s) is ternary quantization, which is symmetric only (DeepSpeed asserts this too): set {Wq}.shared_parameters.quantization_type to \"symmetric\"",
            OnlyError(WeightQuantization("""{"enabled": true, "quantization_type": "asymmetric"}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 2}}}""")));
        Assert.AreEqual($"{Group}: 1 bit(s) is binary quantization, which rounds to nearest only (DeepSpeed asserts this too): set {Wq}.shared_parameters.rounding to \"nearest\"",
            OnlyError(WeightQuantization("""{"enabled": true, "rounding": "stochastic"}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 1}}}""")));
        StringAssert.StartsWith(OnlyError(WeightQuantization("""{"enabled": true}""", """{"wq1": {"params": {"start_bits": 17, "target_bits": 8}}}""")),
            $"{Wq}.different_groups.wq1.params.start_bits: 17 is out of range: 1 to 16 bits (the quantizer rounds the 16-bit working weights");
        var missing = Fails(WeightQuantization("""{"enabled": true}""", """{"wq1": {"params": {"quantization_period": 0}}}"""));
        CollectionAssert.AreEquivalent(new[]
        {
            $"{Wq}.different_groups.wq1.params.start_bits is required when weight_quantization is enabled",
            $"{Wq}.different_groups.wq1.params.target_bits is required when weight_quantization is enabled",
            $"{Wq}.different_groups.wq1.params.quantization_period: 0 is out of range: must be >= 1",
        }, missing.Errors.ToArray());
    }

    [TestMethod]
    public void BadSharedValues_NameThePath()
    {
        Assert.AreEqual($"{Wq}.shared_parameters.quantization_type: \"symetric\" is not a quantization type (did you mean \"symmetric\"?): use \"symmetric\" or \"asymmetric\"",
            OnlyError(WeightQuantization("""{"enabled": true, "quantization_type": "symetric"}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 4}}}""")));
        StringAssert.StartsWith(OnlyError(WeightQuantization("""{"enabled": true, "fp16_mixed_quantize": {"enabled": true, "quantize_change_ratio": 0}}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 4}}}""")),
            $"{Wq}.shared_parameters.fp16_mixed_quantize.quantize_change_ratio: 0 is out of range");
        var kernel = Parse(WeightQuantization("""{"enabled": true, "quantizer_kernel": true}""", """{"wq1": {"params": {"start_bits": 8, "target_bits": 4}}}"""));
        StringAssert.StartsWith(kernel.Warnings.Single(), $"{Wq}.shared_parameters.quantizer_kernel: has no effect");
    }

    [TestMethod]
    public void DenseRatio_IsAboveZeroAndAtMostOne()
    {
        foreach (string ratio in new[] { "0", "1.5" })
        {
            Assert.AreEqual($"$.compression_training.sparse_pruning.different_groups.sp1.params.dense_ratio: {ratio} is out of range: the fraction of weights the group keeps, above 0 and at most 1",
                OnlyError(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": """ + ratio + "}}}")));
        }

        Assert.AreEqual(1.0, Parse(Pruning("row_pruning", """{"enabled": true}""", """{"rp1": {"params": {"dense_ratio": 1}}}""")).Config.CompressionTraining!.RowPruning.Groups.Single().DenseRatio);
        Assert.AreEqual("$.compression_training.row_pruning.different_groups.rp1.params.dense_ratio is required when row_pruning is enabled",
            OnlyError(Pruning("row_pruning", """{"enabled": true}""", """{"rp1": {"modules": ["fc1"]}}""")));
    }

    [TestMethod]
    public void ModulePatterns_AreCheckedRegularExpressions()
    {
        string error = OnlyError(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": 0.5}, "modules": ["fc1", "layer(1"]}}"""));
        StringAssert.StartsWith(error, "$.compression_training.sparse_pruning.different_groups.sp1.modules[1]: \"layer(1\" is not a valid regular expression");
        StringAssert.StartsWith(OnlyError(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": 0.5}, "modules": []}}""")),
            "$.compression_training.sparse_pruning.different_groups.sp1.modules is empty");
        Assert.AreEqual("$.compression_training.sparse_pruning.different_groups.sp1.modules[0]: expected a string, found the number 3",
            OnlyError(Pruning("sparse_pruning", """{"enabled": true}""", """{"sp1": {"params": {"dense_ratio": 0.5}, "modules": [3]}}""")));
    }

    [TestMethod]
    public void RelatedModules_PairOneListWithEachModule()
    {
        Assert.AreEqual("$.compression_training.row_pruning.different_groups.rp1.related_modules has 1 entries and modules has 2: related_modules pairs one list with each entry of modules, by position",
            OnlyError(Pruning("row_pruning", """{"enabled": true}""", """{"rp1": {"params": {"dense_ratio": 0.5}, "modules": ["fc1", "fc3"], "related_modules": [["fc2"]]}}""")));
        Assert.AreEqual("$.compression_training.row_pruning.different_groups.rp1.related_modules[0]: expected a list of module name patterns, found the string \"fc2\"",
            OnlyError(Pruning("row_pruning", """{"enabled": true}""", """{"rp1": {"params": {"dense_ratio": 0.5}, "modules": ["fc1"], "related_modules": ["fc2"]}}""")));
    }

    [TestMethod]
    public void EnabledTechnique_NeedsGroups()
    {
        StringAssert.StartsWith(OnlyError("""{"weight_quantization": {"shared_parameters": {"enabled": true}}}"""),
            $"{Wq}.different_groups is required when weight_quantization is enabled: name at least one group");
        StringAssert.StartsWith(OnlyError(Pruning("sparse_pruning", """{"enabled": true}""", "{}")),
            "$.compression_training.sparse_pruning.different_groups has no group when sparse_pruning is enabled");
    }

    [TestMethod]
    public void UnknownKeys_WarnWithTheirPath()
    {
        var result = Parse("""
            {"weight_quantization": {"shared_parameters": {"enabled": true, "quantize_group": 2},
                                     "different_groups": {"wq1": {"params": {"start_bits": 8, "target_bits": 4, "quantization_perod": 10}, "module": ["fc"]}}},
             "sparse_prunning": {}}
            """);
        CollectionAssert.AreEquivalent(new[]
        {
            $"{Wq}.shared_parameters.quantize_group: unknown key, ignored (did you mean \"quantize_groups\"?)",
            $"{Wq}.different_groups.wq1.params.quantization_perod: unknown key, ignored (did you mean \"quantization_period\"?)",
            $"{Wq}.different_groups.wq1.module: unknown key, ignored (did you mean \"modules\"?)",
            "$.compression_training.sparse_prunning: unknown key, ignored (did you mean \"sparse_pruning\"?)",
        }, result.Warnings.ToArray());
    }

    [TestMethod]
    public void Corpus13_ChannelPruning_IsRefusedAtItsEnabledKey_AndNothingElse()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Load(TestPaths.Config("13_dse_compression_channel_prune.json")));
        Assert.AreEqual(1, error.Errors.Count, error.Message);
        StringAssert.StartsWith(error.Errors[0], "$.compression_training.channel_pruning.shared_parameters.enabled: known DeepSpeed feature not supported by Shardwise yet: channel pruning");
        Assert.IsFalse(error.Message.Contains("unknown key", StringComparison.Ordinal), error.Message);
    }

    [TestMethod]
    public void Corpus15_LegacyMoq_LoadsAsWeightQuantization()
    {
        var result = DeepSpeedConfig.Load(TestPaths.Config("15_ds_eigenvalue_quantize_tensorboard.json"));
        var wq = result.Config.CompressionTraining!.WeightQuantization;
        Assert.AreEqual((true, "$.quantize_training", false), (wq.Enabled, wq.Source, wq.InForward));
        var group = wq.Groups.Single();
        Assert.AreEqual((12, 4, 400), (group.StartBits, group.TargetBits, group.QuantizationPeriod));
        Assert.AreEqual(("quantize_training", "$.quantize_training"), (group.Modules.Name, group.Modules.JsonPath));
        CollectionAssert.AreEqual(new[] { "*" }, group.Modules.Modules.ToArray());
        Assert.AreEqual((400L, 16, true, 0.001, QuantizationType.Symmetric, QuantizationRounding.Nearest, true),
            (wq.ScheduleOffset, wq.QuantizeGroups, wq.MixedFp16, wq.ChangeRatio, wq.Type, wq.Rounding, wq.Verbose));
        CollectionAssert.Contains(result.Warnings.ToList(), "$.quantize_training.quantize_eigenvalue: eigenvalue-scaled quantization periods are not built: every layer keeps quantize_period, unscaled");
        Assert.IsFalse(result.Warnings.Any(w => w.StartsWith("$.quantize_training", StringComparison.Ordinal) && w.Contains("unknown key", StringComparison.Ordinal)), string.Join("\n", result.Warnings));
        StringAssert.Contains(result.Config.Describe(), "$.compression_training = weight quantization (from $.quantize_training): quantize_training 12→4 bits every 400 updates");
    }

    [TestMethod]
    public void Corpus10_UnderscoredMoq_StaysIgnored()
    {
        var result = DeepSpeedConfig.Load(TestPaths.Config("10_dse_moq_tensorboard_quantize.json"));
        Assert.IsNull(result.Config.CompressionTraining);
        CollectionAssert.Contains(result.Warnings.ToList(), "$._quantize_training: unknown key, ignored (a leading '_' is the usual way to comment a key out)");
    }

    [TestMethod]
    public void Moq_ReadsBothSpellingsOfTypeAndRounding()
    {
        var algorithm = MoqOnly("""{"quantize_bits": {"start_bits": 8, "target_bits": 4}, "quantize_algo": {"q_type": "asymmetric", "rounding": "stochastic"}}""").WeightQuantization;
        Assert.AreEqual((QuantizationType.Asymmetric, QuantizationRounding.Stochastic), (algorithm.Type, algorithm.Rounding));
        Assert.AreEqual((1000L, 1000, 1), (algorithm.ScheduleOffset, algorithm.Groups[0].QuantizationPeriod, algorithm.QuantizeGroups), "DeepSpeed's MoQ schedule defaults");
        var codes = MoqOnly("""{"enabled": true, "quantize_type": 1, "quantize_rounding": 1}""").WeightQuantization;
        Assert.AreEqual((QuantizationType.Asymmetric, QuantizationRounding.Stochastic, 16, 8), (codes.Type, codes.Rounding, codes.Groups[0].StartBits, codes.Groups[0].TargetBits));
        Assert.AreEqual(QuantizationRounding.Stochastic, MoqOnly("""{"enabled": true, "quantize_rounding": "stochastic"}""").WeightQuantization.Rounding);

        var disagree = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{"train_batch_size": 8, "quantize_training": {"enabled": true, "quantize_type": "symmetric", "quantize_algo": {"q_type": "asymmetric"}}}"""));
        Assert.AreEqual("$.quantize_training.quantize_algo.q_type: \"asymmetric\" disagrees with $.quantize_training.quantize_type (\"symmetric\"): set one of them", disagree.Errors.Single());
        var ternary = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{"train_batch_size": 8, "quantize_training": {"quantize_bits": {"start_bits": 8, "target_bits": 2}, "quantize_type": "asymmetric"}}"""));
        StringAssert.Contains(ternary.Errors.Single(), "$.quantize_training.quantize_bits.target_bits: 2 bit(s) is ternary quantization, which is symmetric only (DeepSpeed asserts this too): set $.quantize_training.quantize_type to \"symmetric\"");
    }

    [TestMethod]
    public void Moq_IsOffWhenSwitchedOff_OrWhenItNamesNoBits()
    {
        var off = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "quantize_training": {"enabled": false, "quantize_bits": {"start_bits": 99}}}""");
        Assert.IsNull(off.Config.CompressionTraining);
        Assert.AreEqual(0, off.Warnings.Count, string.Join("\n", off.Warnings));
        var nothing = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "quantize_training": {"quantize_groups": 4}}""");
        Assert.IsNull(nothing.Config.CompressionTraining);
        Assert.AreEqual("$.quantize_training: has neither \"enabled\" nor \"quantize_bits\", so MoQ stays off; ignored", nothing.Warnings.Single());
    }

    [TestMethod]
    public void MoqAndWeightQuantization_BothOn_IsAnErrorAtQuantizeTraining()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, "quantize_training": {"enabled": true, "quantize_bits": {"start_bits": 8, "target_bits": 4}},
             "compression_training": {"weight_quantization": {"shared_parameters": {"enabled": true}, "different_groups": {"wq1": {"params": {"start_bits": 8, "target_bits": 4}}}}}}
            """));
        StringAssert.StartsWith(error.Errors.Single(), "$.quantize_training and $.compression_training.weight_quantization both quantize the weights: keep one quantizer");

        // MoQ beside an enabled pruning technique is fine: one quantizer.
        var config = DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, "quantize_training": {"quantize_bits": {"start_bits": 8, "target_bits": 4}},
             "compression_training": {"sparse_pruning": {"shared_parameters": {"enabled": true}, "different_groups": {"sp1": {"params": {"dense_ratio": 0.5}}}}}}
            """).Config.CompressionTraining!;
        Assert.AreEqual(("$.quantize_training", true), (config.WeightQuantization.Source, config.SparsePruning.Enabled));
    }

    [TestMethod]
    public void TopLevelWeightQuantization_IsZeroInferences_AndStillRefused()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{"train_batch_size": 8, "weight_quantization": {"quantized_initialization": {"num_bits": 4}}}"""));
        StringAssert.StartsWith(error.Errors.Single(), "$.weight_quantization: known DeepSpeed feature not supported by Shardwise yet: ZeRO-Inference weight quantization");
    }

    private static CompressionTrainingConfig MoqOnly(string moq) =>
        DeepSpeedConfig.Parse($$"""{"train_batch_size": 8, "quantize_training": {{moq}}}""").Config.CompressionTraining!;

    /// <summary>The compression_training section of a corpus file, as text to splice into a test config.</summary>
    private static string File(string name)
    {
        using var document = System.Text.Json.JsonDocument.Parse(System.IO.File.ReadAllText(TestPaths.Config(name)));
        return document.RootElement.GetProperty("compression_training").GetRawText();
    }
}
