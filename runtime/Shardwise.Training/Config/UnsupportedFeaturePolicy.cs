using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// What Shardwise does with DeepSpeed keys it recognises but does not implement. The whole policy is here.
///
/// Rule: a known-but-unsupported setting is an ERROR when silently ignoring it would change what gets
/// trained (model math, optimizer or LR trajectory, numerics of the update, batch layout, which data is
/// seen) or would break the memory plan the user relies on to fit the model at all. It is
/// a WARNING when it only affects logging, monitoring, profiling, compilation or communication speed, or
/// when the feature is present but switched off ("enabled": false). Accepted-no-effect keys are permission
/// flags that only matter for optimizers we do not have; they are read silently.
///
/// Value-level decisions (not keys) that follow the same rule and are enforced by the parsers:
///   errors: optimizer types other than Adam/AdamW/Lamb and the 1-bit ones (Lion, Adagrad, ...), unknown scheduler types,
///           unknown offload devices (none, cpu and nvme are implemented), fp16 and bf16 both enabled,
///           fp16_master_weights_and_grads, amsgrad.
///   warnings: ZeRO-3-only keys (stage3_*, offload_param) below stage 3 and offload at stage 0 (DeepSpeed
///           ignores them too), fp16 loss-scaler keys inside a bf16 section, legacy aliases (bfloat16,
///           cpu_offload, stage3_gather_fp16_weights_on_model_save, "zero_optimization": bool).
///   activation_checkpointing: profile is a warning (logging only); the rest is honoured by construction.
///           Checkpointing itself is [Checkpoint] on layers, cpu_checkpointing [Checkpoint(InputsOnHost = true)] and
///           partition_activations [Checkpoint(PartitionInputs = true)], build-time decisions; the trainer warns when
///           the section asks for them and the model has none (ActivationCheckpointingConfig, Cli/ActivationCheckpointingCheck).
///   communication_data_type, prescale_gradients and gradient_predivide_factor are honoured (GradientCommunicationConfig).
/// Unknown keys (typos, application keys) are warnings "unknown key, ignored", with a did-you-mean hint.
/// </summary>
internal static class UnsupportedFeaturePolicy
{
    public const string Prefix = "known DeepSpeed feature not supported by Shardwise yet: ";

    /// <summary>Top-level sections and keys, keyed by JSON name.</summary>
    public static IReadOnlyDictionary<string, KnownUnsupportedKey> TopLevel { get; } = new Dictionary<string, KnownUnsupportedKey>(StringComparer.Ordinal)
    {
        // Logging, monitoring and profiling: never change results.
        ["wandb"] = KnownUnsupportedKey.Warn("Weights & Biases monitoring"),
        ["comet"] = KnownUnsupportedKey.Warn("Comet monitoring"),
        ["eigenvalue"] = KnownUnsupportedKey.Warn("eigenvalue analysis"),

        // Speed or plumbing only.
        ["compile"] = KnownUnsupportedKey.Warn("torch.compile / DeepCompile (compilation does not change the math)"),
        ["aio"] = KnownUnsupportedKey.Warn("async I/O tuning for NVMe offload (the swap uses .NET's RandomAccess with its own read-ahead)"),
        ["nebula"] = KnownUnsupportedKey.Warn("Nebula checkpoint service"),
        ["dataloader_drop_last"] = KnownUnsupportedKey.Warn("DeepSpeed data loader options (the Shardwise trainer owns data loading)"),
        ["data_types"] = KnownUnsupportedKey.WarnWhenActive("non-fp32 gradient accumulation dtype (Shardwise accumulates in fp32)", GradAccumulationIsNotFp32),

        // Change the model, the data or the update: errors unless switched off.
        // The top-level weight_quantization is ZeRO-Inference's (quantized_initialization / post_init_quant, DeepSpeed's
        // WeightQuantConfig); compression_training.weight_quantization and the legacy quantize_training are read by
        // CompressionTrainingConfig.
        ["weight_quantization"] = KnownUnsupportedKey.Error("ZeRO-Inference weight quantization (quantized initialization / post-init quantization; quantization-aware training is compression_training.weight_quantization)", Always),
        ["hybrid_engine"] = KnownUnsupportedKey.Error("hybrid engine (RLHF generation)", Enabled),
        ["amp"] = KnownUnsupportedKey.Error("NVIDIA Apex AMP", Enabled),
        ["torch_autocast"] = KnownUnsupportedKey.Error("torch autocast", Enabled),
        ["sequence_parallel_size"] = KnownUnsupportedKey.Error("Ulysses sequence parallelism (it changes the data-parallel size and so the batch)", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() > 1),
    };

    /// <summary>Permission flags for optimizers we do not have; read without comment.</summary>
    public static IReadOnlySet<string> TopLevelAcceptedNoEffect { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "zero_allow_untested_optimizer",
        "zero_force_ds_cpu_optimizer",
    };

    /// <summary>Keys inside zero_optimization.</summary>
    public static IReadOnlyDictionary<string, KnownUnsupportedKey> ZeroOptimization { get; } = new Dictionary<string, KnownUnsupportedKey>(StringComparer.Ordinal)
    {
        ["mics_shard_size"] = KnownUnsupportedKey.WarnWhenActive("MiCS sharding (communication layout only)", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() > 0),
        ["mics_hierarchical_params_gather"] = KnownUnsupportedKey.WarnWhenActive("MiCS hierarchical gather", IsTrue),
        ["memory_efficient_linear"] = KnownUnsupportedKey.Warn("memory-efficient linear"),
        ["stage3_module_granularity_threshold"] = KnownUnsupportedKey.Warn("ZeRO-3 module granularity tuning"),
        ["use_all_reduce_for_fetch_params"] = KnownUnsupportedKey.Warn("ZeRO-3 all-reduce parameter fetch"),
        ["log_trace_cache_warnings"] = KnownUnsupportedKey.Warn("ZeRO-3 trace cache warnings"),
    };

    public static IReadOnlySet<string> ZeroAcceptedNoEffect { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "load_from_fp32_weights",
        "ignore_unused_parameters",
        "legacy_stage1",
    };

    /// <summary>Optimizer types DeepSpeed implements natively that we do not (lower-case).</summary>
    public static IReadOnlySet<string> UnsupportedOptimizers { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
 "muadam", "muadamw", "musgd", "sgd", "adam8bit",
    };

    /// <summary>Scheduler types DeepSpeed implements that we do not (none left since OneCycle and LRRangeTest).</summary>
    public static IReadOnlySet<string> UnsupportedSchedulers { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    public const string ChangesResults = "ignoring it would change training results";

    public const string BreaksMemoryPlan = "ignoring it would drop the memory plan this config relies on to fit the model";

    public static string ErrorMessage(string feature, string advice, string reason = ChangesResults) =>
        $"{Prefix}{feature}; {reason}, so {advice}";

    public static string WarningMessage(string feature) => $"{Prefix}{feature}; ignored";

    /// <summary>
    /// Reports every key of <paramref name="section"/> that its parser did not read: known-unsupported
    /// keys per <paramref name="table"/>, everything else as unknown (with a did-you-mean hint).
    /// </summary>
    public static void ReportLeftovers(
        JsonSection section,
        IReadOnlyDictionary<string, KnownUnsupportedKey>? table = null,
        IReadOnlySet<string>? acceptedNoEffect = null)
    {
        // Every key the parser asked for is a real key at this level: the pool for did-you-mean hints.
        var knownNames = section.ReadKeys.ToList();
        var leftovers = section.Leftovers().ToList();
        foreach (var (key, value) in leftovers)
        {
            if (acceptedNoEffect is not null && acceptedNoEffect.Contains(key))
            {
                continue;
            }

            if (table is not null && table.TryGetValue(key, out var known))
            {
                Report(section, key, value, known);
                continue;
            }

            if (key.StartsWith('_'))
            {
                section.Warning(key, "unknown key, ignored (a leading '_' is the usual way to comment a key out)");
                continue;
            }

            var candidates = knownNames.Concat(table?.Keys ?? Enumerable.Empty<string>()).Concat(acceptedNoEffect ?? Enumerable.Empty<string>());
            var suggestion = DidYouMean.Suggest(key, candidates);
            section.Warning(key, suggestion is null ? "unknown key, ignored" : $"unknown key, ignored (did you mean \"{suggestion}\"?)");
        }
    }

    private static void Report(JsonSection section, string key, JsonElement value, KnownUnsupportedKey known)
    {
        var active = known.IsActive(value);
        switch (known.Severity)
        {
            case UnsupportedSeverity.ErrorWhenActive when active:
                section.Error(key, ErrorMessage(known.Feature, "remove it or switch it off"));
                break;
            case UnsupportedSeverity.ErrorWhenActive:
                section.Warning(key, WarningMessage(known.Feature + " (switched off here)"));
                break;
            case UnsupportedSeverity.WarningWhenActive when !active:
                break;
            default:
                section.Warning(key, WarningMessage(known.Feature));
                break;
        }
    }

    private static bool Always(JsonElement value) => true;

    private static bool IsTrue(JsonElement value) => value.ValueKind == JsonValueKind.True;

    /// <summary>DeepSpeed sections are off unless "enabled": true (all of these default to false).</summary>
    private static bool Enabled(JsonElement value) =>
        value.ValueKind == JsonValueKind.True
        || (value.ValueKind == JsonValueKind.Object
            && value.TryGetProperty("enabled", out var enabled)
            && enabled.ValueKind != JsonValueKind.False
            && enabled.ValueKind != JsonValueKind.Null);

    private static bool GradAccumulationIsNotFp32(JsonElement value) =>
        value.ValueKind == JsonValueKind.Object
        && value.TryGetProperty("grad_accum_dtype", out var dtype)
        && !(dtype.ValueKind == JsonValueKind.String && dtype.GetString() is "fp32" or "float32" or "float")
        && dtype.ValueKind != JsonValueKind.Null;
}

internal enum UnsupportedSeverity
{
    /// <summary>Always a warning.</summary>
    Warning,

    /// <summary>A warning only when the feature is switched on; silent otherwise.</summary>
    WarningWhenActive,

    /// <summary>An error when switched on; a warning when present but switched off.</summary>
    ErrorWhenActive,
}

internal sealed record KnownUnsupportedKey(string Feature, UnsupportedSeverity Severity, Func<JsonElement, bool> IsActive)
{
    public static KnownUnsupportedKey Warn(string feature) => new(feature, UnsupportedSeverity.Warning, _ => true);

    public static KnownUnsupportedKey WarnWhenActive(string feature, Func<JsonElement, bool> isActive) =>
        new(feature, UnsupportedSeverity.WarningWhenActive, isActive);

    public static KnownUnsupportedKey Error(string feature, Func<JsonElement, bool> isActive) =>
        new(feature, UnsupportedSeverity.ErrorWhenActive, isActive);
}
