using System;
using System.IO;

namespace Shardwise.Training.Progress;

/// <summary>
/// Prints training progress: a full DeepSpeed-style line per <see cref="Report"/>, and on an interactive terminal a
/// single live progress bar redrawn in place by <see cref="Tick"/> between reports. When output is redirected to a
/// file or a CI log the bar is suppressed, because carriage-return redraws turn into thousands of garbled lines
/// there; only the plain report lines are written. Not thread-safe: call it from the training loop only.
/// </summary>
public sealed class ProgressReporter
{
    private readonly TextWriter _output;
    private readonly bool _isTerminal;
    private readonly long _totalSteps;
    private readonly EtaEstimator _eta = new();

    // Length of the live bar currently on screen (0 when none), so a shorter redraw or a report can blank it out.
    private int _liveLength;

    /// <param name="output">Where to write, usually <see cref="Console.Out"/>.</param>
    /// <param name="isTerminal">
    /// Whether <paramref name="output"/> is an interactive terminal; pass <c>!Console.IsOutputRedirected</c> for the
    /// console (or use <see cref="ForConsole"/>).
    /// </param>
    /// <param name="totalSteps">Steps the run will take, for the bar's percentage and the ETA.</param>
    public ProgressReporter(TextWriter output, bool isTerminal, long totalSteps)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        _output = output;
        _isTerminal = isTerminal;
        _totalSteps = totalSteps;
    }

    /// <summary>A reporter on standard output that draws the live bar only when stdout is not redirected.</summary>
    public static ProgressReporter ForConsole(long totalSteps) => new(Console.Out, !Console.IsOutputRedirected, totalSteps);

    /// <summary>Average milliseconds per step behind the ETA; NaN before the first timed step.</summary>
    public double AverageMillisecondsPerStep => _eta.AverageMillisecondsPerStep;

    /// <summary>Writes one full report line for <paramref name="metrics"/>, replacing the live bar if one is shown.</summary>
    public void Report(StepMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _eta.Observe(metrics.Step, metrics.MillisecondsPerStep);
        string line = StepLine.Format(metrics, _eta.Remaining(metrics.Step, metrics.TotalSteps));
        ClearLiveLine();
        _output.WriteLine(line);
        // Flush per line: with a buffered writer a crash would otherwise lose the last reports, the ones that matter.
        _output.Flush();
    }

    /// <summary>
    /// Records a step's time for the ETA and, on a terminal, redraws the live bar (no newline). Prints nothing when
    /// output is redirected.
    /// </summary>
    public void Tick(long step, double loss, double msPerStep)
    {
        _eta.Observe(step, msPerStep);
        if (!_isTerminal)
            return;
        string bar = ProgressBar.Format(step, _totalSteps, loss, _eta.Remaining(step, _totalSteps));
        // Pad over any longer previous bar (e.g. the ETA shrank from h:mm:ss to mm:ss) so no stale characters remain.
        int pad = Math.Max(0, _liveLength - bar.Length);
        _output.Write('\r');
        _output.Write(bar);
        if (pad > 0)
            _output.Write(new string(' ', pad));
        _liveLength = bar.Length + pad;
        _output.Flush();
    }

    /// <summary>
    /// Ends the live bar's line so whatever prints next starts on a fresh line. Call once training stops; harmless
    /// when no bar is shown.
    /// </summary>
    public void Finish()
    {
        if (_liveLength == 0)
            return;
        _output.WriteLine();
        _output.Flush();
        _liveLength = 0;
    }

    private void ClearLiveLine()
    {
        if (_liveLength == 0)
            return;
        // Overwrite the bar with blanks and return to column 0, so the report line replaces it instead of trailing it.
        _output.Write('\r');
        _output.Write(new string(' ', _liveLength));
        _output.Write('\r');
        _liveLength = 0;
    }
}
