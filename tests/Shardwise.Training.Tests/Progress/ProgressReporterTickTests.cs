using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class ProgressReporterTickTests
{
    private static StringWriter NewOutput() => new() { NewLine = "\n" };

    [TestMethod]
    public void Tick_WhenRedirected_PrintsNothing()
    {
        var output = NewOutput();
        var reporter = new ProgressReporter(output, isTerminal: false, totalSteps: 2000);
        for (long step = 1; step <= 50; step++)
            reporter.Tick(step, loss: 3.0, msPerStep: 180);
        reporter.Finish();

        Assert.AreEqual("", output.ToString());
        Assert.AreEqual(180, reporter.AverageMillisecondsPerStep, 1e-9, "ticks still feed the ETA");
    }

    [TestMethod]
    public void Tick_OnTerminal_RedrawsOneLineWithCarriageReturn()
    {
        var output = NewOutput();
        var reporter = new ProgressReporter(output, isTerminal: true, totalSteps: 2000);
        reporter.Tick(1000, loss: 2.0, msPerStep: 100);

        // 1000 steps left × 100 ms = 100 s.
        Assert.AreEqual("\r[###############---------------]  50.0% 1000/2000 | loss 2.0000 | eta 01:40", output.ToString());

        reporter.Tick(1001, loss: 1.9, msPerStep: 100);
        string text = output.ToString();
        Assert.AreEqual(2, text.Split('\r').Length - 1);
        Assert.DoesNotContain("\n", text);
    }

    [TestMethod]
    public void Tick_OnTerminal_BlanksLeftoversOfALongerBar()
    {
        var output = NewOutput();
        var reporter = new ProgressReporter(output, isTerminal: true, totalSteps: 2000);
        reporter.Tick(1, loss: 12.0, msPerStep: 100);   // "loss 12.0000"
        int longer = output.ToString().Length - 1;
        output.GetStringBuilder().Clear();

        reporter.Tick(2, loss: 2.0, msPerStep: 100);    // "loss 2.0000": one character shorter
        string redraw = output.ToString();
        Assert.AreEqual(longer, redraw.Length - 1, "padded to the previous bar's width");
        StringAssert.EndsWith(redraw, " ");
    }

    [TestMethod]
    public void Report_OnTerminal_ReplacesTheLiveBar()
    {
        var output = NewOutput();
        var reporter = new ProgressReporter(output, isTerminal: true, totalSteps: 2000);
        reporter.Tick(119, loss: 2.5, msPerStep: 182.3);
        int barLength = output.ToString().Length - 1;
        reporter.Report(ProgressSamples.Step120);

        string text = output.ToString();
        string clear = "\r" + new string(' ', barLength) + "\r";
        int reportStart = text.IndexOf(clear, StringComparison.Ordinal) + clear.Length;
        Assert.IsTrue(reportStart > clear.Length, "the bar is blanked before the report line");
        StringAssert.StartsWith(text[reportStart..], "step 120/2000 | loss 2.4312");
        StringAssert.EndsWith(text, "\n");

        // The bar was cleared, so finishing adds no extra blank line.
        reporter.Finish();
        Assert.AreEqual(text, output.ToString());
    }

    [TestMethod]
    public void Finish_EndsALiveBarLineOnce()
    {
        var output = NewOutput();
        var reporter = new ProgressReporter(output, isTerminal: true, totalSteps: 10);
        reporter.Tick(10, loss: 1.0, msPerStep: 5);
        reporter.Finish();
        reporter.Finish();

        StringAssert.EndsWith(output.ToString(), "100.0% 10/10 | loss 1.0000 | eta 00:00\n");
    }

    [TestMethod]
    public void Constructor_RejectsANonPositiveTotal() =>
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ProgressReporter(NewOutput(), isTerminal: true, totalSteps: 0));
}
