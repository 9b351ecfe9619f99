using System;
using Shardwise.Ops;

namespace Shardwise.Training.Optim;

/// <summary>
/// Adam / AdamW over one flat fp32 buffer (a whole model, or one rank's ZeRO partition), or Lamb where
/// <see cref="AdamOptions.Lamb"/> is set: the same moments and state, with a trust ratio per parameter tensor, which
/// is why Lamb needs the tensors' ranges in the buffer. The learning rate is an argument of <see cref="Step"/> because
/// the schedule, not the optimizer, owns it.
/// </summary>
public sealed class AdamOptimizer
{
    private readonly Range[] tensors;

    /// <param name="tensors">Lamb only: the parameter tensors' ranges in the buffer (each gets its own trust ratio).</param>
    public AdamOptimizer(int parameterCount, AdamOptions options, Range[]? tensors = null)
        : this(options, new AdamState(parameterCount), tensors)
    {
    }

    /// <summary>Resumes from a checkpointed <paramref name="state"/>.</summary>
    public AdamOptimizer(AdamOptions options, AdamState state, Range[]? tensors = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(state);
        if (options.Lamb is not null && tensors is null)
            throw new ArgumentException("Lamb's trust ratio is per parameter tensor: pass the tensors' ranges", nameof(tensors));
        Options = options;
        State = state;
        this.tensors = tensors ?? [];
    }

    public AdamOptions Options { get; }

    public AdamState State { get; }

    /// <summary>
    /// One update of <paramref name="parameters"/> in place; the moments live in <see cref="State"/>. <paramref name="betas"/>
    /// replaces the options' (β1, β2) for this step (a schedule's cyclic momentum); the bias corrections then use
    /// them, as PyTorch's and DeepSpeed's Adam read the group's current betas every step.
    /// </summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate,
        (double Beta1, double Beta2)? betas = null) =>
        Step(parameters, gradients, learningRate, SimdWidth.Auto, betas);

    internal void Step(Span<float> parameters, ReadOnlySpan<float> gradients, double learningRate, SimdWidth width,
        (double Beta1, double Beta2)? betas = null)
    {
        if (parameters.Length != State.Length || gradients.Length != State.Length)
        {
            throw new ArgumentException(
                $"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, optimizer state {State.Length}");
        }

        State.Step++;
        var (beta1, beta2) = BetasFor(betas);
        if (Options.Lamb is { } lamb)
        {
            LambKernel.Step(parameters, gradients, State.ExpAvg, State.ExpAvgSq,
                LambStepScalars.For(State.Step, learningRate, beta1, beta2, Options.Eps, Options.WeightDecay, Options.BiasCorrection, lamb),
                tensors);
            return;
        }

        var scalars = ScalarsFor(State.Step, learningRate, beta1, beta2);
        if (Options.Lion) LionKernel.Step(parameters, gradients, State.ExpAvg, scalars);
        else if (Options.Adagrad) AdagradKernel.Step(parameters, gradients, State.ExpAvgSq, scalars);
        else AdamKernel.Step(parameters, gradients, State.ExpAvg, State.ExpAvgSq, scalars, width);
    }

    /// <summary>
    /// Counts one step, as <see cref="Step(Span{float}, ReadOnlySpan{float}, double)"/> does, and returns its scalars for a
    /// backend that keeps the moments and runs the update itself (<see cref="IFusedOptimizerOps"/>); <see cref="State"/>'s
    /// moments are then not touched.
    /// </summary>
    internal FusedAdamStep NextFusedStep(double learningRate, float gradientMultiplier, (double Beta1, double Beta2)? betas = null)
    {
        if (Options.Lamb is not null || Options.Lion || Options.Adagrad)
            throw new InvalidOperationException($"{(Options.Lion ? "Lion's fused step is NextFusedLionStep" : Options.Adagrad ? "Adagrad's fused step is NextFusedAdagradStep" : "Lamb runs the host step")}: this is Adam's");
        return NextScalars(learningRate, betas).ToFused(gradientMultiplier);
    }

    /// <summary>Lion's counterpart of <see cref="NextFusedStep"/>: counts one step and returns its scalars (<see cref="IFusedOptimizerOps.LionStep"/>).</summary>
    internal FusedLionStep NextFusedLionStep(double learningRate, float gradientMultiplier, (double Beta1, double Beta2)? betas = null)
    {
        if (!Options.Lion) throw new InvalidOperationException("the optimizer is not Lion: its fused step is NextFusedStep");
        return NextScalars(learningRate, betas).ToFusedLion(gradientMultiplier);
    }

    /// <summary>Adagrad's counterpart of <see cref="NextFusedStep"/>: counts one step and returns its scalars (<see cref="IFusedOptimizerOps.AdagradStep"/>).</summary>
    internal FusedAdagradStep NextFusedAdagradStep(double learningRate, float gradientMultiplier, (double Beta1, double Beta2)? betas = null)
    {
        if (!Options.Adagrad) throw new InvalidOperationException("the optimizer is not Adagrad: its fused step is NextFusedStep");
        return NextScalars(learningRate, betas).ToFusedAdagrad(gradientMultiplier);
    }

    /// <summary>
    /// Counts one step and returns its scalars for an update applied chunk by chunk (<see cref="StepChunk"/>: the NVMe
    /// swap holds the masters and moments, not <see cref="State"/>). Adam is element-wise, so the chunks together equal
    /// one <see cref="Step(Span{float}, ReadOnlySpan{float}, double, (double Beta1, double Beta2)?)"/>.
    /// </summary>
    internal AdamStepScalars NextChunkedStep(double learningRate, (double Beta1, double Beta2)? betas = null)
    {
        if (Options.Lamb is not null) throw new InvalidOperationException("Lamb's trust ratio needs whole tensors: it cannot step in chunks");
        return NextScalars(learningRate, betas);
    }

    /// <summary>Counts one step and returns its scalars, for the updates that run elsewhere than <see cref="Step(Span{float}, ReadOnlySpan{float}, double)"/>.</summary>
    private AdamStepScalars NextScalars(double learningRate, (double Beta1, double Beta2)? betas)
    {
        State.Step++;
        var (beta1, beta2) = BetasFor(betas);
        return ScalarsFor(State.Step, learningRate, beta1, beta2);
    }

    /// <summary>
    /// Counts one step and returns its betas, for an optimizer that runs its own update over <see cref="State"/>'s moments
    /// (<see cref="OneBitLamb"/>, <see cref="ZeroOneAdam"/>).
    /// </summary>
    internal (double Beta1, double Beta2) CountStep((double Beta1, double Beta2)? betas = null)
    {
        State.Step++;
        return BetasFor(betas);
    }

    /// <summary>The update (Adam's, Lion's or Adagrad's) of one chunk with the scalars of <see cref="NextChunkedStep"/>.</summary>
    internal void StepChunk(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> expAvg, Span<float> expAvgSq, in AdamStepScalars scalars)
    {
        if (Options.Lion) LionKernel.Step(parameters, gradients, expAvg, scalars);
        else if (Options.Adagrad) AdagradKernel.Step(parameters, gradients, expAvgSq, scalars);
        else AdamKernel.Step(parameters, gradients, expAvg, expAvgSq, scalars, SimdWidth.Auto);
    }

    /// <summary>A schedule's betas for this step, else the options'.</summary>
    private (double Beta1, double Beta2) BetasFor((double Beta1, double Beta2)? scheduled) => scheduled ?? (Options.Beta1, Options.Beta2);

    private AdamStepScalars ScalarsFor(long step, double learningRate, double beta1, double beta2)
    {
        // Bias corrections are computed in double (as DeepSpeed does on the host) before rounding to float.
        var biasCorrection1 = Options.BiasCorrection ? 1.0 - Math.Pow(beta1, step) : 1.0;
        var biasCorrection2 = Options.BiasCorrection ? 1.0 - Math.Pow(beta2, step) : 1.0;
        return new AdamStepScalars(
            (float)learningRate,
            (float)beta1,
            (float)(1.0 - beta1),
            (float)beta2,
            (float)(1.0 - beta2),
            (float)Options.Eps,
            (float)Options.WeightDecay,
            Options.AdamWMode,
            (float)(1.0 / biasCorrection1),
            (float)(1.0 / biasCorrection2));
    }
}
