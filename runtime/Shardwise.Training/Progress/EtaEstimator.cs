using System;
using System.Globalization;

namespace Shardwise.Training.Progress;

/// <summary>
/// Estimates time remaining from an exponential moving average of milliseconds per step. An EMA follows real
/// changes (warm-up, evaluation pauses, throttling) within a few dozen steps, yet one slow step barely moves it.
/// </summary>
internal sealed class EtaEstimator
{
    // Weight of the newest step: about the last 1/Alpha = 10 steps dominate the average.
    private const double Alpha = 0.1;

    private double _averageMs = double.NaN;
    private long _lastStep = long.MinValue;

    public double AverageMillisecondsPerStep => _averageMs;

    /// <summary>
    /// Feeds the time of <paramref name="step"/>. A step already seen is ignored, so a caller that both ticks and
    /// reports the same step does not count it twice.
    /// </summary>
    public void Observe(long step, double millisecondsPerStep)
    {
        if (step <= _lastStep || !double.IsFinite(millisecondsPerStep) || millisecondsPerStep < 0)
            return;
        _lastStep = step;
        _averageMs = double.IsNaN(_averageMs) ? millisecondsPerStep : _averageMs + Alpha * (millisecondsPerStep - _averageMs);
    }

    /// <summary>Time left after <paramref name="step"/> of <paramref name="totalSteps"/>; null before any timing.</summary>
    public TimeSpan? Remaining(long step, long totalSteps)
    {
        if (double.IsNaN(_averageMs))
            return null;
        long left = Math.Max(0, totalSteps - step);
        return TimeSpan.FromMilliseconds(left * _averageMs);
    }

    /// <summary><c>mm:ss</c> under an hour, <c>h:mm:ss</c> beyond (hours are not wrapped into days), <c>--:--</c> when unknown.</summary>
    public static string Format(TimeSpan? eta)
    {
        if (eta is not { } t)
            return "--:--";
        long seconds = (long)Math.Round(t.TotalSeconds);
        long hours = seconds / 3600;
        long minutes = seconds / 60 % 60;
        long secs = seconds % 60;
        return hours > 0
            ? string.Format(CultureInfo.InvariantCulture, "{0}:{1:00}:{2:00}", hours, minutes, secs)
            : string.Format(CultureInfo.InvariantCulture, "{0:00}:{1:00}", minutes, secs);
    }
}
