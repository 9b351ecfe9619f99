using System.IO;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>compare-curves --reference A/metrics.csv --candidate B/metrics.csv [--loss-tolerance T] [--val-tolerance R]</c>:
/// whether two training runs (e.g. CPU and GPU, same config and seed) followed the same loss curve. Prints the max
/// |Δloss| and where, the final validation losses and their relative difference, and a verdict line starting with
/// "curves agree" or "curves differ". Exit status 0 when they agree, 1 when they differ, 2 for a bad file or option.
/// </summary>
public static class CompareCurvesCommand
{
    public const int Differ = 1;

    public static int Run(CliArguments args, TextWriter log)
    {
        string reference = args.String("reference") ?? throw new CliException("compare-curves needs --reference FILE (a metrics.csv, e.g. the CPU run's)");
        string candidate = args.String("candidate") ?? throw new CliException("compare-curves needs --candidate FILE (a metrics.csv, e.g. the GPU run's)");
        double lossTolerance = args.Double("loss-tolerance") ?? LossCurveComparison.DefaultLossTolerance;
        double validationTolerance = args.Double("val-tolerance") ?? LossCurveComparison.DefaultValidationTolerance;
        args.RejectUnknown();
        if (lossTolerance < 0 || validationTolerance < 0) throw new CliException("--loss-tolerance and --val-tolerance must not be negative");

        var result = LossCurveComparison.Compare(LossCurve.Read(reference), LossCurve.Read(candidate), lossTolerance, validationTolerance);
        log.WriteLine($"reference {reference}, candidate {candidate}: {result.Steps} common reported steps");
        log.WriteLine($"max |Δloss| {result.MaxLossDifference:G4} at step {result.MaxLossDifferenceStep} (tolerance {lossTolerance:G4})");
        if (result.FinalValidationRelativeDifference is { } relative)
            log.WriteLine($"final validation loss at step {result.FinalValidationStep}: {result.ReferenceFinalValidation:F6} vs {result.CandidateFinalValidation:F6}, " +
                          $"relative difference {relative:G4} (tolerance {validationTolerance:G4})");
        foreach (var problem in result.Problems) log.WriteLine("  " + problem);
        log.WriteLine(result.Agree
            ? $"curves agree: max |Δloss| {result.MaxLossDifference:G3}, final val_loss relative Δ {result.FinalValidationRelativeDifference:G3}"
            : $"curves differ: {result.Problems[0]}");
        return result.Agree ? 0 : Differ;
    }
}
