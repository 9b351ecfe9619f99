using System;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>Which backend runs the tensor operations.</summary>
public enum BackendKind
{
    /// <summary><see cref="CpuOps{T}"/>.</summary>
    Cpu,
    /// <summary><see cref="CudaOps"/>; an error when no GPU is usable.</summary>
    Cuda,
    /// <summary>CUDA when <see cref="CudaRuntime.TryInitialize"/> succeeds, else the CPU.</summary>
    Auto,
}

/// <summary>CUDA was asked for and cannot be used; the message says why (from <see cref="CudaRuntime.TryInitialize"/>).</summary>
public sealed class BackendUnavailableException(string message) : InvalidOperationException(message);

/// <summary>
/// Chooses and creates the backend: <c>cpu</c>, <c>cuda</c> or <c>auto</c>. The CPU backend always stores fp32 (the
/// engine rounds parameters and gradients to 16 bits on the host); CUDA stores what it is given.
/// </summary>
public static class Backends
{
    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public const string Names = "cpu, cuda, auto";

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>auto</c> (case-insensitive).</summary>
    public static BackendKind Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "cpu" => BackendKind.Cpu,
        "cuda" or "gpu" => BackendKind.Cuda,
        "auto" => BackendKind.Auto,
        _ => throw new ArgumentException($"unknown device '{name}'; expected one of {Names}", nameof(name)),
    };

    /// <summary>
    /// The backend <paramref name="requested"/> means on this machine: <see cref="BackendKind.Auto"/> becomes CUDA
    /// when the driver initialises with a device, else the CPU; <see cref="BackendKind.Cuda"/> without a usable GPU
    /// throws <see cref="BackendUnavailableException"/> with the driver's reason.
    /// </summary>
    public static BackendKind Resolve(BackendKind requested) => Resolve(requested, CudaRuntime.TryInitialize);

    /// <summary><see cref="Resolve(BackendKind)"/> with the GPU probe given (for tests).</summary>
    public static BackendKind Resolve(BackendKind requested, CudaProbe probe)
    {
        switch (requested)
        {
            case BackendKind.Cpu:
                return BackendKind.Cpu;
            case BackendKind.Cuda:
                if (!probe(out string reason)) throw new BackendUnavailableException($"CUDA was requested but is not available: {reason}");
                return BackendKind.Cuda;
            case BackendKind.Auto:
                return probe(out _) ? BackendKind.Cuda : BackendKind.Cpu;
            default:
                throw new ArgumentOutOfRangeException(nameof(requested), requested, "Unknown backend kind.");
        }
    }

    /// <summary>
    /// <see cref="Resolve(BackendKind, CudaProbe)"/> with the line to print about it: <c>GPU: </c> and the driver's
    /// description of the device, or <c>CPU: </c> and why CUDA is not used (<paramref name="source"/>, e.g.
    /// <c>--device cpu</c>, when the CPU was asked for; the probe's first sentence when auto found no GPU).
    /// </summary>
    public static BackendChoice Choose(BackendKind requested, string source, CudaProbe probe)
    {
        if (requested == BackendKind.Cpu) return new BackendChoice(BackendKind.Cpu, $"CPU: asked for ({source})");
        if (probe(out string reason)) return new BackendChoice(BackendKind.Cuda, $"GPU: {reason}");
        if (requested == BackendKind.Cuda) throw new BackendUnavailableException($"CUDA was requested but is not available: {reason}");
        return new BackendChoice(BackendKind.Cpu, $"CPU: {FirstSentence(reason)}");
    }

    /// <summary><see cref="Choose(BackendKind, string, CudaProbe)"/> with the real probe.</summary>
    public static BackendChoice Choose(BackendKind requested, string source) => Choose(requested, source, CudaRuntime.TryInitialize);

    // The probe's message goes on to list remedies; the start-up line keeps only what went wrong.
    private static string FirstSentence(string text)
    {
        int end = text.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? text.TrimEnd('.') : text[..end];
    }

    /// <summary>
    /// Creates the backend <paramref name="kind"/> resolves to (see <see cref="Resolve(BackendKind)"/>). Without
    /// <paramref name="options"/>, CUDA runs on this process's device under mpirun (<see cref="LocalRankDevice"/>).
    /// </summary>
    public static ITensorOps<float> Create(BackendKind kind, CudaOpsOptions? options = null) => Resolve(kind) switch
    {
        BackendKind.Cuda => new CudaOps(options ?? new CudaOpsOptions(DeviceOrdinal: LocalRankDevice.Ordinal)),
        _ => new CpuOps<float>(),
    };

    /// <summary>
    /// <see cref="Create(BackendKind, CudaOpsOptions?)"/> without options, but with the arenas' element type: a CUDA
    /// backend stores <paramref name="storage"/> (fp16/bf16 with fp32 compute) on this process's device
    /// (<see cref="LocalRankDevice"/>); the CPU backend ignores it.
    /// </summary>
    public static ITensorOps<float> Create(BackendKind kind, StorageType storage) => Resolve(kind) switch
    {
        BackendKind.Cuda => new CudaOps(new CudaOpsOptions(DeviceOrdinal: LocalRankDevice.Ordinal, Storage: storage)),
        _ => new CpuOps<float>(),
    };
}

/// <summary>The backend chosen and one line saying which, for the start-up log (<see cref="Backends.Choose(BackendKind, string)"/>).</summary>
/// <param name="Kind">Cpu or Cuda, never Auto.</param>
/// <param name="Description">"GPU: " and the device, or "CPU: " and why CUDA is not used.</param>
public sealed record BackendChoice(BackendKind Kind, string Description);

/// <summary>Whether a GPU is usable, with a description or the reason it is not (<see cref="CudaRuntime.TryInitialize"/>).</summary>
public delegate bool CudaProbe(out string reason);
