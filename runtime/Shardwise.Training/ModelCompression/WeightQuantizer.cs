using System;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// DeepSpeed's weight quantizers, on one tensor split into equal groups, each with its own range: above two bits a
/// uniform grid (symmetric about zero, or asymmetric with a rounded zero point), at two bits ternary {−α, 0, α}, at one
/// bit binary ±mean|w|. The result is the dequantized value (what the forward then uses), written in place. The
/// per-element methods are compiled optimized from the first call: they run once per update, too seldom for tiered
/// compilation to reach them within a run's first steps.
/// </summary>
public static class WeightQuantizer
{
    /// <summary>Quantizes <paramref name="weights"/> in place; <paramref name="noiseSeed"/> keys stochastic rounding's noise.</summary>
    public static void Quantize(Span<float> weights, int groups, int bits, QuantizationType type, QuantizationRounding rounding, ulong noiseSeed)
    {
        if (groups < 1 || weights.Length % groups != 0)
            throw new ArgumentException($"{groups} quantization groups do not divide {weights.Length} elements", nameof(groups));
        if (bits < 1) throw new ArgumentOutOfRangeException(nameof(bits), bits, "at least one bit");
        if (bits <= 2 && (type != QuantizationType.Symmetric || rounding != QuantizationRounding.Nearest))
            throw new ArgumentException($"{bits}-bit quantization is symmetric with nearest rounding only, as in DeepSpeed");
        int size = weights.Length / groups;
        for (int g = 0; g < groups; g++)
        {
            var group = weights.Slice(g * size, size);
            if (bits == 1) Binary(group);
            else if (bits == 2) Ternary(group);
            else if (type == QuantizationType.Symmetric) Symmetric(group, bits, rounding, noiseSeed, (long)g * size);
            else Asymmetric(group, bits, rounding, noiseSeed, (long)g * size);
        }
    }

    private static void Symmetric(Span<float> group, int bits, QuantizationRounding rounding, ulong seed, long firstIndex)
    {
        float levels = MathF.Pow(2, bits);
        float scale = 2 * MathF.Abs(TensorPrimitives.MaxMagnitude(group)) / levels;
        if (scale == 0) return; // an all-zero group stays zero (DeepSpeed would divide by zero)
        OntoGrid(group, 0, scale, -levels / 2, levels / 2 - 1, rounding, seed, firstIndex);
    }

    /// <summary>
    /// x ← clamp(round((x − zero) / scale + noise), low, high) · scale + zero, in one pass: the grid's arithmetic, in
    /// torch's order (a true division, rounding half to even), with the noise of stochastic rounding.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OntoGrid(Span<float> values, float zero, float scale, float low, float high, QuantizationRounding rounding, ulong seed, long firstIndex)
    {
        int i = 0;
        if (rounding == QuantizationRounding.Nearest && Vector.IsHardwareAccelerated)
        {
            var (vZero, vScale, vLow, vHigh) = (new Vector<float>(zero), new Vector<float>(scale), new Vector<float>(low), new Vector<float>(high));
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var slot = values.Slice(i, Vector<float>.Count);
                var level = Vector.Round((new Vector<float>(slot) - vZero) / vScale);
                (Vector.Min(Vector.Max(level, vLow), vHigh) * vScale + vZero).CopyTo(slot);
            }
        }
        for (; i < values.Length; i++)
        {
            float level = MathF.Round((values[i] - zero) / scale + Noise(rounding, seed, firstIndex + i));
            values[i] = Math.Clamp(level, low, high) * scale + zero;
        }
    }

    private static void Asymmetric(Span<float> group, int bits, QuantizationRounding rounding, ulong seed, long firstIndex)
    {
        float levels = MathF.Pow(2, bits);
        float min = TensorPrimitives.Min(group), max = TensorPrimitives.Max(group);
        float scale = (max - min) / levels;
        if (scale == 0) return; // a constant group is exact already
        float zeroPoint = MathF.Round(min / scale) * scale;
        OntoGrid(group, zeroPoint, scale, 0, levels - 1, rounding, seed, firstIndex);
    }

    /// <summary>Weights above 0.7·mean|w| in magnitude become ±α, α their mean magnitude; the rest zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Ternary(Span<float> group)
    {
        double sum = 0;
        foreach (float w in group) sum += MathF.Abs(w);
        float threshold = (float)(0.7 * sum / group.Length);
        double kept = 0;
        int count = 0;
        foreach (float w in group)
        {
            if (MathF.Abs(w) > threshold)
            {
                kept += MathF.Abs(w);
                count++;
            }
        }
        float alpha = count == 0 ? 0 : (float)(kept / count);
        for (int i = 0; i < group.Length; i++)
            group[i] = group[i] > threshold ? alpha : group[i] < -threshold ? -alpha : 0;
    }

    /// <summary>Each weight becomes sign(w)·mean|w|.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Binary(Span<float> group)
    {
        double sum = 0;
        foreach (float w in group) sum += MathF.Abs(w);
        float mean = (float)(sum / group.Length);
        for (int i = 0; i < group.Length; i++) group[i] = MathF.Sign(group[i]) * mean;
    }

    /// <summary>Stochastic rounding's uniform noise in [−½, ½), a pure function of seed and element so every rank draws the same.</summary>
    private static float Noise(QuantizationRounding rounding, ulong seed, long index)
    {
        if (rounding == QuantizationRounding.Nearest) return 0;
        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(index + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (float)((z >> 40) * (1.0 / (1UL << 24))) - 0.5f;
    }
}
