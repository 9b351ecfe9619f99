using System;
using System.Diagnostics;

namespace Shardwise.Training.Cli;

/// <summary>
/// DeepSpeed's wall_clock_breakdown: time spent in forward, backward and step, summed over an interval; and the times of
/// one step the FLOPS profiler asks for (<see cref="BeginProfiledStep"/>), timed whether or not the breakdown is on.
/// </summary>
internal sealed class StepTimers
{
    private readonly bool _enabled;
    private readonly Action? _settle;
    private readonly Stopwatch _clock = new();
    private double _forward, _backward, _step, _last;
    private bool _profiling;
    private (double Forward, double Backward, double Step) _profiled;

    /// <param name="settle">Waits for queued device work before each lap of a profiled step (a GPU runs ahead of the host).</param>
    public StepTimers(bool enabled, Action? settle = null)
    {
        _enabled = enabled;
        _settle = settle;
    }

    /// <summary>Whether the times are wanted (then forward and backward run as separate calls).</summary>
    public bool Enabled => _enabled || _profiling;

    public void Start()
    {
        if (!Enabled) return;
        if (_profiling) _settle?.Invoke();
        _clock.Restart();
        _last = 0;
    }

    public void ForwardDone() => Add(ref _forward, ref _profiled.Forward);

    public void BackwardDone() => Add(ref _backward, ref _profiled.Backward);

    public void StepDone() => Add(ref _step, ref _profiled.Step);

    /// <summary>Average milliseconds per optimizer step over <paramref name="steps"/>; null when the breakdown is off.</summary>
    public (double Forward, double Backward, double Step)? Average(int steps)
        => _enabled && steps > 0 ? (_forward / steps, _backward / steps, _step / steps) : null;

    public void Reset() => _forward = _backward = _step = 0;

    /// <summary>Times the next optimizer step's micro-batches apart, for <see cref="EndProfiledStep"/>.</summary>
    public void BeginProfiledStep()
    {
        _profiling = true;
        _profiled = default;
    }

    /// <summary>The profiled step's forward, backward and optimizer milliseconds, summed over its micro-batches.</summary>
    public (double Forward, double Backward, double Step) EndProfiledStep()
    {
        _profiling = false;
        return _profiled;
    }

    private void Add(ref double total, ref double profiled)
    {
        if (!Enabled) return;
        if (_profiling) _settle?.Invoke();
        double now = _clock.Elapsed.TotalMilliseconds;
        double lap = now - _last;
        _last = now;
        if (_enabled) total += lap;
        if (_profiling) profiled += lap;
    }
}
