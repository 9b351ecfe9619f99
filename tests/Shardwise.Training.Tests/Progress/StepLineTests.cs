using System.Globalization;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class StepLineTests
{
    private static string ReportOnce(StepMetrics metrics, bool isTerminal = false)
    {
        var output = new StringWriter { NewLine = "\n" };
        new ProgressReporter(output, isTerminal, metrics.TotalSteps).Report(metrics);
        return output.ToString();
    }

    [TestMethod]
    public void Report_PrintsEveryFieldInOneLine()
    {
        // ETA: (2000 - 120) steps × 182.3 ms = 342.7 s, shown rounded as 05:43.
        Assert.AreEqual(
            "step 120/2000 | loss 2.4312 | val 2.5100 | lr 9.87e-04 | scale 65536 | skipped 0 | gnorm 0.842 | " +
            "4,210 tok/s | 182.3 ms/step | mem params 3.2MiB grads 3.2MiB master 0B optim 6.4MiB act 12.1MiB buf 9.0KiB | " +
            "eta 05:43\n",
            ReportOnce(ProgressSamples.Step120));
    }

    [TestMethod]
    public void Report_AddsAccuracyAndWallClockBreakdownWhenPresent()
    {
        string line = ReportOnce(ProgressSamples.Step120 with
        {
            Accuracy = 0.875,
            WallClock = new WallClockBreakdown(ForwardMs: 60.12, BackwardMs: 110.0, StepMs: 12.2),
        });

        StringAssert.Contains(line, "| val 2.5100 | acc 87.5% | lr ");
        StringAssert.Contains(line, "| 182.3 ms/step | fwd 60.1 bwd 110.0 step 12.2 ms | mem ");
    }

    [TestMethod]
    public void Report_OmitsFieldsThatWereNotMeasured()
    {
        string line = ReportOnce(ProgressSamples.Step120 with { ValidationLoss = null });

        Assert.DoesNotContain("val", line);
        Assert.DoesNotContain("acc", line);
        Assert.DoesNotContain("fwd", line);
        StringAssert.StartsWith(line, "step 120/2000 | loss 2.4312 | lr 9.87e-04 |");
    }

    [TestMethod]
    public void Report_IgnoresTheCurrentCulture()
    {
        // InvariantGlobalization forbids named cultures, so build one with a comma decimal separator by hand.
        var commaCulture = (CultureInfo)CultureInfo.InvariantCulture.Clone();
        commaCulture.NumberFormat.NumberDecimalSeparator = ",";
        commaCulture.NumberFormat.NumberGroupSeparator = ".";
        CultureInfo previous = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = commaCulture;
        try
        {
            StringAssert.StartsWith(ReportOnce(ProgressSamples.Step120), "step 120/2000 | loss 2.4312 | val 2.5100 | lr 9.87e-04");
            StringAssert.Contains(ReportOnce(ProgressSamples.Step120), "| 4,210 tok/s | 182.3 ms/step |");
        }
        finally
        {
            CultureInfo.CurrentCulture = previous;
        }
    }

    [TestMethod]
    public void Report_EtaIsUnknownUntilAStepIsTimed()
    {
        string line = ReportOnce(ProgressSamples.Step120 with { MillisecondsPerStep = double.NaN });
        StringAssert.EndsWith(line, "| eta --:--\n");
    }
}
