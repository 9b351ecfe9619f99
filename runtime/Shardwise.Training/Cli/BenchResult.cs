using System.IO;
using System.Text;
using System.Text.Json;

namespace Shardwise.Training.Cli;

/// <summary>
/// One <c>bench</c> measurement. <see cref="ToJson"/> writes the keys bench/pytorch/gpt2_bench.py writes too, so
/// bench/gpu_report.py puts both sides in one table.
/// </summary>
public sealed record BenchResult
{
    public required string Model { get; init; }

    /// <summary>fp32, fp16 or bf16 (<see cref="BenchCommand.PrecisionName"/>).</summary>
    public required string Precision { get; init; }

    public required int MicroBatch { get; init; }

    public required int GradientAccumulation { get; init; }

    public int Ranks { get; init; } = 1;

    public int ZeroStage { get; init; }

    public required int WarmupSteps { get; init; }

    public required long TimedSteps { get; init; }

    public required double MsPerStep { get; init; }

    public required double TokensPerSecond { get; init; }

    public required TrainingFlops Flops { get; init; }

    /// <summary>The loss of the last micro-batch (random tokens: about ln V at the start).</summary>
    public float LastLoss { get; init; } = float.NaN;

    /// <summary>Timed steps the fp16 loss scaler skipped.</summary>
    public int SkippedSteps { get; init; }

    /// <summary>The CUDA device name; null on the CPU.</summary>
    public string? Device { get; init; }

    public long PeakDeviceBytesInUse { get; init; }

    public long DeviceBytesAllocated { get; init; }

    public long DeviceTotalBytes { get; init; }

    /// <summary>Dense fp16/bf16 peak MFU divides by; null when unknown.</summary>
    public double? PeakTflops { get; init; }

    /// <summary>Where <see cref="PeakTflops"/> came from (the table's card, or <c>--peak-tflops</c>).</summary>
    public string? PeakSource { get; init; }

    /// <summary>MFU as a fraction; null without a peak.</summary>
    public double? Mfu => PeakTflops is { } peak ? Flops.Utilization(TokensPerSecond, peak) : null;

    /// <summary>"43.5%", or why there is no figure.</summary>
    public string DescribeMfu() => Mfu is { } mfu ? $"{mfu * 100:F1}%" : "n/a (unknown peak; pass --peak-tflops)";

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("framework", "shardwise");
            w.WriteString("mode", Device is null ? "cpu" : "cuda");
            w.WriteString("model", Model);
            w.WriteString("device", Device ?? "cpu");
            w.WriteString("precision", Precision);
            w.WriteNumber("parameters", Flops.Parameters);
            w.WriteNumber("layers", Flops.Layers);
            w.WriteNumber("width", Flops.Width);
            w.WriteNumber("context", Flops.Context);
            w.WriteNumber("micro_batch", MicroBatch);
            w.WriteNumber("gradient_accumulation", GradientAccumulation);
            w.WriteNumber("ranks", Ranks);
            w.WriteNumber("zero_stage", ZeroStage);
            w.WriteNumber("warmup_steps", WarmupSteps);
            w.WriteNumber("timed_steps", TimedSteps);
            w.WriteNumber("ms_per_step", MsPerStep);
            w.WriteNumber("tokens_per_s", TokensPerSecond);
            w.WriteNumber("flops_per_token", Flops.PerToken);
            WriteNullable(w, "peak_tflops", PeakTflops);
            if (PeakSource is null) w.WriteNull("peak_source"); else w.WriteString("peak_source", PeakSource);
            WriteNullable(w, "mfu", Mfu);
            // The device's memory in use at the peak (cuMemGetInfo), the comparable of PyTorch's device_used_bytes.
            w.WriteNumber("device_used_bytes", PeakDeviceBytesInUse);
            w.WriteNumber("allocated_bytes", DeviceBytesAllocated);
            w.WriteNumber("device_total_bytes", DeviceTotalBytes);
            WriteNullable(w, "last_loss", float.IsFinite(LastLoss) ? LastLoss : null);
            w.WriteNumber("skipped_steps", SkippedSteps);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }
}
