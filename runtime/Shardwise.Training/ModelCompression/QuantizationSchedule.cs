using System;
using System.Collections.Generic;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// The bits each weight_quantization group quantizes to, and fp16_mixed_quantize's ratio, as DeepSpeed's MoQ
/// quantizer moves them (deepspeed/runtime/quantize.py): it is called once per applied update from the offset on; at
/// call k a group still above its target drops one bit when k reaches its period, and the period doubles, so the bits
/// go slowly toward the target; the mixing ratio starts at 1, loses quantize_change_ratio per call (down to 0), and
/// returns to 1 at every bit switch. With quantize_weight_in_forward the target bits apply from the offset on, unmixed.
/// A pure function of the applied updates, so a resumed run recomputes it instead of saving it.
/// </summary>
public sealed class QuantizationSchedule
{
    private readonly WeightQuantizationConfig _config;
    private readonly int[] _bits;
    private readonly long[] _period;

    public QuantizationSchedule(WeightQuantizationConfig config)
    {
        _config = config;
        _bits = new int[config.Groups.Count];
        _period = new long[config.Groups.Count];
        Reset();
    }

    /// <summary>Quantizing calls made so far (MoQ's qsteps).</summary>
    public long Calls { get; private set; }

    /// <summary>The weight of the unquantized value in the working weight (1 − the quantized value's).</summary>
    public double UnquantizedRatio { get; private set; }

    /// <summary>Whether the weights are quantized after <paramref name="appliedUpdates"/> updates.</summary>
    public bool IsActive(long appliedUpdates) => _config.Enabled && appliedUpdates >= FirstQuantizedUpdate;

    /// <summary>
    /// The first working copy that is quantized: in-forward mode the one after the offset's update count; MoQ mode one
    /// later, since DeepSpeed's quantizer runs inside the update that follows the scheduler's switch.
    /// </summary>
    public long FirstQuantizedUpdate => _config.InForward ? _config.ScheduleOffset : _config.ScheduleOffset + 1;

    /// <summary>The bits <paramref name="group"/> quantizes to now.</summary>
    public int Bits(int group) => _config.InForward ? _config.Groups[group].TargetBits : _bits[group];

    /// <summary>
    /// Moves the schedule to the working copy after <paramref name="appliedUpdates"/> updates; returns the groups whose
    /// bits changed on the way, as (group, bits, the call at which it switched).
    /// </summary>
    public IReadOnlyList<(int Group, int Bits, long Call)> AdvanceTo(long appliedUpdates)
    {
        long calls = _config.InForward ? 0 : Math.Max(0, appliedUpdates - _config.ScheduleOffset);
        if (calls < Calls) Reset();
        List<(int, int, long)>? switches = null; // allocated only when a bit switches: once per period, not per update
        while (Calls < calls) Call(ref switches);
        return (IReadOnlyList<(int, int, long)>?)switches ?? [];
    }

    private void Reset()
    {
        Calls = 0;
        UnquantizedRatio = 1.0;
        for (int g = 0; g < _bits.Length; g++)
        {
            _bits[g] = _config.Groups[g].StartBits;
            _period[g] = _config.Groups[g].QuantizationPeriod;
        }
    }

    private void Call(ref List<(int, int, long)>? switches)
    {
        Calls++;
        // DeepSpeed lets the ratio step once below zero; it is held at zero here.
        if (_config.MixedFp16) UnquantizedRatio = Math.Max(0, UnquantizedRatio - _config.ChangeRatio);
        for (int g = 0; g < _bits.Length; g++)
        {
            if (_bits[g] == _config.Groups[g].TargetBits || Calls < _period[g]) continue;
            UnquantizedRatio = 1.0;
            _period[g] <<= 1;
            _bits[g]--;
            (switches ??= []).Add((g, _bits[g], Calls));
        }
    }

    /// <summary>The unquantized value's share in the working weight after the current call (0 without mixing).</summary>
    public double MixingRatio => _config.MixedFp16 && !_config.InForward ? UnquantizedRatio : 0;
}
