using System;

namespace Shardwise.Training.Optim;

/// <summary>
/// What the engine needs from a 1-bit optimizer (<see cref="OneBitAdam"/>, <see cref="OneBitLamb"/>): until its freeze
/// step it is fed gradients averaged over the ranks; from then on (<see cref="Compressing"/>) each rank's own, because
/// the optimizer averages its momentum itself, compressed.
/// </summary>
public interface IOneBitOptimizer
{
    /// <summary>DeepSpeed's name for it: OneBitAdam or OneBitLamb.</summary>
    string Name { get; }

    /// <summary>The moments, the step count and the hyper-parameters.</summary>
    AdamOptimizer Adam { get; }

    long FreezeStep { get; }

    /// <summary>True when the next step is a compressed one: the engine must not average the gradients for it.</summary>
    bool Compressing { get; }

    /// <summary>Host bytes held beyond Adam's state: the compression's errors and messages, and any state of its own.</summary>
    long BufferBytes { get; }

    /// <summary>Zeroes the compression errors (after loading a checkpoint: they belong to the saved run's ranks).</summary>
    void ResetCompressionErrors();

    /// <summary>One step on this rank's share of the work (see <see cref="Compressing"/> for what the gradients must be).</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, (double Beta1, double Beta2)? betas = null);
}
