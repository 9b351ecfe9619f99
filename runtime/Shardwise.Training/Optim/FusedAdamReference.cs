using System;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Training.Precision;

namespace Shardwise.Training.Optim;

/// <summary>
/// The CPU implementation of <see cref="IFusedOptimizerOps"/> over a backend whose arenas are host memory (the CPU
/// backend's <see cref="ITensorOps{T}.View"/>), and the reference for device implementations. It runs exactly the
/// engine's host step — <see cref="StorageRounding"/> of the gradients, <see cref="OverflowCheck"/>,
/// <see cref="GradientClipping.SumOfSquares(ReadOnlySpan{float})"/>, the multiply of <see cref="GradientClipping.Scale(Span{float}, float)"/>
/// and <see cref="AdamKernel"/>, <see cref="LionKernel"/> or <see cref="AdagradKernel"/> — so a training run through it equals the host path bit for bit.
/// exp_avg_sq is allocated by the first <see cref="AdamStep"/> or <see cref="AdagradStep"/> (or a non-zero <see cref="WriteMoments"/>): a Lion run
/// never holds it, and reads it as the zeros the host step stores.
/// In fp32 the parameter arena is the master copy (as in the engine's host step); in fp16/bf16 the masters are a
/// separate fp32 array and the arena holds them rounded. The state covers one range of the arenas (a ZeRO partition).
/// </summary>
public sealed class FusedAdamReference(ITensorOps<float> ops) : IFusedOptimizerOps
{
    private StorageType _storage;
    private float[]? _master;  // null in fp32: the parameter arena is the master
    private float[]? _expAvg;
    private float[]? _expAvgSq; // null until Adam or Adagrad needs it (Lion never does)
    private int _start, _length; // the range of the arenas the state covers

    public bool SupportsFusedOptimizer(StorageType storage) => storage is StorageType.Float32 or StorageType.Float16 or StorageType.BFloat16;

    public void CreateOptimizerState(StorageType storage, long start, long length)
    {
        if (!SupportsFusedOptimizer(storage)) throw new ArgumentOutOfRangeException(nameof(storage), storage, "unknown storage type");
        int arena = ops.View(Arena.Parameters).Length;
        if (start < 0 || length < 0 || start + length > arena)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{start}, {start + length}) is not within the parameter arena's {arena} elements");
        (_start, _length) = ((int)start, (int)length);
        Span<float> parameters = Parameters();
        _storage = storage;
        _master = storage == StorageType.Float32 ? null : parameters.ToArray();
        StorageRounding.RoundInPlace(parameters, storage);
        _expAvg = new float[_length];
        _expAvgSq = null;
    }

    public GradientMeasurement MeasureGradients(bool checkOverflow)
    {
        RequireState();
        Span<float> gradients = Gradients();
        StorageRounding.RoundInPlace(gradients, _storage);
        bool overflow = checkOverflow && OverflowCheck.HasInfOrNaN(gradients);
        return new GradientMeasurement(overflow, GradientClipping.SumOfSquares(gradients));
    }

    public void AdamStep(in FusedAdamStep step)
    {
        Span<float> master = StartStep(step.GradientMultiplier, out Span<float> gradients);
        AdamKernel.Step(master, gradients, _expAvg!, SecondMoment(), AdamStepScalars.FromFused(step), SimdWidth.Auto);
        FinishStep();
    }

    public void LionStep(in FusedLionStep step)
    {
        Span<float> master = StartStep(step.GradientMultiplier, out Span<float> gradients);
        LionKernel.Step(master, gradients, _expAvg!, AdamStepScalars.FromFused(step));
        FinishStep();
    }

    public void AdagradStep(in FusedAdagradStep step)
    {
        Span<float> master = StartStep(step.GradientMultiplier, out Span<float> gradients);
        AdagradKernel.Step(master, gradients, SecondMoment(), AdamStepScalars.FromFused(step));
        FinishStep();
    }

    /// <summary>Before an update, as the host step: the gradients times the multiplier; returns the masters to update.</summary>
    private Span<float> StartStep(float gradientMultiplier, out Span<float> gradients)
    {
        RequireState();
        gradients = Gradients();
        if (gradientMultiplier != 1f) GradientClipping.Scale(gradients, gradientMultiplier);
        return _master ?? Parameters();
    }

    /// <summary>After an update: the working copy rounded from the masters (in fp32 the arena is the master).</summary>
    private void FinishStep()
    {
        if (_master is not null) StorageRounding.Round(_master, Parameters(), _storage);
    }

    /// <summary>exp_avg_sq, allocated zeroed when Adam or Adagrad first needs it (a Lion run never holds it).</summary>
    private float[] SecondMoment() => _expAvgSq ??= new float[_length];

    public void ReadMasterWeights(Span<float> destination)
    {
        RequireState();
        ReadOnlySpan<float> master = _master ?? Parameters();
        RequireLength(destination.Length, master.Length, "master weights");
        master.CopyTo(destination);
    }

    public void WriteMasterWeights(ReadOnlySpan<float> source)
    {
        RequireState();
        Span<float> parameters = Parameters();
        RequireLength(source.Length, parameters.Length, "master weights");
        if (_master is null)
        {
            source.CopyTo(parameters);
            return;
        }
        source.CopyTo(_master);
        StorageRounding.Round(_master, parameters, _storage);
    }

    public void ReadMoments(Span<float> expAvg, Span<float> expAvgSq)
    {
        RequireState();
        RequireLength(expAvg.Length, _expAvg!.Length, "exp_avg");
        RequireLength(expAvgSq.Length, _length, "exp_avg_sq");
        _expAvg.CopyTo(expAvg);
        if (_expAvgSq is null) expAvgSq.Clear();
        else _expAvgSq.CopyTo(expAvgSq);
    }

    public void WriteMoments(ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        RequireState();
        RequireLength(expAvg.Length, _expAvg!.Length, "exp_avg");
        RequireLength(expAvgSq.Length, _length, "exp_avg_sq");
        expAvg.CopyTo(_expAvg);
        if (_expAvgSq is null && !expAvgSq.ContainsAnyExcept(0f)) return; // Lion's zeros: nothing to hold
        expAvgSq.CopyTo(SecondMoment());
    }

    public void ReleaseOptimizerState()
    {
        _master = null;
        _expAvg = null;
        _expAvgSq = null;
    }

    private Span<float> Parameters() => ops.View(Arena.Parameters).Slice(_start, _length);

    private Span<float> Gradients() => ops.View(Arena.Gradients).Slice(_start, _length);

    private void RequireState()
    {
        if (_expAvg is null) throw new InvalidOperationException("the fused optimizer has no state: call CreateOptimizerState first");
    }

    private static void RequireLength(int given, int expected, string what)
    {
        if (given != expected) throw new ArgumentException($"{what}: {given} elements given, the optimizer state covers {expected}");
    }
}
