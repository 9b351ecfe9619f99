using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>Adam's (or Lamb's) hyper-parameters other than the learning rate (which the schedule supplies per step).</summary>
public sealed record AdamOptions
{
    public double Beta1 { get; init; } = ConfigDefaults.Beta1;

    public double Beta2 { get; init; } = ConfigDefaults.Beta2;

    public double Eps { get; init; } = ConfigDefaults.Eps;

    public double WeightDecay { get; init; } = ConfigDefaults.WeightDecay;

    /// <summary>
    /// True: decoupled weight decay (AdamW), p -= lr·(m̂/(√v̂+ε) + wd·p).
    /// False: classic L2, wd·p is added to the gradient before the moments.
    /// </summary>
    public bool AdamWMode { get; init; } = ConfigDefaults.AdamWMode;

    public bool BiasCorrection { get; init; } = ConfigDefaults.BiasCorrection;

    /// <summary>Set: the step is Lamb's (the same moments, a trust ratio per parameter tensor; <see cref="LambKernel"/>).</summary>
    public LambConfig? Lamb { get; init; }

    /// <summary>True: the step is Lion's (<see cref="LionKernel"/>: the first moment only, no ε, no bias correction).</summary>
    public bool Lion { get; init; }

    /// <summary>True: the step is Adagrad's (<see cref="AdagradKernel"/>: the sum of squared gradients only, L2 decay).</summary>
    public bool Adagrad { get; init; }

    /// <summary>Set: the step is OneBitAdam's (<see cref="OneBitAdam"/>; no bias correction, decoupled decay).</summary>
    public OneBitAdamConfig? OneBit { get; init; }

    /// <summary>Set: the step is OneBitLamb's (<see cref="OneBitLamb"/>; Adam's moments, its own trust ratio, no bias correction).</summary>
    public OneBitLambConfig? OneBitLamb { get; init; }

    /// <summary>Set: the step is ZeroOneAdam's (<see cref="ZeroOneAdam"/>; Adam's moments, no bias correction).</summary>
    public ZeroOneAdamConfig? ZeroOneAdam { get; init; }

    public static AdamOptions FromConfig(OptimizerConfig config) => new()
    {
        Beta1 = config.Beta1,
        Beta2 = config.Beta2,
        Eps = config.Eps,
        WeightDecay = config.WeightDecay,
        AdamWMode = config.AdamWMode,
        BiasCorrection = config.BiasCorrection,
        Lamb = config.Type == OptimizerType.Lamb ? config.Lamb ?? new LambConfig() : null,
        OneBit = config.Type == OptimizerType.OneBitAdam ? config.OneBit ?? new OneBitAdamConfig() : null,
        OneBitLamb = config.Type == OptimizerType.OneBitLamb ? config.OneBitLamb ?? new OneBitLambConfig() : null,
        ZeroOneAdam = config.Type == OptimizerType.ZeroOneAdam ? config.ZeroOneAdam ?? new ZeroOneAdamConfig() : null,
        Lion = config.Type == OptimizerType.Lion,
        Adagrad = config.Type == OptimizerType.Adagrad,
    };
}
