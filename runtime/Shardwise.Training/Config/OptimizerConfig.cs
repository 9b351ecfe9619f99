namespace Shardwise.Training.Config;

public enum OptimizerType
{
    Adam,
    AdamW,
    Lamb,

    /// <summary>DeepSpeed's OneBitAdam: Adam, then momentum averaged with 1-bit compression (Optim/OneBitAdam).</summary>
    OneBitAdam,

    /// <summary>DeepSpeed's OneBitLamb: Lamb, then momentum averaged with 1-bit compression and the trust ratio frozen and rescaled (Optim/OneBitLamb).</summary>
    OneBitLamb,

    /// <summary>DeepSpeed's ZeroOneAdam: adaptive variance freezing, then local steps synchronised with 1-bit compression (Optim/ZeroOneAdam).</summary>
    ZeroOneAdam,

    /// <summary>Lion: the sign of an interpolated momentum, decoupled weight decay; one state tensor (Optim/LionKernel).</summary>
    Lion,

    /// <summary>Adagrad: steps scaled by each element's accumulated squared gradients; one state tensor (Optim/AdagradKernel).</summary>
    Adagrad,
}

public static class OptimizerTypes
{
    /// <summary>OneBitAdam, OneBitLamb and ZeroOneAdam: the optimizers that average with 1-bit compression (ZeRO stage 0 only).</summary>
    public static bool IsOneBit(this OptimizerType type) => type is OptimizerType.OneBitAdam or OptimizerType.OneBitLamb or OptimizerType.ZeroOneAdam;
}

/// <summary>
/// The "optimizer" section: Adam, AdamW, Lamb (DeepSpeed's FusedLamb), OneBitAdam, OneBitLamb and ZeroOneAdam; every other DeepSpeed optimizer
/// is an error (see <see cref="UnsupportedFeaturePolicy"/>) because running Adam instead would change training.
/// </summary>
public sealed record OptimizerConfig
{
    public required OptimizerType Type { get; init; }

    public required double LearningRate { get; init; }

    public required double Beta1 { get; init; }

    public required double Beta2 { get; init; }

    public required double Eps { get; init; }

    public required double WeightDecay { get; init; }

    /// <summary>
    /// Effective decoupled weight decay. DeepSpeed: type AdamW forces it on; type Adam reads adam_w_mode,
    /// which defaults to TRUE, so a plain "Adam" section trains AdamW-style unless adam_w_mode is false.
    /// </summary>
    public required bool AdamWMode { get; init; }

    /// <summary>Use torch's Adam instead of the fused kernel: same math, recorded for fidelity only.</summary>
    public required bool TorchAdam { get; init; }

    public required bool BiasCorrection { get; init; }

    /// <summary>Lamb's (and OneBitLamb's) trust-ratio parameters; null for the Adams.</summary>
    public LambConfig? Lamb { get; init; }

    /// <summary>OneBitAdam's parameters; null for the others.</summary>
    public OneBitAdamConfig? OneBit { get; init; }

    /// <summary>OneBitLamb's parameters; null for the others.</summary>
    public OneBitLambConfig? OneBitLamb { get; init; }

    /// <summary>ZeroOneAdam's parameters; null for the others.</summary>
    public ZeroOneAdamConfig? ZeroOneAdam { get; init; }

    internal static OptimizerConfig? Read(JsonSection parent, ConfigOverrides overrides)
    {
        if (!parent.Has("optimizer"))
        {
            parent.TryTake("optimizer", out _);
            return null;
        }

        var section = parent.Section("optimizer");
        var typeName = section.String("type");
        var type = ParseType(section, typeName);
        if (type is null)
        {
            // The type is already an error; its params belong to another optimizer and would only add noise.
            section.TryTake("params", out _);
            return null;
        }

        var parameters = section.Section("params");
        UnsupportedFeaturePolicy.ReportLeftovers(section);

        var lr = parameters.Number("lr", AutoRule.FromCaller(overrides.LearningRate, "pass --lr")) ?? ConfigDefaults.LearningRate;
        var (beta1, beta2) = ReadBetas(parameters, overrides);
        // Lion has no ε and no bias correction (DeepSpeed's FusedLion takes neither): said, not silently dropped.
        if (type == OptimizerType.Lion)
        {
            foreach (var key in new[] { "eps", "bias_correction" })
                if (parameters.Has(key)) parameters.Warning(key, "has no effect: Lion's update is the sign of its momentum (DeepSpeed's Lion takes no such parameter)");
        }
        var eps = parameters.Number("eps", AutoRule.FromCaller(overrides.Eps, "pass --adam-eps")) ?? ConfigDefaults.Eps;
        var weightDecay = parameters.Number("weight_decay", AutoRule.FromCaller(overrides.WeightDecay, "pass --weight-decay")) ?? ConfigDefaults.WeightDecay;
        bool adamFamily = type is OptimizerType.Adam or OptimizerType.AdamW;
        var lamb = type is OptimizerType.Lamb or OptimizerType.OneBitLamb ? LambConfig.Read(parameters) : null;
        var oneBit = type == OptimizerType.OneBitAdam ? OneBitAdamConfig.Read(parameters) : null;
        var oneBitLamb = type == OptimizerType.OneBitLamb ? OneBitLambConfig.Read(parameters, lamb!) : null;
        var zeroOneAdam = type == OptimizerType.ZeroOneAdam ? ZeroOneAdamConfig.Read(parameters) : null;
        var adamWModeSetting = adamFamily ? parameters.Bool("adam_w_mode") : null;
        var torchAdam = adamFamily ? parameters.Bool("torch_adam") ?? ConfigDefaults.TorchAdam : ConfigDefaults.TorchAdam;
        var biasCorrection = parameters.Bool("bias_correction") ?? ConfigDefaults.BiasCorrection;
        if (type is OptimizerType.Lion or OptimizerType.Adagrad) biasCorrection = false;
        if (type == OptimizerType.Adagrad)
        {
            // DeepSpeed's Adagrad: lr 1e-2 and eps 1e-10 by default; betas mean nothing to it.
            if (!parameters.Has("lr") && overrides.LearningRate is null) lr = 1e-2;
            if (!parameters.Has("eps") && overrides.Eps is null) eps = 1e-10;
            foreach (var key in new[] { "betas", "bias_correction" })
                if (parameters.Has(key)) parameters.Warning(key, "has no effect: Adagrad keeps only the sum of squared gradients (DeepSpeed's Adagrad takes no such parameter)");
        }
        if (type.Value.IsOneBit())
        {
            // DeepSpeed's 1-bit optimizers accept bias_correction and never apply it: the update is m/(√v+ε) + wd·p.
            if (parameters.Has("bias_correction") && biasCorrection)
                parameters.Warning("bias_correction", $"true has no effect: {type}'s update has no bias correction (DeepSpeed's neither)");
            biasCorrection = false;
        }
        if (parameters.Bool("amsgrad") == true)
        {
            parameters.Error("amsgrad", UnsupportedFeaturePolicy.ErrorMessage("AMSGrad", "set it to false"));
        }

        if (type == OptimizerType.AdamW && adamWModeSetting == false)
        {
            parameters.Warning("adam_w_mode", "false has no effect with type AdamW (DeepSpeed forces decoupled weight decay); use type Adam for L2 regularisation");
        }

        ValidateRange(parameters, "lr", lr, min: 0, inclusiveMin: true);
        ValidateRange(parameters, "eps", eps, min: 0, inclusiveMin: false);
        ValidateRange(parameters, "weight_decay", weightDecay, min: 0, inclusiveMin: true);
        UnsupportedFeaturePolicy.ReportLeftovers(parameters);

        return new OptimizerConfig
        {
            Type = type.Value,
            LearningRate = lr,
            Beta1 = beta1,
            Beta2 = beta2,
            Eps = eps,
            WeightDecay = weightDecay,
            // Lamb and the 1-bit optimizers add the decay to their update (decoupled), as AdamW does.
            AdamWMode = !adamFamily || type == OptimizerType.AdamW || (adamWModeSetting ?? ConfigDefaults.AdamWMode),
            TorchAdam = torchAdam,
            BiasCorrection = biasCorrection,
            Lamb = lamb,
            OneBit = oneBit,
            OneBitLamb = oneBitLamb,
            ZeroOneAdam = zeroOneAdam,
        };
    }

    private static OptimizerType? ParseType(JsonSection section, string? typeName)
    {
        switch (typeName?.ToLowerInvariant())
        {
            case null:
                section.Diagnostics.ErrorSentence(section.PathOf("type"), "is required (Adam, AdamW, Adagrad, Lamb, Lion, OneBitAdam, OneBitLamb or ZeroOneAdam)");
                return null;
            case "onebitadam":
                return OptimizerType.OneBitAdam;
            case "onebitlamb":
                return OptimizerType.OneBitLamb;
            case "zerooneadam":
                return OptimizerType.ZeroOneAdam;
            case "adam":
                return OptimizerType.Adam;
            case "adamw":
                return OptimizerType.AdamW;
            case "lamb":
                return OptimizerType.Lamb;
            case "lion":
                return OptimizerType.Lion;
            case "adagrad":
                return OptimizerType.Adagrad;
        }

        if (UnsupportedFeaturePolicy.UnsupportedOptimizers.Contains(typeName))
        {
            section.Error("type", UnsupportedFeaturePolicy.ErrorMessage($"optimizer \"{typeName}\"", "use Adam, AdamW, Adagrad, Lamb, Lion, OneBitAdam, OneBitLamb or ZeroOneAdam"));
        }
        else
        {
            section.Error("type", $"unknown optimizer \"{typeName}\"; Shardwise supports Adam, AdamW, Adagrad, Lamb, Lion, OneBitAdam, OneBitLamb and ZeroOneAdam");
        }

        return null;
    }

    private static (double, double) ReadBetas(JsonSection parameters, ConfigOverrides overrides)
    {
        const string Key = "betas";
        var fallback = (ConfigDefaults.Beta1, ConfigDefaults.Beta2);
        if (parameters.IsAuto(Key))
        {
            parameters.TryTake(Key, out _);
            if (overrides.Betas is { } given)
            {
                return given;
            }

            parameters.Diagnostics.ErrorSentence(parameters.PathOf(Key), "is \"auto\": pass --adam-beta1/--adam-beta2 or set [beta1, beta2]");
            return fallback;
        }

        if (!parameters.TryTake(Key, out var value))
        {
            return fallback;
        }

        if (value.ValueKind != System.Text.Json.JsonValueKind.Array || value.GetArrayLength() != 2
            || value[0].ValueKind != System.Text.Json.JsonValueKind.Number || value[1].ValueKind != System.Text.Json.JsonValueKind.Number)
        {
            parameters.Error(Key, $"expected [beta1, beta2], found {JsonSection.Describe(value)}");
            return fallback;
        }

        var betas = (value[0].GetDouble(), value[1].GetDouble());
        if (betas.Item1 is < 0 or >= 1 || betas.Item2 is < 0 or >= 1)
        {
            parameters.Error(Key, $"each beta must be in [0, 1), found [{JsonSection.Format(betas.Item1)}, {JsonSection.Format(betas.Item2)}]");
        }

        return betas;
    }

    private static void ValidateRange(JsonSection section, string key, double value, double min, bool inclusiveMin)
    {
        var ok = inclusiveMin ? value >= min : value > min;
        if (!ok || double.IsNaN(value) || double.IsInfinity(value))
        {
            section.Error(key, $"{JsonSection.Format(value)} is out of range: must be {(inclusiveMin ? ">=" : ">")} {JsonSection.Format(min)}");
        }
    }
}
