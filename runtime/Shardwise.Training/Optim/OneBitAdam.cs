using System;
using System.Collections.Generic;
using Shardwise.Distributed;
using Shardwise.Training.Compression;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's OneBitAdam (1-bit Adam, arXiv:2102.02888) on a flat buffer of parameter tensors:
/// <list type="bullet">
/// <item>Warm-up, the first freeze_step steps: Adam on the gradients the engine averaged in full precision, with no bias
/// correction and the decay added to the update (m/(√v+ε) + wd·p), as DeepSpeed's OnebitAdam computes it.</item>
/// <item>Then the variance is frozen and the engine stops averaging gradients: each rank folds its own gradient into
/// the momentum, the momentum is averaged with 1-bit compression and error feedback (<see cref="OneBitAllReduce"/>),
/// and p −= lr·(m/(√v+ε) + wd·p). Every rank ends with the same m, so the parameters stay equal. On one rank there is
/// nothing to average and nothing is compressed (DeepSpeed skips it too).</item>
/// </list>
/// The moments and the step count live in <see cref="Adam"/>'s state, so checkpoints hold them as Adam's; the
/// compression errors are not saved, and a resumed run starts them at zero (DeepSpeed discards them on load too).
/// </summary>
public sealed class OneBitAdam : IOneBitOptimizer
{
    private readonly OneBitAllReduce? _compression;

    public OneBitAdam(AdamOptimizer adam, long freezeStep, ICommunicator communicator, IReadOnlyList<Range> tensors)
    {
        ArgumentNullException.ThrowIfNull(adam);
        ArgumentOutOfRangeException.ThrowIfNegative(freezeStep);
        if (adam.Options.BiasCorrection || !adam.Options.AdamWMode)
            throw new ArgumentException("OneBitAdam's update has no bias correction and decoupled decay: build its AdamOptimizer from AdamOptions.FromConfig", nameof(adam));
        Adam = adam;
        FreezeStep = freezeStep;
        _compression = communicator.Size > 1 ? new OneBitAllReduce(communicator, tensors) : null;
    }

    public string Name => "OneBitAdam";

    /// <summary>The moments, the step count and the hyper-parameters.</summary>
    public AdamOptimizer Adam { get; }

    public long FreezeStep { get; }

    /// <summary>True when the next step is a compressed one: the engine must not average the gradients for it.</summary>
    public bool Compressing => Adam.State.Step >= FreezeStep;

    public bool LocalGradients => Compressing;

    /// <summary>None: the moments and the step count are Adam's, and the compression errors are not saved.</summary>
    public IReadOnlyList<OptimizerStateTensor> CheckpointState => [];

    public string? WhyStateIsNeeded() => null;

    /// <summary>Host bytes of the compression (errors and messages); 0 on one rank.</summary>
    public long BufferBytes => _compression?.BufferBytes ?? 0;

    /// <summary>What <see cref="BufferBytes"/> will be for tensors of these lengths on <paramref name="ranks"/> ranks.</summary>
    public static long BufferBytesFor(IReadOnlyList<long> tensorLengths, int ranks) => ranks > 1 ? OneBitAllReduce.BufferBytesFor(tensorLengths, ranks) : 0;

    /// <summary>Zeroes the compression errors (after loading a checkpoint).</summary>
    public void ResetCompressionErrors() => _compression?.ResetErrors();

    /// <summary>
    /// One step. Before <see cref="FreezeStep"/> steps, <paramref name="gradients"/> must be averaged over the ranks;
    /// from then on (<see cref="Compressing"/>) they are this rank's own.
    /// </summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, (double Beta1, double Beta2)? betas = null)
    {
        if (!Compressing)
        {
            Adam.Step(parameters, gradients, learningRate, betas);
            return;
        }

        var s = Adam.NextChunkedStep(learningRate, betas);
        var m = Adam.State.ExpAvg;
        var v = Adam.State.ExpAvgSq;
        if (parameters.Length != m.Length || gradients.Length != m.Length)
            throw new ArgumentException($"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, optimizer state {m.Length}");
        OneBitKernels.FoldMomentum(m, gradients, s.Beta1, s.OneMinusBeta1);
        _compression?.Average(m);
        OneBitKernels.ApplyUpdate(parameters, m, v, s.LearningRate, s.Eps, s.WeightDecay);
    }
}
