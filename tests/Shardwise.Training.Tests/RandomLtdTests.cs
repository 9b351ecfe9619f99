using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.TokenDrop;

namespace Shardwise.Training.Tests;

/// <summary>
/// Random-LTD (data_efficiency.data_routing.random_ltd): the section as config 11 writes it, its errors at their JSON
/// paths, DeepSpeed's RandomLTDScheduler replayed step by step and by hand, and the sampler's sorted, uniform and
/// deterministic token sets.
/// </summary>
[TestClass]
public sealed class RandomLtdTests
{
    private const string P = "$.data_efficiency.data_routing.random_ltd";

    public TestContext TestContext { get; set; } = null!;

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

    private static RandomLtdConfig Config(int min = 128, int max = 1024, long require = 400, int seqPerStep = 8, int total = 4, params int[] ids) => new()
    {
        TotalLayerNum = total,
        LayerIds = ids.Length == 0 ? [1, 2] : ids,
        MinValue = min,
        MaxValue = max,
        RequireSteps = require,
        SeqPerStep = seqPerStep,
    };

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

    [TestMethod]
    public void Schedule_MatchesDeepSpeedByHand()
    {
        // Config 11: min 128, max 1024, require_steps 400, seq_per_step 8; f(t) = ⌊t/400·896 + 128⌋ rounded down to 8s.
        var schedule = new RandomLtdSchedule(Corpus11());
        Assert.AreEqual(128, schedule.ReservedLength(0), "the first step: min_value as written");
        Assert.AreEqual(128, schedule.ReservedLength(1), "130.24 → 130 → 128");
        Assert.AreEqual(136, schedule.ReservedLength(5), "139.2 → 139 → 136");
        Assert.AreEqual(576, schedule.ReservedLength(200), "576");
        Assert.AreEqual(1016, schedule.ReservedLength(399), "1021.76 → 1021 → 1016");
        Assert.AreEqual(1024, schedule.ReservedLength(400));
        Assert.AreEqual(1024, schedule.ReservedLength(10_000), "22528 capped at max_value");
        Assert.AreEqual(1024, schedule.ReservedLength(long.MaxValue / 2), "no overflow far out");

        Assert.AreEqual(400L, schedule.FullFromStep(1024));
        Assert.AreEqual(172L, schedule.FullFromStep(512), "171: 511.04 → 504; 172: 513.28 → 512");
        Assert.AreEqual(0L, schedule.FullFromStep(128));
        Assert.IsNull(schedule.FullFromStep(2048));
        Assert.AreEqual("random-LTD: layers 1-22 of 24 keep 128→1024 tokens (fixed_linear, +8 about every 3.57 steps); " +
            "all 1024 tokens once 400 steps are done; evaluation runs every token", schedule.Describe(1024));
    }

    [TestMethod]
    public void Schedule_ReplaysDeepSpeedsStatefulScheduler()
    {
        foreach (var config in new[] { Config(), Config(100, 1020, 37, 8), Config(100, 1020, 10_000, 8), Config(100, 100, 10, 8), Config(3, 17, 5, 4), Config(64, 65, 1, 1) })
        {
            var schedule = new RandomLtdSchedule(config);
            var deepSpeed = new DeepSpeedRandomLtdScheduler(config);
            for (long step = 0; step < 3 * config.RequireSteps + 20; step++)
            {
                Assert.AreEqual(deepSpeed.CurrentSeq, schedule.ReservedLength(step), $"{config.MinValue}→{config.MaxValue} after {step} steps");
                deepSpeed.UpdateSeq(step + 1); // the engine, after an optimizer step, with global_steps just incremented
            }

            foreach (int sequence in new[] { 1, 50, 64, 100, 101, 512, 1016, 1017, 1024 })
            {
                long? full = schedule.FullFromStep(sequence);
                var expected = Enumerable.Range(0, (int)(3 * config.RequireSteps + 20)).Select(t => (long?)t)
                    .LastOrDefault(t => schedule.ReservedLength(t!.Value) < sequence) is { } lastShort ? lastShort + 1 : 0;
                if (config.MaxValue < sequence || (config.MinValue == config.MaxValue && config.MinValue < sequence)) Assert.IsNull(full);
                else Assert.AreEqual(expected, full, $"{config.MinValue}→{config.MaxValue}, sequence {sequence}");
            }
        }

        // min_value 100 is not a multiple of 8: the first step keeps 100, the second 96 (⌊100.092⌋ rounded down), so a
        // 100-token sequence is dropped from again until f(t) reaches 104, at t = 44 (43: 103.956 → 96; 44: 104.048 → 104).
        var odd = new RandomLtdSchedule(Config(100, 1020, 10_000, 8));
        Assert.AreEqual((100, 96), (odd.ReservedLength(0), odd.ReservedLength(1)));
        Assert.AreEqual(44L, odd.FullFromStep(100));
    }

    [TestMethod]
    public void CheckModel_NamesBothNumbersAndThePath()
    {
        var config = Corpus11();
        Assert.IsNull(RandomLtdSampler.CheckModel(config, 24));
        string? smaller = RandomLtdSampler.CheckModel(config, 12, "TinyGpt");
        StringAssert.Contains(smaller, $"{P}.total_layer_num is 24, but TinyGpt has 12 [TokenDrop] layers");
        StringAssert.Contains(smaller, $"{P}.random_ltd_layer_id[11] is 12 (and 10 more ids past it), but TinyGpt has 12 [TokenDrop] layers (0 to 11)");
        StringAssert.Contains(RandomLtdSampler.CheckModel(config, 22, "TinyGpt"), $"{P}.random_ltd_layer_id[21] is 22, but TinyGpt has 22 [TokenDrop] layers (0 to 21)");
        StringAssert.Contains(RandomLtdSampler.CheckModel(config, 0), "has no [TokenDrop] layer");
        Assert.ThrowsExactly<ArgumentException>(() => new RandomLtdSampler(config, 12, 7));
    }

    [TestMethod]
    public void Sample_PacksSortedDistinctRowsAndIdentityForOtherLayers()
    {
        var sampler = new RandomLtdSampler(Config(min: 16, max: 64, require: 100, seqPerStep: 8, total: 4, ids: [1, 2]), 4, seed: 7);
        const int batch = 3, sequence = 48;
        var draws = sampler.Sample(completedSteps: 0, microBatch: 0, batch, sequence);
        Assert.AreEqual(4, draws.Length);
        foreach (int layer in new[] { 0, 3 })
        {
            Assert.AreEqual(sequence, draws[layer].Reserved);
            Assert.IsFalse(draws[layer].Drops);
            CollectionAssert.AreEqual(Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range(0, sequence)).ToArray(), draws[layer].Indices);
        }

        foreach (int layer in new[] { 1, 2 })
        {
            var draw = draws[layer];
            Assert.AreEqual(16, draw.Reserved);
            Assert.IsTrue(draw.Drops);
            Assert.AreEqual(batch * sequence, draw.Indices.Length);
            for (int sample = 0; sample < batch; sample++)
            {
                var row = draw.Indices.AsSpan(sample * 16, 16).ToArray();
                for (int j = 0; j < row.Length; j++)
                {
                    Assert.IsTrue(row[j] is >= 0 and < sequence, $"in range: {row[j]}");
                    if (j > 0) Assert.IsTrue(row[j] > row[j - 1], "strictly increasing");
                }
            }

            Assert.IsTrue(draw.Indices.Skip(batch * 16).All(i => i == 0), "the rest is 0");
        }

        CollectionAssert.AreNotEqual(draws[1].Indices, draws[2].Indices, "each layer draws its own");
        // Once the schedule keeps at least the sequence, every layer runs every token.
        var late = sampler.Sample(completedSteps: 1_000, microBatch: 0, batch, sequence);
        Assert.IsTrue(late.All(d => d.Reserved == sequence && d.Indices.SequenceEqual(draws[0].Indices)));
    }

    [TestMethod]
    public void Sample_IsAFunctionOfItsKeyAlone()
    {
        var config = Config(min: 16, max: 64, require: 100, seqPerStep: 8, total: 4, ids: [1, 2]);
        var one = new RandomLtdSampler(config, 4, seed: 7);
        var other = new RandomLtdSampler(config, 4, seed: 7);
        int[] Draw(RandomLtdSampler sampler, long step, int microBatch, int layer = 1)
        {
            var indices = new int[2 * 64];
            sampler.Fill(step, microBatch, layer, 2, 64, indices);
            return indices;
        }

        // Another instance, and draws made in another order (as a resumed run makes them), give the same sets.
        var later = Draw(other, 5, 1);
        Draw(other, 3, 0);
        CollectionAssert.AreEqual(Draw(one, 5, 1), later);
        CollectionAssert.AreNotEqual(Draw(one, 5, 1), Draw(one, 6, 1), "step");
        CollectionAssert.AreNotEqual(Draw(one, 5, 1), Draw(one, 5, 2), "micro-batch");
        CollectionAssert.AreNotEqual(Draw(one, 5, 1), Draw(one, 5, 1, layer: 2), "layer");
        CollectionAssert.AreNotEqual(Draw(one, 5, 1), Draw(new RandomLtdSampler(config, 4, seed: 8), 5, 1), "seed");
        var indices = Draw(one, 5, 1);
        CollectionAssert.AreNotEqual(indices.AsSpan(0, 16).ToArray(), indices.AsSpan(16, 16).ToArray(), "sample");
    }

    [TestMethod]
    public void Draws_AreUniform()
    {
        var sampler = new RandomLtdSampler(Config(total: 1, ids: [0]), 1, seed: 11);

        // Each position of 64 is kept 16 times in 64 over 20,000 sets: Σ (c − E)² / (D·p·(1 − p)) averages about 64
        // (sd about 11); the bound is 11 sd above that, and with the fixed seed the outcome is fixed anyway.
        const int positions = 64, keep = 16, draws = 20_000;
        var counts = new long[positions];
        var kept = new int[keep];
        for (int n = 0; n < draws; n++)
        {
            sampler.DrawSorted(step: n / 8, microBatch: n % 8, layer: 0, sample: n % 3, positions, kept);
            foreach (int position in kept) counts[position]++;
        }

        double p = (double)keep / positions, expected = draws * p, variance = draws * p * (1 - p);
        double chiSquare = counts.Sum(c => (c - expected) * (c - expected) / variance);
        TestContext.WriteLine($"positions χ² {chiSquare:F1}");
        Assert.IsTrue(chiSquare < 3 * (positions - 1), $"positions χ² {chiSquare:F1}");

        // And every 3-subset of 6 equally often: Pearson's χ² with 19 degrees of freedom (mean 19, sd 6.2) under 80.
        var subsets = new Dictionary<string, int>();
        var three = new int[3];
        for (int n = 0; n < draws; n++)
        {
            sampler.DrawSorted(step: 1_000 + n, microBatch: 0, layer: 0, sample: 0, 6, three);
            string name = string.Join(",", three);
            subsets[name] = subsets.GetValueOrDefault(name) + 1;
        }

        Assert.AreEqual(20, subsets.Count);
        double each = draws / 20.0;
        double pearson = subsets.Values.Sum(c => (c - each) * (c - each) / each);
        TestContext.WriteLine($"subsets χ² {pearson:F1}");
        Assert.IsTrue(pearson < 80, $"subsets χ² {pearson:F1}");
    }

    /// <summary>DeepSpeed's RandomLTDScheduler (data_routing/scheduler.py), transcribed: fixed_linear only.</summary>
    private sealed class DeepSpeedRandomLtdScheduler(RandomLtdConfig config)
    {
        public int CurrentSeq { get; private set; } = config.MinValue;

        public void UpdateSeq(long globalSteps)
        {
            if (CurrentSeq < config.MaxValue) CurrentSeq = FixedRoot(globalSteps, 1);
        }

        private int FixedRoot(long globalSteps, double rootDegree)
        {
            double nextSeq = Math.Pow((double)globalSteps / config.RequireSteps, 1.0 / rootDegree);
            long next = (long)Math.Floor(nextSeq * (config.MaxValue - config.MinValue) + config.MinValue);
            next -= next % config.SeqPerStep;
            return (int)Math.Min(next, config.MaxValue);
        }
    }
}
