using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Cli;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

/// <summary>
/// <see cref="LossCurve"/>, <see cref="LossCurveComparison"/> and the <c>compare-curves</c> verb on metrics.csv files
/// written by <see cref="MetricsCsvWriter"/> itself: random decreasing curves, then one perturbation at a time.
/// </summary>
[TestClass]
public sealed class LossCurveComparisonTests
{
    private const int Steps = 40;

    /// <summary>A noisy decreasing loss curve (seeded), validation every 10 steps and at the last.</summary>
    private static (double Loss, double? Validation)[] RandomCurve(int seed)
    {
        var random = new Random(seed);
        var curve = new (double, double?)[Steps];
        for (int i = 0; i < Steps; i++)
        {
            double loss = 4.2 - 1.5 * i / Steps + 0.2 * (random.NextDouble() - 0.5);
            curve[i] = (loss, (i + 1) % 10 == 0 ? loss + 0.05 * random.NextDouble() : null);
        }
        return curve;
    }

    private static string Write(TempDirectory directory, string name, (double Loss, double? Validation)[] curve, Func<int, bool>? keep = null)
    {
        string path = directory.File(name);
        using var writer = new MetricsCsvWriter(path);
        for (int i = 0; i < curve.Length; i++)
        {
            if (keep is not null && !keep(i)) continue;
            writer.Append(ProgressSamples.Step120 with { Step = i + 1, TotalSteps = Steps, Loss = curve[i].Loss, ValidationLoss = curve[i].Validation });
        }
        return path;
    }

    private static LossCurveComparison Compare(string a, string b)
        => LossCurveComparison.Compare(LossCurve.Read(a), LossCurve.Read(b), LossCurveComparison.DefaultLossTolerance, LossCurveComparison.DefaultValidationTolerance);

    [TestMethod]
    public void ACurveAgreesWithItselfAndWithRoundingNoise()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(1);
        string a = Write(directory, "a.csv", curve);
        var noisy = Array.ConvertAll(curve, p => (p.Loss * (1 + 1e-6), p.Validation * (1 - 1e-6)));
        string b = Write(directory, "b.csv", noisy);

        var same = Compare(a, a);
        Assert.IsTrue(same.Agree, string.Join("; ", same.Problems));
        Assert.AreEqual(0, same.MaxLossDifference);
        Assert.AreEqual(Steps, same.Steps);
        Assert.AreEqual(40L, same.FinalValidationStep);

        var result = Compare(a, b);
        Assert.IsTrue(result.Agree, string.Join("; ", result.Problems));
        Assert.IsTrue(result.MaxLossDifference is > 0 and < 1e-5, $"{result.MaxLossDifference}");
        Assert.AreEqual(1e-6 * (1 + 1e-6), result.FinalValidationRelativeDifference!.Value, 1e-9);
    }

    [TestMethod]
    public void OneStepOffByMoreThanTheToleranceIsNamed()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(2);
        string a = Write(directory, "a.csv", curve);
        var shifted = (((double Loss, double? Validation)[])curve.Clone());
        shifted[22] = (shifted[22].Loss + 3 * LossCurveComparison.DefaultLossTolerance, null);
        var result = Compare(a, Write(directory, "b.csv", shifted));

        Assert.IsFalse(result.Agree);
        Assert.AreEqual(23L, result.MaxLossDifferenceStep);
        Assert.AreEqual(3 * LossCurveComparison.DefaultLossTolerance, result.MaxLossDifference, 1e-12);
        StringAssert.Contains(result.Problems[0], "at step 23 exceeds the tolerance");
    }

    [TestMethod]
    public void AFinalValidationLossOffByMoreThanTheRelativeToleranceFails()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(3);
        string a = Write(directory, "a.csv", curve);
        var changed = (((double Loss, double? Validation)[])curve.Clone());
        changed[^1] = (changed[^1].Loss, changed[^1].Validation * (1 + 3 * LossCurveComparison.DefaultValidationTolerance));
        var result = Compare(a, Write(directory, "b.csv", changed));

        Assert.IsFalse(result.Agree);
        Assert.AreEqual(0, result.MaxLossDifference, "the training losses are the same");
        Assert.AreEqual(3 * LossCurveComparison.DefaultValidationTolerance, result.FinalValidationRelativeDifference!.Value, 1e-9);
        StringAssert.Contains(result.Problems[0], "final validation loss differs");
    }

    [TestMethod]
    public void NaNLossesAndRunsCutShortNeverAgree()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(4);
        string a = Write(directory, "a.csv", curve);
        var diverged = (((double Loss, double? Validation)[])curve.Clone());
        diverged[30] = (double.NaN, null);
        var nan = Compare(a, Write(directory, "nan.csv", diverged));
        Assert.IsFalse(nan.Agree);
        StringAssert.Contains(nan.Problems[0], "step 31: loss");

        string shortRun = Write(directory, "short.csv", curve, keep: i => i < 25);
        var cut = Compare(a, shortRun);
        Assert.IsFalse(cut.Agree);
        StringAssert.Contains(cut.Problems[0], "step 26 is in");
        StringAssert.Contains(cut.Problems[0], "its last step: 25");
    }

    [TestMethod]
    public void AResumedRunKeepsTheLastRowOfAStep()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(5);
        string path = Write(directory, "resumed.csv", curve);
        // A resume from the step-20 checkpoint appends steps 21.. again: those rows are the run's final word.
        using (var writer = new MetricsCsvWriter(path))
            for (int i = 20; i < Steps; i++)
                writer.Append(ProgressSamples.Step120 with { Step = i + 1, TotalSteps = Steps, Loss = curve[i].Loss + 1, ValidationLoss = curve[i].Validation });
        var read = LossCurve.Read(path);
        Assert.AreEqual(Steps, read.Points.Count);
        Assert.AreEqual(curve[19].Loss, read.Points[19].Loss);
        Assert.AreEqual(curve[20].Loss + 1, read.Points[20].Loss);
    }

    [TestMethod]
    public void AFileWithoutTheLossColumnsIsAnErrorNamingIt()
    {
        using var directory = new TempDirectory();
        string path = directory.File("other.csv");
        File.WriteAllText(path, "step,accuracy\n1,0.5\n");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => LossCurve.Read(path));
        Assert.AreEqual($"{path}: no 'loss' column in the header; expected a metrics.csv written by the trainer", e.Message);

        File.WriteAllText(path, MetricsCsvWriter.Header + "\n" + "7,10,abc" + new string(',', 17) + "\n");
        var cell = Assert.ThrowsExactly<InvalidDataException>(() => LossCurve.Read(path));
        Assert.AreEqual($"{path}:2: loss 'abc' is not a number", cell.Message);
    }

    [TestMethod]
    public void TheVerbPrintsAVerdictAndExitsOneWhenTheCurvesDiffer()
    {
        using var directory = new TempDirectory();
        var curve = RandomCurve(6);
        string a = Write(directory, "a.csv", curve);
        var shifted = Array.ConvertAll(curve, p => (p.Loss + 0.01, p.Validation));
        string b = Write(directory, "b.csv", shifted);

        var output = new StringWriter();
        Assert.AreEqual(0, CompareCurvesCommand.Run(CliArguments.Parse(["compare-curves", "--reference", a, "--candidate", a]), output));
        StringAssert.StartsWith(output.ToString().Split('\n')[^2], "curves agree: max |Δloss| 0");

        output = new StringWriter();
        Assert.AreEqual(CompareCurvesCommand.Differ, CompareCurvesCommand.Run(CliArguments.Parse(["compare-curves", "--reference", a, "--candidate", b]), output));
        StringAssert.StartsWith(output.ToString().Split('\n')[^2], "curves differ: max |Δloss| 0.01 at step");

        output = new StringWriter();
        string[] loose = ["compare-curves", "--reference", a, "--candidate", b, "--loss-tolerance", "0.011"];
        Assert.AreEqual(0, CompareCurvesCommand.Run(CliArguments.Parse(loose), output), output.ToString());
    }
}
