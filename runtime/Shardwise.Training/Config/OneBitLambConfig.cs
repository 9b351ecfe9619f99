using System;

namespace Shardwise.Training.Config;

/// <summary>
/// What DeepSpeed's OneBitLamb (1-bit Lamb, arXiv:2104.06069) adds to Lamb's parameters. freeze_step, cuda_aware and
/// comm_backend_name mean what they mean for OneBitAdam (<see cref="Compression"/>). During the warm-up the trust ratio
/// of every tensor is averaged into a frozen coefficient (an exponential average with coeff_beta); after it, each
/// tensor's ratio is that coefficient times a factor — the largest ratio of the frozen to a fresh variance's denominator —
/// clamped to [factor_min, factor_max] and to ±factor_threshold of the previous step's factor.
/// </summary>
public sealed record OneBitLambConfig
{
    public OneBitAdamConfig Compression { get; init; } = new();

    /// <summary>max_coeff and min_coeff: the warm-up's trust ratio is clamped to them, as Lamb's is.</summary>
    public LambConfig Coefficients { get; init; } = new();

    public double CoeffBeta { get; init; } = 0.9;

    public double FactorMax { get; init; } = 4.0;

    public double FactorMin { get; init; } = 0.5;

    public double FactorThreshold { get; init; } = 0.1;

    internal static OneBitLambConfig Read(JsonSection parameters, LambConfig coefficients)
    {
        var config = new OneBitLambConfig
        {
            Compression = OneBitAdamConfig.Read(parameters),
            Coefficients = coefficients,
            CoeffBeta = parameters.Number("coeff_beta", AutoRule.NotAllowed) ?? 0.9,
            FactorMax = parameters.Number("factor_max", AutoRule.NotAllowed) ?? 4.0,
            FactorMin = parameters.Number("factor_min", AutoRule.NotAllowed) ?? 0.5,
            FactorThreshold = parameters.Number("factor_threshold", AutoRule.NotAllowed) ?? 0.1,
        };
        if (coefficients.EpsInsideSqrt)
        {
            parameters.Warning("eps_inside_sqrt", "true has no effect: 1-bit Lamb's update divides by √v + ε (DeepSpeed's OnebitLamb ignores it too)");
        }

        if (config.Compression.FreezeStep == 0)
        {
            parameters.Error("freeze_step", "0 leaves no warm-up to average the trust ratio over, and the compressed stage scales every update by that average: use at least 1 (DeepSpeed's default is 100000)");
        }
        else if (!(config.CoeffBeta >= 0 && config.CoeffBeta < 1))
        {
            parameters.Error("coeff_beta", $"{JsonSection.Format(config.CoeffBeta)} is out of range: must be in [0, 1)");
        }
        else if (Math.Round(1 / (1 - config.CoeffBeta), 3) is var window && window > config.Compression.FreezeStep)
        {
            // The average starts at 0, so a window longer than the warm-up leaves the frozen coefficient too small.
            parameters.Warning("coeff_beta", $"{JsonSection.Format(config.CoeffBeta)} averages the trust ratio over about {JsonSection.Format(window)} steps, more than freeze_step ({config.Compression.FreezeStep}): the frozen coefficient will be biased towards 0; DeepSpeed advises 1/(1 - coeff_beta) <= freeze_step");
        }

        if (!(config.FactorMin > 0))
        {
            parameters.Error("factor_min", $"{JsonSection.Format(config.FactorMin)} is out of range: must be > 0");
        }
        else if (!(config.FactorMax >= config.FactorMin))
        {
            parameters.Error("factor_max", $"{JsonSection.Format(config.FactorMax)} is out of range: must be >= factor_min ({JsonSection.Format(config.FactorMin)})");
        }

        if (!(config.FactorThreshold >= 0 && config.FactorThreshold < 1))
        {
            parameters.Error("factor_threshold", $"{JsonSection.Format(config.FactorThreshold)} is out of range: must be in [0, 1)");
        }

        return config;
    }
}
