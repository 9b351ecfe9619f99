using System.Diagnostics;

namespace Shardwise.Training.Cli;

/// <summary>DeepSpeed's wall_clock_breakdown: time spent in forward, backward and step, summed over an interval.</summary>
internal sealed class StepTimers
{
    private readonly bool _enabled;
    private readonly Stopwatch _clock = new();
    private double _forward, _backward, _step, _last;

    public StepTimers(bool enabled) => _enabled = enabled;

    /// <summary>Whether wall_clock_breakdown asked for the times (then forward and backward run as separate calls).</summary>
    public bool Enabled => _enabled;

    public void Start()
    {
        if (!_enabled) return;
        _clock.Restart();
        _last = 0;
    }

    public void ForwardDone() => _forward += Lap();

    public void BackwardDone() => _backward += Lap();

    public void StepDone() => _step += Lap();

    /// <summary>Average milliseconds per optimizer step over <paramref name="steps"/>; null when disabled.</summary>
    public (double Forward, double Backward, double Step)? Average(int steps)
        => _enabled && steps > 0 ? (_forward / steps, _backward / steps, _step / steps) : null;

    public void Reset() => _forward = _backward = _step = 0;

    private double Lap()
    {
        if (!_enabled) return 0;
        double now = _clock.Elapsed.TotalMilliseconds;
        double lap = now - _last;
        _last = now;
        return lap;
    }
}
