namespace Shardwise.Training.Config;

/// <summary>
/// The parameters DeepSpeed's Lamb (FusedLamb) adds to Adam's: its trust ratio ‖w‖/‖update‖ per parameter tensor is
/// clamped to [min_coeff, max_coeff]; eps_inside_sqrt puts ε under the square root (√(v + ε) instead of √v + ε).
/// </summary>
public sealed record LambConfig
{
    public double MaxCoeff { get; init; } = 10.0;

    public double MinCoeff { get; init; } = 0.01;

    public bool EpsInsideSqrt { get; init; }

    internal static LambConfig Read(JsonSection parameters)
    {
        var config = new LambConfig
        {
            MaxCoeff = parameters.Number("max_coeff", AutoRule.NotAllowed) ?? 10.0,
            MinCoeff = parameters.Number("min_coeff", AutoRule.NotAllowed) ?? 0.01,
            EpsInsideSqrt = parameters.Bool("eps_inside_sqrt") ?? false,
        };
        if (config.MinCoeff < 0 || double.IsNaN(config.MinCoeff))
        {
            parameters.Error("min_coeff", $"{JsonSection.Format(config.MinCoeff)} is out of range: must be >= 0");
        }
        else if (config.MaxCoeff < config.MinCoeff || double.IsNaN(config.MaxCoeff))
        {
            parameters.Error("max_coeff", $"{JsonSection.Format(config.MaxCoeff)} is out of range: must be >= min_coeff ({JsonSection.Format(config.MinCoeff)})");
        }

        // FusedLamb clips by max_grad_norm only when its caller passes the gradient norms (DeepSpeed's fp16 wrapper does,
        // the plain fp32 step does not): gradient_clipping is the one clipping Shardwise applies.
        if (parameters.Number("max_grad_norm", AutoRule.NotAllowed) is > 0)
        {
            parameters.Error("max_grad_norm", UnsupportedFeaturePolicy.ErrorMessage("Lamb's own max_grad_norm", "set it to 0 and use gradient_clipping (the global norm clip)"));
        }

        return config;
    }
}
