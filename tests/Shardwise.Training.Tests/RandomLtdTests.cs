using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>
/// Random-LTD (data_efficiency.data_routing.random_ltd): the section as config 11 writes it and its errors at their JSON
/// paths.
/// </summary>
[TestClass]
public sealed class RandomLtdTests
{
    private const string P = "$.data_efficiency.data_routing.random_ltd";

    private const string Schedule = """
        "random_ltd_schedule": {"min_value": 128, "max_value": 1024, "schedule_type": "fixed_linear",
          "schedule_config": {"require_steps": 400, "seq_per_step": 8}}
        """;

    /// <summary>A config whose random_ltd section holds <paramref name="members"/>, every enclosing section enabled.</summary>
    private static ConfigLoadResult Parse(string members) => DeepSpeedConfig.Parse($$$"""
        {"train_batch_size": 8, "data_efficiency": {"enabled": true, "data_routing": {"enabled": true,
          "random_ltd": {"enabled": true, {{{members}}} } } } }
        """, "ds.json");

    private static string Json(bool value) => value ? "true" : "false";

    private static string Fails(string members) => Assert.ThrowsExactly<ConfigException>(() => Parse(members)).Message;

    private static string Layers(int total, params int[] ids) =>
        $"\"total_layer_num\": {total}, \"random_ltd_layer_num\": {ids.Length}, \"random_ltd_layer_id\": [{string.Join(", ", ids)}], ";

    private static RandomLtdConfig Corpus11() =>
        DeepSpeedConfig.Load(TestPaths.Config("11_dse_data_efficiency_random_ltd.json")).Config.RandomLtd
        ?? throw new AssertFailedException("config 11 has no random-LTD");

    [TestMethod]
    public void Config11_ParsesAsWritten()
    {
        var config = Corpus11();
        Assert.AreEqual((24, 128, 1024, 400L, 8), (config.TotalLayerNum, config.MinValue, config.MaxValue, config.RequireSteps, config.SeqPerStep));
        CollectionAssert.AreEqual(Enumerable.Range(1, 22).ToArray(), config.LayerIds.ToArray());
        Assert.AreEqual("attention_mask", config.ModelMaskName);
        Assert.AreEqual(RandomLtdHiddenStateOrder.BatchSeqDim, config.HiddenStateOrder);

        var described = DeepSpeedConfig.Load(TestPaths.Config("11_dse_data_efficiency_random_ltd.json")).Config.Describe();
        StringAssert.Contains(described, $"{P}.enabled = true");
        StringAssert.Contains(described, $"{P}.random_ltd_schedule.min_value = 128");
        StringAssert.Contains(described, $"{P}.random_ltd_schedule.schedule_config.require_steps = 400");
        StringAssert.Contains(described, $"{P}.random_ltd_layer_id = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]");
        StringAssert.Contains(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""").Config.Describe(), $"{P}.enabled = false");
    }

    [TestMethod]
    public void SwitchedOffAnywhere_ReadsNothing()
    {
        foreach (var (efficiency, routing, ltd) in new[] { (false, true, true), (true, false, true), (true, true, false) })
        {
            var result = DeepSpeedConfig.Parse($$$"""
                {"train_batch_size": 8, "data_efficiency": {"enabled": {{{Json(efficiency)}}}, "data_routing": {"enabled": {{{Json(routing)}}},
                  "random_ltd": {"enabled": {{{Json(ltd)}}}, "model_type": "encoder", "whatever": 1} } } }
                """, "ds.json");
            Assert.IsNull(result.Config.RandomLtd, $"{efficiency} {routing} {ltd}");
            Assert.AreEqual(0, result.Warnings.Count, string.Join("\n", result.Warnings));
        }
    }

    [TestMethod]
    public void Errors_NameTheirPaths()
    {
        StringAssert.Contains(Fails(Layers(4, 1, 2) + "\"model_type\": \"encoder\", " + Schedule),
            $"{P}.model_type: \"encoder\" is not supported: Shardwise's layers use causal attention");
        StringAssert.Contains(Fails(Layers(4, 1, 4) + Schedule), $"{P}.random_ltd_layer_id[1]: 4 is out of range");
        StringAssert.Contains(Fails(Layers(4, 1, -1) + Schedule), $"{P}.random_ltd_layer_id[1]: -1 is out of range");
        StringAssert.Contains(Fails(Layers(4, 1, 2, 1) + Schedule), $"{P}.random_ltd_layer_id[2]: 1 is listed twice");
        StringAssert.Contains(Fails("\"total_layer_num\": 4, \"random_ltd_layer_num\": 3, \"random_ltd_layer_id\": [1, 2], " + Schedule),
            $"{P}.random_ltd_layer_num: 3 does not match random_ltd_layer_id, which lists 2 layers");
        StringAssert.Contains(Fails(Layers(4, 1) + Schedule.Replace("\"min_value\": 128", "\"min_value\": 2048", StringComparison.Ordinal)),
            $"{P}.random_ltd_schedule.min_value: 2048 is above max_value (1024)");
        StringAssert.Contains(Fails(Layers(4, 1) + Schedule.Replace("\"min_value\": 128", "\"min_value\": 0", StringComparison.Ordinal)),
            $"{P}.random_ltd_schedule.min_value: 0 is out of range");
        StringAssert.Contains(Fails(Layers(4, 1) + Schedule.Replace("fixed_linear", "fixed_root", StringComparison.Ordinal)),
            $"{P}.random_ltd_schedule.schedule_type: unknown schedule \"fixed_root\"");
        StringAssert.Contains(Fails(Layers(4, 1) + Schedule.Replace("fixed_linear", "fixed_linaer", StringComparison.Ordinal)), "(did you mean \"fixed_linear\"?)");
        StringAssert.Contains(Fails(Layers(4, 1) + Schedule.Replace("\"require_steps\": 400", "\"require_steps\": 0", StringComparison.Ordinal)),
            $"{P}.random_ltd_schedule.schedule_config.require_steps: 0 is out of range");
        StringAssert.Contains(Fails(Layers(4, 1) + "\"layer_token_lr_schedule\": {\"enabled\": true}, " + Schedule),
            $"{P}.layer_token_lr_schedule.enabled: known DeepSpeed feature not supported by Shardwise yet");
        StringAssert.Contains(Fails(Layers(4, 1) + "\"hidden_state_order\": \"batch_dim\", " + Schedule), $"{P}.hidden_state_order: \"batch_dim\" is not a layout");
        StringAssert.Contains(Fails(Layers(4, 1)), $"{P}.random_ltd_schedule.min_value is required");
        StringAssert.Contains(Fails(Schedule), $"{P}.total_layer_num is required");

        var fine = Parse(Layers(4, 1) + "\"hidden_state_order\": \"seq_batch_dim\", \"layer_token_lr_schedule\": {\"enabled\": false}, " + Schedule);
        Assert.AreEqual(RandomLtdHiddenStateOrder.SeqBatchDim, fine.Config.RandomLtd!.HiddenStateOrder);
        Assert.AreEqual(0, fine.Warnings.Count, string.Join("\n", fine.Warnings));
    }

    [TestMethod]
    public void UnknownKeys_AreWarnings()
    {
        var result = Parse(Layers(4, 1) + "\"model_mask_nam\": \"x\", " +
            Schedule.Replace("\"seq_per_step\": 8", "\"seq_per_step\": 8, \"seq_per_stepp\": 2", StringComparison.Ordinal));
        var warnings = string.Join("\n", result.Warnings);
        StringAssert.Contains(warnings, $"{P}.model_mask_nam: unknown key, ignored (did you mean \"model_mask_name\"?)");
        StringAssert.Contains(warnings, $"{P}.random_ltd_schedule.schedule_config.seq_per_stepp: unknown key");
    }
}
