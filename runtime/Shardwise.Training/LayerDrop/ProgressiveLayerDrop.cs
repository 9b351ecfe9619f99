using System;
using System.Collections.Generic;
using System.Globalization;
using Shardwise.Plans;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;

namespace Shardwise.Training.LayerDrop;

/// <summary>
/// Progressive layer drop (Zhang and He, 2020; DeepSpeed's <c>progressive_layer_drop</c>): which <c>[LayerDrop]</c>
/// layers each training micro-batch runs. The model-wide keep probability decays with the optimizer steps,
/// θ(t) = (1 − θ̄)·e^(−γt) + θ̄, and deeper layers are kept less often: layer i of L (from 1) with
/// p_i = 1 − (i / L)(1 − θ). A kept layer's branches are scaled by 1/p_i (the generated program does it), so a layer's
/// expected output is the full layer's and evaluation runs every layer unscaled.
/// <para>
/// DeepSpeed leaves the drop to the model's forward, which it hands θ (<c>pld_theta</c>), updated after each optimizer
/// step with the steps before it: the step after t completed steps sees θ(max(t − 1, 0)), and so does
/// <see cref="Theta"/>. The draws are a hash of (seed, step, micro-batch, layer), not a stateful generator: every rank
/// (data, pipeline and tensor) makes the same choice for the same micro-batch, a resumed run makes the same choices as
/// an unbroken one, and a micro-batch's backward sees what its forward saw.
/// </para>
/// </summary>
public sealed class ProgressiveLayerDrop
{
    private readonly ProgressiveLayerDropConfig config;
    private readonly ulong seed;

    public ProgressiveLayerDrop(ProgressiveLayerDropConfig config, IReadOnlyList<string> layers, ulong seed)
    {
        this.config = config ?? throw new ArgumentNullException(nameof(config));
        Layers = layers ?? throw new ArgumentNullException(nameof(layers));
        if (layers.Count == 0) throw new ArgumentException("progressive layer drop needs at least one [LayerDrop] layer", nameof(layers));
        this.seed = seed;
    }

    /// <summary>
    /// The drop a run uses: null when the config leaves it off; a clear error when it is on and the model has no
    /// <c>[LayerDrop]</c> layer (DeepSpeed, too, needs a model whose forward takes <c>pld_theta</c>).
    /// </summary>
    public static ProgressiveLayerDrop? For(DeepSpeedConfig config, IReadOnlyList<string> droppableLayers, string model, ulong seed)
    {
        if (!config.ProgressiveLayerDrop.Enabled) return null;
        if (droppableLayers.Count == 0)
            throw new CliException($"{config.SourceName}: $.progressive_layer_drop.enabled is true, but {model} has no layer it may skip: mark its " +
                "repeated blocks [LayerDrop] (each block's forward must be x = x + f(x), each branch ending in a Linear; the build says why " +
                "one is not, SW0020), or set enabled to false");
        return new ProgressiveLayerDrop(config.ProgressiveLayerDrop, droppableLayers, seed);
    }

    public IReadOnlyList<string> Layers { get; }

    public ProgressiveLayerDropConfig Config => config;

    /// <summary>The model-wide keep probability the step after <paramref name="completedSteps"/> optimizer steps trains with.</summary>
    public double Theta(long completedSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(completedSteps);
        long t = Math.Max(completedSteps - 1, 0);
        return (1 - config.Theta) * Math.Exp(-config.Gamma * t) + config.Theta;
    }

    /// <summary>The probability that layer <paramref name="layer"/> (its index in <see cref="Layers"/>) runs at keep probability <paramref name="theta"/>.</summary>
    public double KeepProbability(int layer, double theta) => 1 - (layer + 1) / (double)Layers.Count * (1 - theta);

    /// <summary>Micro-batch <paramref name="microBatch"/>'s layers, in the step after <paramref name="completedSteps"/> optimizer steps.</summary>
    public LayerKeep Sample(long completedSteps, int microBatch)
    {
        double theta = Theta(completedSteps);
        var kept = new bool[Layers.Count];
        var scales = new double[Layers.Count];
        for (int layer = 0; layer < kept.Length; layer++)
        {
            double p = KeepProbability(layer, theta);
            kept[layer] = Uniform(completedSteps, microBatch, layer) < p;
            scales[layer] = 1 / p;
        }
        return new LayerKeep(kept, scales);
    }

    /// <summary>The start-up line: the schedule and the layers it acts on.</summary>
    public string Describe() =>
        "progressive layer drop: keep probability θ(t) = (1 − " + F(config.Theta) + ")·exp(−" + F(config.Gamma) + "·t) + " + F(config.Theta) +
        ", layer i of " + Layers.Count.ToString(CultureInfo.InvariantCulture) + " kept with 1 − (i/" + Layers.Count.ToString(CultureInfo.InvariantCulture) +
        ")(1 − θ) and scaled by its inverse; layers " + string.Join(", ", Layers);

    /// <summary>
    /// What the drop saves once θ has settled at theta, from the model's static FLOPs per op (its
    /// <c>OperationCosts</c>): the share of block passes run, and of a step's forward + backward FLOPs. For <c>plan</c>.
    /// </summary>
    public string DescribeExpectedWork(IReadOnlyList<OperationCost> costs)
    {
        double theta = config.Theta, total = 0, expected = 0, inLayers = 0, keptShare = 0;
        var layerFlops = new double[Layers.Count];
        foreach (var op in costs)
        {
            double flops = op.ForwardFlopsPerSample + op.BackwardFlopsPerSample;
            total += flops;
            int layer = op.IndexIn(Layers);
            if (layer >= 0) layerFlops[layer] += flops;
            else expected += flops;
        }
        for (int i = 0; i < Layers.Count; i++)
        {
            double p = KeepProbability(i, theta);
            keptShare += p / Layers.Count;
            inLayers += layerFlops[i];
            expected += p * layerFlops[i];
        }
        string settled = config.Theta >= 1 || config.Gamma <= 0
            ? "θ stays " + F(Theta(0))
            : "θ is within 0.01 of " + F(theta) + " after about " + Math.Ceiling(Math.Log((1 - theta) / 0.01) / config.Gamma + 1).ToString("N0", CultureInfo.InvariantCulture) + " steps";
        return FormattableString.Invariant($"progressive layer drop: {settled}; then the [LayerDrop] layers run {100 * keptShare:F1}% of their passes, ") +
            FormattableString.Invariant($"and as they are {100 * inLayers / Math.Max(1, total):F1}% of a step's FLOPs, a step does about ") +
            FormattableString.Invariant($"{100 * expected / Math.Max(1, total):F1}% of the full step's (a skipped layer still runs its fused residual LayerNorms and zero fills)");
    }

    /// <summary>
    /// The FLOPs a step actually ran: each op of a <c>[LayerDrop]</c> layer weighted by the share of the step's
    /// micro-batches (<paramref name="microBatches"/>) that ran the layer, as DeepSpeed's profiler, which counts the
    /// module calls made, would see them. No micro-batches: the costs unchanged.
    /// </summary>
    public IReadOnlyList<OperationCost> ExecutedCosts(IReadOnlyList<OperationCost> costs, IReadOnlyList<LayerKeep> microBatches)
    {
        if (microBatches.Count == 0) return costs;
        var ran = new double[Layers.Count];
        foreach (var keep in microBatches)
            for (int i = 0; i < ran.Length; i++) ran[i] += keep.Kept(i) ? 1.0 / microBatches.Count : 0;
        var executed = new OperationCost[costs.Count];
        for (int k = 0; k < costs.Count; k++)
        {
            var op = costs[k];
            int layer = op.IndexIn(Layers);
            executed[k] = layer < 0 ? op : op.Scaled(ran[layer]);
        }
        return executed;
    }


    /// <summary>A uniform draw in [0, 1) from the hash of (seed, step, micro-batch, layer) (SplitMix64's finaliser, chained).</summary>
    private double Uniform(long step, int microBatch, int layer)
    {
        ulong h = Mix(seed ^ 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ (ulong)step);
        h = Mix(h ^ (ulong)(uint)microBatch);
        h = Mix(h ^ (ulong)(uint)layer);
        return (h >> 11) * (1.0 / (1UL << 53));
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static string F(double value) => value.ToString("0.######", CultureInfo.InvariantCulture);
}
