using System;
using System.Collections.Generic;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>How the model lays out its hidden states; Shardwise owns the layout, so both of DeepSpeed's are accepted.</summary>
public enum RandomLtdHiddenStateOrder
{
    BatchSeqDim,
    SeqBatchDim,
}

/// <summary>
/// The "data_efficiency.data_routing.random_ltd" section (DeepSpeed's random layerwise token dropping,
/// deepspeed/runtime/data_pipeline/data_routing): each listed layer runs, in training, on a random sorted subset of
/// each sample's tokens, the subset's length growing with the steps from <see cref="MinValue"/> to
/// <see cref="MaxValue"/> (<see cref="TokenDrop.RandomLtdSchedule"/>); the other tokens pass the layer unchanged.
/// Read only when data_efficiency, data_routing and random_ltd are all enabled, as DeepSpeed reads it.
/// </summary>
public sealed record RandomLtdConfig
{
    public const string FixedLinear = "fixed_linear";

    /// <summary>The model's layer count (DeepSpeed's total_layer_num): the trainer checks it against the model's [TokenDrop] layers.</summary>
    public required int TotalLayerNum { get; init; }

    /// <summary>The layers that drop tokens (random_ltd_layer_id), indices into the model's [TokenDrop] layers, as written.</summary>
    public required IReadOnlyList<int> LayerIds { get; init; }

    /// <summary>The attention mask's keyword in DeepSpeed's model call; informational here.</summary>
    public string? ModelMaskName { get; init; }

    public RandomLtdHiddenStateOrder HiddenStateOrder { get; init; } = RandomLtdHiddenStateOrder.BatchSeqDim;

    /// <summary>The tokens each dropping layer keeps at the first step.</summary>
    public required int MinValue { get; init; }

    /// <summary>The tokens the schedule grows to.</summary>
    public required int MaxValue { get; init; }

    /// <summary>The steps the linear schedule takes from min_value to max_value (schedule_config.require_steps).</summary>
    public required long RequireSteps { get; init; }

    /// <summary>The kept length is a multiple of this (schedule_config.seq_per_step).</summary>
    public required int SeqPerStep { get; init; }

    /// <summary>The section's JSON path, for messages about it.</summary>
    public const string SectionPath = "$.data_efficiency.data_routing.random_ltd";

    /// <summary>The section under an enabled data_routing; null when it is absent or off (then nothing else in it is read).</summary>
    internal static RandomLtdConfig? Read(JsonSection routing)
    {
        var section = routing.Section("random_ltd");
        if (section.Bool("enabled") != true)
        {
            section.SkipRest();
            return null;
        }

        int total = section.Int32("total_layer_num", AutoRule.NotAllowed, min: 1) ?? Required(section, "total_layer_num");
        int? layerNum = section.Int32("random_ltd_layer_num", AutoRule.NotAllowed, min: 1);
        if (layerNum is null) Required(section, "random_ltd_layer_num");
        var ids = ReadLayerIds(section, total);
        if (layerNum is { } count && ids is not null && count != ids.Count)
            section.Error("random_ltd_layer_num", $"{count} does not match random_ltd_layer_id, which lists {ids.Count} layers (DeepSpeed raises on this too)");

        string? maskName = section.String("model_mask_name");
        ReadModelType(section);
        var order = ReadHiddenStateOrder(section);
        ReadLayerTokenLrSchedule(section);

        var schedule = section.Section("random_ltd_schedule");
        int min = schedule.Int32("min_value", AutoRule.NotAllowed, min: 1) ?? Required(schedule, "min_value");
        int max = schedule.Int32("max_value", AutoRule.NotAllowed, min: 1) ?? Required(schedule, "max_value");
        if (min > max) schedule.Error("min_value", $"{min} is above max_value ({max}): the kept length grows from min_value to max_value");
        ReadScheduleType(schedule);
        var parameters = schedule.Section("schedule_config");
        long require = parameters.Integer("require_steps", AutoRule.NotAllowed, min: 1) ?? Required(parameters, "require_steps");
        int seqPerStep = parameters.Int32("seq_per_step", AutoRule.NotAllowed, min: 1) ?? Required(parameters, "seq_per_step");
        UnsupportedFeaturePolicy.ReportLeftovers(parameters);
        UnsupportedFeaturePolicy.ReportLeftovers(schedule);
        UnsupportedFeaturePolicy.ReportLeftovers(section);

        return new RandomLtdConfig
        {
            TotalLayerNum = total,
            LayerIds = ids ?? [],
            ModelMaskName = maskName,
            HiddenStateOrder = order,
            MinValue = min,
            MaxValue = max,
            RequireSteps = require,
            SeqPerStep = seqPerStep,
        };
    }

    private static List<int>? ReadLayerIds(JsonSection section, int totalLayers)
    {
        const string key = "random_ltd_layer_id";
        if (!section.TryTake(key, out var value))
        {
            Required(section, key);
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            section.Error(key, $"expected a list of layer indices, found {JsonSection.Describe(value)}");
            return null;
        }

        var ids = new List<int>();
        var seen = new HashSet<int>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            string at = $"{section.PathOf(key)}[{index++}]";
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id))
                section.Diagnostics.Error(at, $"expected a layer index, found {JsonSection.Describe(item)}");
            else if (id < 0 || id >= totalLayers)
                section.Diagnostics.Error(at, $"{id} is out of range: a layer index from 0 to total_layer_num − 1 ({totalLayers - 1})");
            else if (!seen.Add(id))
                section.Diagnostics.Error(at, $"{id} is listed twice: name each layer once");
            else
                ids.Add(id);
        }

        if (index == 0) section.Diagnostics.ErrorSentence(section.PathOf(key), "is empty: list the layers that drop tokens, or switch random_ltd off");
        return ids;
    }

    private static void ReadModelType(JsonSection section)
    {
        switch (section.String("model_type"))
        {
            case null or "decoder":
                return;
            case "encoder":
                section.Error("model_type", "\"encoder\" is not supported: Shardwise's layers use causal attention, so a layer that drops tokens is a decoder's " +
                    "(DeepSpeed's encoder sampling also keeps the attention mask's padding rows); use \"decoder\"");
                return;
            case var other:
                section.Error("model_type", $"\"{other}\" is not a model type: use \"decoder\" (DeepSpeed knows \"decoder\" and \"encoder\")");
                return;
        }
    }

    private static RandomLtdHiddenStateOrder ReadHiddenStateOrder(JsonSection section)
    {
        switch (section.String("hidden_state_order"))
        {
            case null or "batch_seq_dim":
                return RandomLtdHiddenStateOrder.BatchSeqDim;
            case "seq_batch_dim":
                return RandomLtdHiddenStateOrder.SeqBatchDim;
            case var other:
                section.Error("hidden_state_order", $"\"{other}\" is not a layout: use \"batch_seq_dim\" or \"seq_batch_dim\" (Shardwise lays out its own hidden states, so either is fine)");
                return RandomLtdHiddenStateOrder.BatchSeqDim;
        }
    }

    private static void ReadLayerTokenLrSchedule(JsonSection section)
    {
        var lr = section.Section("layer_token_lr_schedule");
        if (lr.Bool("enabled") == true)
            lr.Error("enabled", UnsupportedFeaturePolicy.ErrorMessage("random-LTD's layer-token learning-rate schedule (DeepSpeed raises NotImplementedError for it too)", "set enabled to false"));
        lr.SkipRest();
    }

    private static void ReadScheduleType(JsonSection schedule)
    {
        string? type = schedule.String("schedule_type");
        if (type is null) schedule.Diagnostics.ErrorSentence(schedule.PathOf("schedule_type"), $"is required: \"{FixedLinear}\"");
        else if (type != FixedLinear)
        {
            string hint = DidYouMean.Suggest(type, [FixedLinear]) is { } close ? $" (did you mean \"{close}\"?)" : "";
            schedule.Error("schedule_type", $"unknown schedule \"{type}\"{hint}: random-LTD's scheduler has only \"{FixedLinear}\"");
        }
    }

    private static int Required(JsonSection section, string key)
    {
        if (!section.Has(key)) section.Diagnostics.ErrorSentence(section.PathOf(key), "is required when random_ltd is enabled");
        return 1;
    }
}
