using System;
using System.Collections.Generic;
using Shardwise.Distributed;
using Shardwise.Training.Compression;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's OneBitLamb (1-bit Lamb, arXiv:2104.06069) on a flat buffer of parameter tensors:
/// <list type="bullet">
/// <item>Warm-up, the first freeze_step steps: Lamb on the gradients the engine averaged in full precision, without bias
/// correction and with ε outside the root (<see cref="LambKernel"/>), as DeepSpeed's OnebitLamb computes it. Each
/// tensor's trust ratio, where it is not exactly 1, is folded into a frozen coefficient
/// c = coeff_beta·c + (1 − coeff_beta)·ratio; at the freeze step the variance is copied into a fresh variance.</item>
/// <item>Then the variance v is frozen and the engine stops averaging gradients: each rank folds its own gradient into
/// the momentum, the momentum is averaged with 1-bit compression and error feedback (<see cref="OneBitAllReduce"/>), and
/// per tensor the gradient is rebuilt from the averaged momentum, g = (m − β1·m_last)/(1 − β1), to keep the fresh variance
/// v' current. The update m/(√v + ε) + wd·p is scaled by c·factor, factor = max (√v + ε)/(√v' + ε) — how far the frozen
/// variance has drifted — blended towards 1 by the decay's share of the update, clamped to [factor_min, factor_max] and
/// to within ±factor_threshold of the last step's factor.</item>
/// </list>
/// DeepSpeed compresses all tensors as one flat buffer with one scale, so it first rescales each momentum to a common size
/// (its scaling_coeff); <see cref="OneBitAllReduce"/> gives every tensor its own scale, which makes that rescaling a no-op,
/// so there is none. The fresh variance, the frozen coefficients and the last factors are checkpointed with Adam's
/// moments (DeepSpeed resets the coefficients when it loads a warm-up checkpoint; a resumed Shardwise run continues bit
/// for bit). The compression errors are not saved, as in DeepSpeed.
/// </summary>
public sealed class OneBitLamb : IOneBitOptimizer
{
    private readonly OneBitAllReduce? _compression;
    private readonly Range[] _tensors;
    private readonly OneBitLambConfig _settings;
    private readonly LambConfig _warmUpLamb;   // max/min coeff; ε outside the root whatever the config says
    private readonly float[] _lastMomentum;    // m before this step's gradient: the gradient is rebuilt from it
    private readonly float[] _trustRatios;

    public OneBitLamb(AdamOptimizer adam, OneBitLambConfig settings, ICommunicator communicator, IReadOnlyList<Range> tensors)
    {
        ArgumentNullException.ThrowIfNull(adam);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegative(settings.Compression.FreezeStep);
        if (adam.Options.BiasCorrection || !adam.Options.AdamWMode || adam.Options.Lamb is not null)
            throw new ArgumentException("OneBitLamb runs its own update over Adam's moments, without bias correction: build its AdamOptimizer from AdamOptions.FromConfig", nameof(adam));
        Adam = adam;
        _settings = settings;
        _warmUpLamb = settings.Coefficients with { EpsInsideSqrt = false };
        _tensors = [.. tensors];
        _compression = communicator.Size > 1 ? new OneBitAllReduce(communicator, tensors) : null;
        _lastMomentum = new float[adam.State.Length];
        FreshVariance = new float[adam.State.Length];
        FrozenCoefficients = new double[_tensors.Length];
        LastFactors = new double[_tensors.Length];
        Array.Fill(LastFactors, 1.0);
        _trustRatios = new float[_tensors.Length];
    }

    public string Name => "OneBitLamb";

    /// <summary>The moments, the step count and the hyper-parameters.</summary>
    public AdamOptimizer Adam { get; }

    public long FreezeStep => _settings.Compression.FreezeStep;

    public bool Compressing => Adam.State.Step >= FreezeStep;

    public bool LocalGradients => Compressing;

    public IReadOnlyList<OptimizerStateTensor> CheckpointState =>
    [
        new("exp_avg_sq_fresh", PerParameter: FreshVariance),
        new("lamb_coeff_freeze", Values: FrozenCoefficients),
        new("last_factor", Values: LastFactors),
    ];

    /// <summary>Past the freeze step, frozen coefficients started afresh would be 0 and scale every update to nothing.</summary>
    public string? WhyStateIsNeeded() => Compressing
        ? $"this run is past its freeze step ({Adam.State.Step} >= {FreezeStep}), where the frozen trust ratios would be 0; resume it with that optimizer, or raise freeze_step"
        : null;

    /// <summary>DeepSpeed's exp_avg_sq_fresh: the variance the compressed stage keeps up to date beside the frozen one.</summary>
    public float[] FreshVariance { get; }

    /// <summary>DeepSpeed's lamb_coeff_freeze, per tensor: the warm-up's averaged trust ratio.</summary>
    public double[] FrozenCoefficients { get; }

    /// <summary>DeepSpeed's last_factor, per tensor (1 until the first compressed step).</summary>
    public double[] LastFactors { get; }

    /// <summary>The trust ratio each tensor's update was scaled by in the last step (DeepSpeed's get_lamb_coeffs).</summary>
    public ReadOnlySpan<float> TrustRatios => _trustRatios;

    public long BufferBytes => (_compression?.BufferBytes ?? 0) + OwnStateBytes(Adam.State.Length);

    /// <summary>What <see cref="BufferBytes"/> will be for tensors of these lengths on <paramref name="ranks"/> ranks.</summary>
    public static long BufferBytesFor(IReadOnlyList<long> tensorLengths, int ranks)
    {
        long length = 0;
        foreach (long tensor in tensorLengths) length += tensor;
        return OneBitAdam.BufferBytesFor(tensorLengths, ranks) + OwnStateBytes(length);
    }

    // The fresh variance and the last momentum (the per-tensor scalars are too small to count).
    private static long OwnStateBytes(long length) => 2 * length * sizeof(float);

    public void ResetCompressionErrors() => _compression?.ResetErrors();

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, (double Beta1, double Beta2)? betas = null)
    {
        var m = Adam.State.ExpAvg;
        if (parameters.Length != m.Length || gradients.Length != m.Length)
            throw new ArgumentException($"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, optimizer state {m.Length}");
        bool compressing = Compressing;
        var (beta1, beta2) = Adam.CountStep(betas);
        if (compressing) CompressedStep(parameters, gradients, learningRate, beta1, beta2);
        else WarmUpStep(parameters, gradients, learningRate, beta1, beta2);
    }

    private void WarmUpStep(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, double beta1, double beta2)
    {
        var o = Adam.Options;
        var state = Adam.State;
        var scalars = LambStepScalars.For(state.Step, learningRate, beta1, beta2, o.Eps, o.WeightDecay, biasCorrection: false, _warmUpLamb);
        LambKernel.Step(parameters, gradients, state.ExpAvg, state.ExpAvgSq, scalars, _tensors, _trustRatios);
        double coeffBeta = _settings.CoeffBeta;
        for (int t = 0; t < _tensors.Length; t++)
        {
            // DeepSpeed leaves the average alone where the ratio is exactly 1 (a zero tensor or a zero update).
            if (_trustRatios[t] != 1f) FrozenCoefficients[t] = coeffBeta * FrozenCoefficients[t] + (1 - coeffBeta) * _trustRatios[t];
        }
        if (state.Step == FreezeStep) state.ExpAvgSq.CopyTo(FreshVariance, 0);
    }

    private void CompressedStep(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, double beta1, double beta2)
    {
        var m = Adam.State.ExpAvg;
        var v = Adam.State.ExpAvgSq;
        float b1 = (float)beta1, oneMinusB1 = (float)(1.0 - beta1), eps = (float)Adam.Options.Eps, decay = (float)Adam.Options.WeightDecay;
        m.CopyTo(_lastMomentum, 0);
        OneBitKernels.FoldMomentum(m, gradients, b1, oneMinusB1);
        _compression?.Average(m);

        for (int t = 0; t < _tensors.Length; t++)
        {
            Range tensor = _tensors[t];
            Span<float> p = parameters[tensor];
            var (maxRatio, updateSquares, preliminarySquares) = OneBitKernels.RefreshFreshVariance(p, m.AsSpan(tensor), _lastMomentum.AsSpan(tensor),
                v.AsSpan(tensor), FreshVariance.AsSpan(tensor), b1, oneMinusB1, (float)beta2, (float)(1.0 - beta2), eps, decay);
            double factor = Factor(t, maxRatio, updateSquares, preliminarySquares, decay > 0);
            double coefficient = FrozenCoefficients[t] * factor;
            _trustRatios[t] = (float)coefficient;
            OneBitKernels.ApplyUpdate(p, m.AsSpan(tensor), v.AsSpan(tensor), (float)(learningRate * coefficient), eps, decay);
        }
    }

    /// <summary>The factor the frozen coefficient of tensor <paramref name="t"/> is scaled by this step; remembered as its last.</summary>
    private double Factor(int t, double maxRatio, double updateSquares, double preliminarySquares, bool decays)
    {
        double factor = maxRatio;
        if (decays)
        {
            // The decay's share of the update does not depend on the variance, so only the rest of the update drifts.
            double updateNorm = Math.Sqrt(updateSquares);
            double share = updateNorm == 0 ? 1 : Math.Min(1.0, Math.Sqrt(preliminarySquares) / updateNorm);
            factor = factor * share + (1.0 - share);
        }
        factor = Math.Clamp(factor, _settings.FactorMin, _settings.FactorMax);
        double last = LastFactors[t], threshold = _settings.FactorThreshold;
        factor = Math.Clamp(factor, last * (1.0 - threshold), last * (1.0 + threshold));
        LastFactors[t] = factor;
        return factor;
    }
}
