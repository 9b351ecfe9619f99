using System;
using System.Globalization;
using System.Text;

namespace Shardwise.Training.Progress;

/// <summary>
/// The one-line, DeepSpeed-style summary of a step. Kept apart from <see cref="ProgressReporter"/> so the format is
/// a pure function of its inputs. Every number goes through the invariant culture: logs are parsed by scripts and
/// compared across machines, so a German locale must not turn <c>2.4312</c> into <c>2,4312</c>.
/// </summary>
internal static class StepLine
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Format(StepMetrics m, TimeSpan? eta)
    {
        var line = new StringBuilder(256);
        line.Append(Inv, $"step {m.Step}/{m.TotalSteps}");
        line.Append(Inv, $" | loss {m.Loss:0.0000}");
        if (m.ValidationLoss is { } val)
            line.Append(Inv, $" | val {val:0.0000}");
        if (m.Accuracy is { } acc)
            line.Append(Inv, $" | acc {acc * 100:0.0}%");
        // Two significant decimals in scientific notation: schedules span 1e-3 to 1e-7, where fixed point says nothing.
        line.Append(Inv, $" | lr {m.LearningRate:0.00e+00}");
        line.Append(Inv, $" | scale {m.LossScale:0.####}");
        line.Append(Inv, $" | skipped {m.SkippedSteps}");
        line.Append(Inv, $" | gnorm {m.GradientNorm:0.000}");
        line.Append(Inv, $" | {m.TokensPerSecond:#,0} tok/s");
        line.Append(Inv, $" | {m.MillisecondsPerStep:0.0} ms/step");
        if (m.WallClock is { } wc)
            line.Append(Inv, $" | fwd {wc.ForwardMs:0.0} bwd {wc.BackwardMs:0.0} step {wc.StepMs:0.0} ms");
        MemoryBreakdown mem = m.Memory;
        line.Append(" | mem params ").Append(ByteSize.Format(mem.ParametersBytes))
            .Append(" grads ").Append(ByteSize.Format(mem.GradientsBytes))
            .Append(" master ").Append(ByteSize.Format(mem.MasterBytes))
            .Append(" optim ").Append(ByteSize.Format(mem.OptimizerBytes))
            .Append(" act ").Append(ByteSize.Format(mem.ActivationBytes))
            .Append(" buf ").Append(ByteSize.Format(mem.BufferBytes));
        line.Append(" | eta ").Append(EtaEstimator.Format(eta));
        return line.ToString();
    }
}
