using System;
using System.Collections.Generic;
using Shardwise.Distributed;
using Shardwise.Training.Compression;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's ZeroOneAdam (0/1 Adam, arXiv:2202.06009) on a flat buffer of parameter tensors. Its update is Adam's
/// without bias correction, m/(√v + ε) + wd·p, as in DeepSpeed; what changes is which gradients it sees:
/// <list type="bullet">
/// <item>Up to var_freeze_step: on steps that are a multiple of the variance interval the engine averages the gradients
/// in full and both moments take them; on the others each rank's gradient is averaged with 1-bit compression
/// (<see cref="OneBitAllReduce"/>) and only the momentum takes it. Every var_update_scaler full steps the interval
/// doubles, so the variance is refreshed ever more rarely.</item>
/// <item>After it the variance is frozen and each rank steps on its own gradients, accumulating its updates
/// u = −Σ lr·update. Every local_step_interval steps the ranks synchronise: each undoes its local updates, the
/// accumulated update (in momentum units, u·(√v + ε)) is averaged with 1-bit compression, the momentum becomes its
/// average over the summed learning rates and the averaged update is applied, so the ranks agree again. The interval
/// doubles every local_step_scaler steps, up to local_step_clipper.</item>
/// </list>
/// Between synchronisations the ranks' parameters differ, as in DeepSpeed (a checkpoint keeps rank 0's). The compression
/// errors are reset when the variance freezes, because from then on they carry updates instead of gradients. The
/// interval counters, the summed learning rate and u are checkpointed; the errors are not (as in DeepSpeed).
/// </summary>
public sealed class ZeroOneAdam : IOneBitOptimizer
{
    private readonly OneBitAllReduce? _compression;
    private readonly ZeroOneAdamConfig _settings;
    // DeepSpeed's var_interval, var_counter, local_step_interval, local_step_counter, then lrs: one vector for checkpoints.
    private readonly double[] _policy = [1, 0, 1, 0];
    private readonly double[] _learningRateSum = [0];

    public ZeroOneAdam(AdamOptimizer adam, ZeroOneAdamConfig settings, ICommunicator communicator, IReadOnlyList<Range> tensors)
    {
        ArgumentNullException.ThrowIfNull(adam);
        ArgumentNullException.ThrowIfNull(settings);
        if (adam.Options.BiasCorrection || !adam.Options.AdamWMode || adam.Options.Lamb is not null)
            throw new ArgumentException("ZeroOneAdam's update has no bias correction and decoupled decay: build its AdamOptimizer from AdamOptions.FromConfig", nameof(adam));
        Adam = adam;
        _settings = settings;
        _compression = communicator.Size > 1 ? new OneBitAllReduce(communicator, tensors) : null;
        MomentumAccumulator = new float[adam.State.Length];
    }

    public string Name => "ZeroOneAdam";

    public AdamOptimizer Adam { get; }

    public long FreezeStep => _settings.VarFreezeStep;

    /// <summary>DeepSpeed's freeze_key: the variance is frozen and the steps are local.</summary>
    public bool Frozen => Adam.State.Step > _settings.VarFreezeStep;

    public bool LocalGradients => Frozen || (Adam.State.Step + 1) % VarInterval != 0;

    public long VarInterval => (long)_policy[0];

    public long LocalStepInterval => (long)_policy[2];

    /// <summary>u: the updates taken locally since the last synchronisation (the compression's scratch before the freeze).</summary>
    public float[] MomentumAccumulator { get; }

    public long BufferBytes => (_compression?.BufferBytes ?? 0) + (long)MomentumAccumulator.Length * sizeof(float);

    /// <summary>What <see cref="BufferBytes"/> will be for tensors of these lengths on <paramref name="ranks"/> ranks.</summary>
    public static long BufferBytesFor(IReadOnlyList<long> tensorLengths, int ranks)
    {
        long length = 0;
        foreach (long tensor in tensorLengths) length += tensor;
        return OneBitAdam.BufferBytesFor(tensorLengths, ranks) + length * sizeof(float);
    }

    public IReadOnlyList<OptimizerStateTensor> CheckpointState =>
    [
        new("momentum_accumulator", PerParameter: MomentumAccumulator),
        new("zero_one_adam_intervals", Values: _policy),
        new("lrs", Values: _learningRateSum),
    ];

    /// <summary>None: the intervals restart at 1, which only refreshes the variance or synchronises more often for a while.</summary>
    public string? WhyStateIsNeeded() => null;

    public void ResetCompressionErrors() => _compression?.ResetErrors();

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, (double Beta1, double Beta2)? betas = null)
    {
        int length = Adam.State.Length;
        if (parameters.Length != length || gradients.Length != length)
            throw new ArgumentException($"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, optimizer state {length}");
        bool frozen = Frozen;
        if (!frozen && !LocalGradients)
        {
            // A variance step: the engine averaged the gradients in full, and the step is Adam's (bias_correction off).
            Adam.Step(parameters, gradients, learningRate, betas);
            if (++_policy[1] == _settings.VarUpdateScaler)
            {
                _policy[1] = 0;
                _policy[0] *= 2;
            }
        }
        else
        {
            var (beta1, beta2) = Adam.CountStep(betas);
            var s = new Scalars((float)beta1, (float)(1.0 - beta1), (float)Adam.Options.Eps, (float)Adam.Options.WeightDecay, (float)learningRate);
            if (frozen) LocalStep(parameters, gradients, learningRate, s);
            else CompressedMomentumStep(parameters, gradients, s);
        }
        if (!frozen && Frozen)
        {
            // The errors so far belong to compressed gradients; from now on the compression carries accumulated updates.
            _compression?.ResetErrors();
            Array.Clear(MomentumAccumulator);
        }
    }

    /// <summary>A step between variance steps: the momentum takes the 1-bit compressed average of the ranks' gradients.</summary>
    private void CompressedMomentumStep(Span<float> p, ReadOnlySpan<float> g, in Scalars s)
    {
        var m = Adam.State.ExpAvg;
        var v = Adam.State.ExpAvgSq;
        ReadOnlySpan<float> averaged = g;
        if (_compression is not null)
        {
            g.CopyTo(MomentumAccumulator);
            _compression.Average(MomentumAccumulator);
            averaged = MomentumAccumulator;
        }
        OneBitKernels.FoldMomentum(m, averaged, s.Beta1, s.OneMinusBeta1);
        OneBitKernels.ApplyUpdate(p, m, v, s.LearningRate, s.Eps, s.WeightDecay);
    }

    private void LocalStep(Span<float> p, ReadOnlySpan<float> g, double learningRate, in Scalars s)
    {
        var m = Adam.State.ExpAvg;
        var v = Adam.State.ExpAvgSq;
        var u = MomentumAccumulator;
        _learningRateSum[0] += learningRate;
        OneBitKernels.FoldMomentum(m, g, s.Beta1, s.OneMinusBeta1);
        OneBitKernels.ApplyUpdate(p, m, v, s.LearningRate, s.Eps, s.WeightDecay, accumulated: u);
        if (Adam.State.Step % LocalStepInterval == 0) Synchronise(p, s);

        if (++_policy[3] == _settings.LocalStepScaler)
        {
            _policy[3] = 0;
            _policy[2] = Math.Min(_settings.LocalStepClipper, 2 * _policy[2]);
        }
    }

    /// <summary>Replaces this rank's local updates by the ranks' compressed average of them; the momentum follows.</summary>
    private void Synchronise(Span<float> p, in Scalars s)
    {
        var v = Adam.State.ExpAvgSq;
        OneBitKernels.UndoLocalUpdates(p, MomentumAccumulator, v, s.Eps);
        _compression?.Average(MomentumAccumulator);
        // DeepSpeed divides by the summed learning rate unguarded; with lr 0 throughout, u is 0 and so is m.
        OneBitKernels.ApplyAveragedUpdates(p, Adam.State.ExpAvg, MomentumAccumulator, v, s.Eps, (float)_learningRateSum[0]);
        _learningRateSum[0] = 0;
    }

    private readonly record struct Scalars(float Beta1, float OneMinusBeta1, float Eps, float WeightDecay, float LearningRate);
}
