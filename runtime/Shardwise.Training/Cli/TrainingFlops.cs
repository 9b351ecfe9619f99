using System;
using System.Collections.Generic;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// Training FLOPs per token of a transformer language model, PaLM's estimate (Chowdhery et al. 2022, appendix B, as
/// nanoGPT's <c>estimate_mfu</c> uses it): 6N for the matrix products of forward and backward over every parameter,
/// plus 12·L·d·T for attention's score and value products over a context of T. N counts every parameter (a tied head
/// once, position embeddings included), so a figure from bench/pytorch/gpt2_bench.py with the same N is comparable.
/// </summary>
/// <param name="Parameters">N: trainable parameters.</param>
/// <param name="Layers">L: attention layers.</param>
/// <param name="Width">d: the attention width (heads × head size) of each layer.</param>
/// <param name="Context">T: positions per sample.</param>
public sealed record TrainingFlops(long Parameters, int Layers, int Width, int Context)
{
    /// <summary>6N + 12·L·d·T.</summary>
    public double PerToken => 6.0 * Parameters + 12.0 * Layers * Width * Context;

    /// <summary>The formula with this model's numbers, for reports.</summary>
    public string Describe() =>
        $"6N + 12·L·d·T = 6·{Parameters:N0} + 12·{Layers}·{Width}·{Context} = {PerToken:N0} FLOPs per token";

    /// <summary>Model FLOPs utilisation: achieved training FLOP/s over the peak.</summary>
    public double Utilization(double tokensPerSecond, double peakTflops)
    {
        if (peakTflops <= 0) throw new ArgumentOutOfRangeException(nameof(peakTflops), peakTflops, "The peak must be positive.");
        return tokensPerSecond * PerToken / (peakTflops * 1e12);
    }

    /// <summary>
    /// Reads L, d and T from the generator's plans: each attention op leaves a "PATH.lse" buffer (its
    /// saved log-sum-exp, [heads, T]) and a "PATH.core" buffer [T, d] per sample in the activation plan (generator/Ir/OpBuilder.cs), so
    /// d is the core's elements over T. N is the layout's parameter count. A model without attention has L = d = 0.
    /// </summary>
    public static TrainingFlops Of(ParameterLayout layout, ActivationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(plan);
        const string LogSumExpSuffix = ".lse";
        var cores = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var buffer in plan.Buffers)
        {
            if (buffer.Role == BufferRole.Value && buffer.Name.EndsWith(".core", StringComparison.Ordinal))
                cores[buffer.Name] = buffer.ElementsPerSample;
        }

        var attention = new HashSet<string>(StringComparer.Ordinal);
        int width = 0;
        int context = plan.TokensPerSample;
        foreach (var buffer in plan.Buffers)
        {
            if (buffer.Role != BufferRole.Value || !buffer.Name.EndsWith(LogSumExpSuffix, StringComparison.Ordinal)) continue;
            string path = buffer.Name[..^LogSumExpSuffix.Length];
            if (!attention.Add(path)) continue; // a recomputed (checkpointed) block may list a buffer twice
            if (!cores.TryGetValue(path + ".core", out long core) || context <= 0 || core % context != 0)
                throw new InvalidOperationException($"attention '{path}' has no '{path}.core' buffer of T×d elements in the activation plan (T = {context})");
            int layerWidth = checked((int)(core / context));
            if (width != 0 && layerWidth != width)
                throw new InvalidOperationException($"attention '{path}' is {layerWidth} wide where an earlier layer is {width}: 12·L·d·T needs one width");
            width = layerWidth;
        }

        return new TrainingFlops(layout.ParameterCount, attention.Count, width, context);
    }
}
