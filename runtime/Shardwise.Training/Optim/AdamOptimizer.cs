using System;
using Shardwise.Ops;

namespace Shardwise.Training.Optim;

/// <summary>
/// Adam / AdamW over one flat fp32 buffer (a whole model, or one rank's ZeRO partition). The learning
/// rate is an argument of <see cref="Step"/> because the schedule, not the optimizer, owns it.
/// </summary>
public sealed class AdamOptimizer
{
    public AdamOptimizer(int parameterCount, AdamOptions options)
        : this(options, new AdamState(parameterCount))
    {
    }

    /// <summary>Resumes from a checkpointed <paramref name="state"/>.</summary>
    public AdamOptimizer(AdamOptions options, AdamState state)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(state);
        Options = options;
        State = state;
    }

    public AdamOptions Options { get; }

    public AdamState State { get; }

    /// <summary>One update of <paramref name="parameters"/> in place; the moments live in <see cref="State"/>.</summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate) =>
        Step(parameters, gradients, learningRate, SimdWidth.Auto);

    internal void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, SimdWidth width)
    {
        if (parameters.Length != State.Length || gradients.Length != State.Length)
        {
            throw new ArgumentException(
                $"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, optimizer state {State.Length}");
        }

        State.Step++;
        var scalars = ScalarsFor(State.Step, learningRate);
        AdamKernel.Step(parameters, gradients, State.ExpAvg, State.ExpAvgSq, scalars, width);
    }

    /// <summary>
    /// Counts one step, as <see cref="Step(Span{float}, ReadOnlySpan{float}, double)"/> does, and returns its scalars for a
    /// backend that keeps the moments and runs the update itself (<see cref="IFusedOptimizerOps"/>); <see cref="State"/>'s
    /// moments are then not touched.
    /// </summary>
    internal FusedAdamStep NextFusedStep(double learningRate, float gradientMultiplier)
    {
        State.Step++;
        return ScalarsFor(State.Step, learningRate).ToFused(gradientMultiplier);
    }

    private AdamStepScalars ScalarsFor(long step, double learningRate)
    {
        // Bias corrections are computed in double (as DeepSpeed does on the host) before rounding to float.
        var biasCorrection1 = Options.BiasCorrection ? 1.0 - Math.Pow(Options.Beta1, step) : 1.0;
        var biasCorrection2 = Options.BiasCorrection ? 1.0 - Math.Pow(Options.Beta2, step) : 1.0;
        return new AdamStepScalars(
            (float)learningRate,
            (float)Options.Beta1,
            (float)(1.0 - Options.Beta1),
            (float)Options.Beta2,
            (float)(1.0 - Options.Beta2),
            (float)Options.Eps,
            (float)Options.WeightDecay,
            Options.AdamWMode,
            (float)(1.0 / biasCorrection1),
            (float)(1.0 / biasCorrection2));
    }
}
