using System;
using System.Collections.Generic;

namespace Shardwise.Training.Optim;

/// <summary>
/// What the engine needs from a 1-bit optimizer (<see cref="OneBitAdam"/>, <see cref="OneBitLamb"/>,
/// <see cref="ZeroOneAdam"/>): on some steps it is fed gradients averaged over the ranks, on the others
/// (<see cref="LocalGradients"/>) each rank's own, because the optimizer then averages something itself, compressed.
/// </summary>
public interface IOneBitOptimizer
{
    /// <summary>DeepSpeed's name for it: OneBitAdam or OneBitLamb.</summary>
    string Name { get; }

    /// <summary>The moments, the step count and the hyper-parameters.</summary>
    AdamOptimizer Adam { get; }

    long FreezeStep { get; }

    /// <summary>True when the next step takes this rank's own gradients: the engine must not average them for it.</summary>
    bool LocalGradients { get; }

    /// <summary>What a checkpoint must hold beyond Adam's moments and step for a resumed run to continue bit for bit.</summary>
    IReadOnlyList<OptimizerStateTensor> CheckpointState { get; }

    /// <summary>
    /// Why the run cannot continue from a checkpoint without <see cref="CheckpointState"/> (another optimizer wrote it),
    /// or null when that state may start afresh.
    /// </summary>
    string? WhyStateIsNeeded();

    /// <summary>Host bytes held beyond Adam's state: the compression's errors and messages, and any state of its own.</summary>
    long BufferBytes { get; }

    /// <summary>Zeroes the compression errors (after loading a checkpoint: they belong to the saved run's ranks).</summary>
    void ResetCompressionErrors();

    /// <summary>One step on this rank's share of the work (see <see cref="LocalGradients"/> for what the gradients must be).</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, (double Beta1, double Beta2)? betas = null);
}
