using System;
using Shardwise.Precision;

namespace Shardwise.Ops;

/// <summary>
/// Implemented by a backend that runs the optimizer step where its parameter and gradient arenas live (DeepSpeed's
/// fused Adam, FusedLion and Adagrad), so that a training step moves no arena between host and device. The backend keeps the
/// fp32 master weights and the optimizer's moments of the whole parameter arena beside it; the training engine keeps every decision on
/// the host and drives the backend in two phases per update:
/// <list type="number">
/// <item><see cref="MeasureGradients"/>: one small readback — whether the accumulated gradients hold inf/NaN, and their
/// sum of squares. The engine then reduces these over its ranks, lets the loss scaler decide skip-or-update, and
/// computes the clip coefficient;</item>
/// <item><see cref="AdamStep"/> (Adam or AdamW), <see cref="LionStep"/> (Lion) or <see cref="AdagradStep"/> (Adagrad) with the gradients multiplied by clip
/// coefficient / loss scale, updating masters and moments and writing the working parameters rounded to the storage
/// type.</item>
/// </list>
/// Lion keeps one state tensor, the momentum, in exp_avg. Its exp_avg_sq is the host step's too: never written, so
/// zero, and a checkpoint stores zeros for it on either path. A backend may therefore allocate exp_avg_sq on the first
/// <see cref="AdamStep"/> or <see cref="AdagradStep"/> (or a non-zero <see cref="WriteMoments"/>) and report zeros for it
/// until then, so that a Lion run holds one moment on the device, as DeepSpeed's FusedLion does. Adagrad keeps its sum
/// of squared gradients in exp_avg_sq (DeepSpeed's name for it) and never writes exp_avg, which stays zero.
/// Nothing happens on a skipped step: the engine just zeroes the gradients. The engine owns the step count (bias
/// corrections arrive in <see cref="FusedAdamStep"/>), the learning-rate schedule and the loss scale.
/// </summary>
public interface IFusedOptimizerOps
{
    /// <summary>
    /// Whether this backend can keep the optimizer state for working parameters stored as <paramref name="storage"/>
    /// (the engine falls back to its host step when not).
    /// </summary>
    bool SupportsFusedOptimizer(StorageType storage);

    /// <summary>
    /// Creates the state for elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>)
    /// of the parameter arena (this rank's ZeRO partition; the whole arena at stage 0) from the arena as it is now: the
    /// masters take its fp32 values unrounded, the moments start at zero, and then the working parameters of that range
    /// are rounded to <paramref name="storage"/> (round to nearest even, as <see cref="StorageRounding"/> does). In
    /// fp32 the backend may use the parameter arena itself as the masters. Every other method works on this range.
    /// Calling it again starts over.
    /// </summary>
    void CreateOptimizerState(StorageType storage, long start, long length);

    /// <summary>
    /// Inspects the state's range of the gradient arena as accumulated by backward (still multiplied by the loss scale): first, where the
    /// backend stores gradients wider than the storage type (the CPU's emulation of 16-bit storage), rounds them to it
    /// so that fp16 overflows to infinity as real 16-bit storage would; then reports inf/NaN (only when
    /// <paramref name="checkOverflow"/>) and Σ g² of the gradients as they are. The engine divides the norm by the loss
    /// scale itself, so that host and fused steps compute the very same norm for any scale.
    /// </summary>
    GradientMeasurement MeasureGradients(bool checkOverflow);

    /// <summary>One Adam/AdamW update of the state's range from the gradient arena multiplied by <see cref="FusedAdamStep.GradientMultiplier"/>.</summary>
    void AdamStep(in FusedAdamStep step);

    /// <summary>
    /// One Lion update of the state's range from the gradient arena multiplied by <see cref="FusedLionStep.GradientMultiplier"/>;
    /// exp_avg is Lion's momentum and exp_avg_sq is left alone.
    /// </summary>
    void LionStep(in FusedLionStep step);

    /// <summary>
    /// One Adagrad update of the state's range from the gradient arena multiplied by <see cref="FusedAdagradStep.GradientMultiplier"/>;
    /// exp_avg_sq is the sum of squared gradients and exp_avg is left alone.
    /// </summary>
    void AdagradStep(in FusedAdagradStep step);

    /// <summary>Copies the fp32 master weights of the state's range out (checkpoints).</summary>
    void ReadMasterWeights(Span<float> destination);

    /// <summary>Replaces the fp32 master weights and refreshes the working parameters of the range from them, rounded to the storage type.</summary>
    void WriteMasterWeights(ReadOnlySpan<float> source);

    /// <summary>Copies the first (exp_avg) and second (exp_avg_sq) moments out; exp_avg_sq is zeros where no <see cref="AdamStep"/> or <see cref="AdagradStep"/> wrote it (Lion).</summary>
    void ReadMoments(Span<float> expAvg, Span<float> expAvgSq);

    /// <summary>Replaces both moments (resuming from a checkpoint); Lion's zero exp_avg_sq may be dropped rather than stored.</summary>
    void WriteMoments(ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq);

    /// <summary>Frees the state (the engine went back to its host step); the working parameters stay as they are.</summary>
    void ReleaseOptimizerState();
}

/// <summary>What <see cref="IFusedOptimizerOps.MeasureGradients"/> found: inf/NaN, and Σ g² of the still-scaled gradients.</summary>
public readonly record struct GradientMeasurement(bool Overflow, double ScaledSumOfSquares);

/// <summary>
/// The scalars of one Adam step, computed on the host in double and rounded to float once (as DeepSpeed's
/// multi_tensor_adam receives them): per element
/// g = grad · <see cref="GradientMultiplier"/>; (L2 mode) g += wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
/// update = (m · <see cref="InverseBiasCorrection1"/>) / (√(v · <see cref="InverseBiasCorrection2"/>) + ε);
/// (AdamW mode) update += wd·p; p −= lr · update.
/// </summary>
public readonly record struct FusedAdamStep(
    float LearningRate,
    float Beta1,
    float OneMinusBeta1,
    float Beta2,
    float OneMinusBeta2,
    float Eps,
    float WeightDecay,
    bool AdamWMode,
    float InverseBiasCorrection1,
    float InverseBiasCorrection2,
    float GradientMultiplier);

/// <summary>
/// The scalars of one Lion step (DeepSpeed's FusedLion), rounded to float once on the host: per element
/// g = grad · <see cref="GradientMultiplier"/>; c = β1·m + (1−β1)·g; p = p·(1 − lr·wd) − lr·sign(c) (sign(0) = 0);
/// m = β2·m + (1−β2)·g. No ε and no bias correction.
/// </summary>
public readonly record struct FusedLionStep(
    float LearningRate,
    float Beta1,
    float OneMinusBeta1,
    float Beta2,
    float OneMinusBeta2,
    float WeightDecay,
    float GradientMultiplier);

/// <summary>
/// The scalars of one Adagrad step (DeepSpeed's CPU Adagrad), rounded to float once on the host: per element
/// g = grad · <see cref="GradientMultiplier"/> + wd·p (L2 decay); s = s + g²; p = p − (lr·g) / (√s + ε).
/// </summary>
public readonly record struct FusedAdagradStep(float LearningRate, float Eps, float WeightDecay, float GradientMultiplier);
