using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Training.Progress;

/// <summary>
/// Two runs' loss curves compared step by step: the largest |Δ training loss| over the steps both reported, and the
/// relative difference of the final validation loss. They agree when both stay within their tolerances, every step
/// of one run is in the other, and no loss is NaN or infinite (a NaN would otherwise compare as "not larger").
/// </summary>
public sealed record LossCurveComparison(
    int Steps,
    double MaxLossDifference,
    long MaxLossDifferenceStep,
    long? FinalValidationStep,
    double? ReferenceFinalValidation,
    double? CandidateFinalValidation,
    double? FinalValidationRelativeDifference,
    IReadOnlyList<string> Problems)
{
    /// <summary>The defaults of <c>compare-curves</c>; docs/cuda.md ("Choosing the backend") shows the measurements behind them.</summary>
    /// <remarks>
    /// TinyGpt, 200 steps of tinyshakespeare (bench/configs/tinygpt-curve.json): fp32 reduction-order noise (other
    /// OpenBLAS kernels, other thread partitions, the emulated device) moved the loss by at most 6e-6 and the final
    /// validation loss by 1.3e-7 relative; a learning rate 1% off moved them by 0.055 and 1.8e-4, another seed by 0.23
    /// and 3.3e-3. The tolerances sit about 300× above the noise and below a 1% error.
    /// </remarks>
    public const double DefaultLossTolerance = 2e-3;
    public const double DefaultValidationTolerance = 1e-4;

    public bool Agree => Problems.Count == 0;

    public static LossCurveComparison Compare(LossCurve reference, LossCurve candidate, double lossTolerance, double validationTolerance)
    {
        var problems = new List<string>();
        var candidateByStep = candidate.Points.ToDictionary(p => p.Step);
        var referenceSteps = reference.Points.Select(p => p.Step).ToHashSet();
        // A run cut short (or one that reported on other steps) is named at its first step the other run lacks.
        if (reference.Points.Select(p => p.Step).FirstOrDefault(step => !candidateByStep.ContainsKey(step), -1) is var missing and >= 0)
            problems.Add($"step {missing} is in {reference.Path} but not in {candidate.Path} (its last step: {candidate.Points[^1].Step})");
        if (candidate.Points.Select(p => p.Step).FirstOrDefault(step => !referenceSteps.Contains(step), -1) is var extra and >= 0)
            problems.Add($"step {extra} is in {candidate.Path} but not in {reference.Path} (its last step: {reference.Points[^1].Step})");

        double maxDifference = 0;
        long maxStep = reference.Points[0].Step;
        int common = 0;
        LossCurve.Point? lastValidated = null;
        foreach (var point in reference.Points)
        {
            if (!candidateByStep.TryGetValue(point.Step, out var other)) continue;
            common++;
            if (!double.IsFinite(point.Loss) || !double.IsFinite(other.Loss))
            {
                problems.Add($"step {point.Step}: loss {point.Loss} against {other.Loss} (not finite)");
                continue;
            }
            double difference = Math.Abs(point.Loss - other.Loss);
            if (difference > maxDifference)
            {
                maxDifference = difference;
                maxStep = point.Step;
            }
            if (point.ValidationLoss is not null && other.ValidationLoss is not null) lastValidated = point;
        }
        if (common == 0) problems.Add("the two files share no step");
        if (maxDifference > lossTolerance)
            problems.Add($"max |Δloss| {maxDifference:G4} at step {maxStep} exceeds the tolerance {lossTolerance:G4}");

        double? referenceValidation = lastValidated?.ValidationLoss;
        double? candidateValidation = lastValidated is { } v ? candidateByStep[v.Step].ValidationLoss : null;
        double? relative = null;
        if (referenceValidation is { } a && candidateValidation is { } b)
        {
            relative = Math.Abs(a - b) / Math.Abs(a);
            if (!double.IsFinite(relative.Value))
                problems.Add($"final validation loss {a} against {b} at step {lastValidated!.Value.Step} (not finite)");
            else if (relative > validationTolerance)
                problems.Add($"final validation loss differs by {relative:G4} (relative) at step {lastValidated!.Value.Step}, over the tolerance {validationTolerance:G4}");
        }
        else
        {
            problems.Add("no step has a validation loss in both files (train with --eval-interval so that the last step is evaluated)");
        }

        return new LossCurveComparison(common, maxDifference, maxStep, lastValidated?.Step, referenceValidation, candidateValidation, relative, problems);
    }
}
