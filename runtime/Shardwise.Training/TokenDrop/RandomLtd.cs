using System;
using System.Collections.Generic;
using Shardwise.Plans;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;

namespace Shardwise.Training.TokenDrop;

/// <summary>
/// Random-LTD as the trainers use it: the config's schedule and draws over the model's <c>[TokenDrop]</c> layers,
/// handed to the generated program as one <see cref="TokenKeep"/> per training micro-batch (the program gathers each
/// layer's kept tokens, runs the layer on them and scatters its output back). DeepSpeed changes the reserved length
/// after each optimizer step with the global step; so does <see cref="Keep"/>, from the engine's completed steps.
/// </summary>
public sealed class RandomLtd
{
    private readonly RandomLtdSampler sampler;

    private RandomLtd(RandomLtdSampler sampler, IReadOnlyList<string> layers)
    {
        this.sampler = sampler;
        Layers = layers;
    }

    /// <summary>
    /// The random-LTD a run uses: null when the config leaves it off; a clear error when the config does not fit the
    /// model's <c>[TokenDrop]</c> layers (none, a layer id past them, another total_layer_num).
    /// </summary>
    public static RandomLtd? For(DeepSpeedConfig config, IReadOnlyList<string> tokenDropLayers, string model, ulong seed)
    {
        if (config.RandomLtd is not { } ltd) return null;
        if (RandomLtdSampler.CheckModel(ltd, tokenDropLayers.Count, model) is { } problem)
        {
            string hint = tokenDropLayers.Count == 0
                ? "; mark its repeated blocks [TokenDrop] (the build says why one cannot drop tokens, SW0021), or set random_ltd.enabled to false"
                : "";
            throw new CliException($"{config.SourceName}: {problem}{hint}");
        }
        return new RandomLtd(new RandomLtdSampler(ltd, tokenDropLayers.Count, seed), tokenDropLayers);
    }

    /// <summary>The model's <c>[TokenDrop]</c> layers, in model order.</summary>
    public IReadOnlyList<string> Layers { get; }

    public RandomLtdSchedule Schedule => sampler.Schedule;

    /// <summary>
    /// Micro-batch <paramref name="microBatch"/>'s kept tokens in the step after <paramref name="completedSteps"/> optimizer
    /// steps; <paramref name="firstSample"/> is the global index of its first row (rank × micro-batch size on a data-parallel rank).
    /// Only the layers that drop tokens get indices: the program writes a layer's identity itself (<c>Ops.Positions</c>).
    /// </summary>
    public TokenKeep Keep(long completedSteps, int microBatch, int batch, int sequence, int firstSample = 0)
    {
        var counts = new int[sampler.Layers];
        var indices = new int[sampler.Layers][];
        for (int layer = 0; layer < counts.Length; layer++)
        {
            counts[layer] = sampler.Reserved(completedSteps, layer, sequence);
            if (counts[layer] == sequence)
            {
                indices[layer] = [];
                continue;
            }
            indices[layer] = new int[checked(batch * sequence)];
            sampler.Fill(completedSteps, microBatch, layer, batch, sequence, indices[layer], firstSample);
        }
        return new TokenKeep(counts, indices);
    }

    /// <summary>
    /// What the schedule saves, from the generated per-op FLOPs (<c>OperationCosts</c>), for <c>plan</c>: the share of a
    /// full step's forward + backward FLOPs the first step does, and the mean over the steps until every token runs
    /// (row-wise ops scale with the kept share, attention with its square; the listed layers' gather and scatter move
    /// rows and count no FLOPs).
    /// </summary>
    public string DescribeExpectedWork(IReadOnlyList<OperationCost> costs, int sequence)
    {
        double total = 0, rowWise = 0, attention = 0;
        foreach (var op in costs)
        {
            double flops = op.ForwardFlopsPerSample + op.BackwardFlopsPerSample;
            total += flops;
            int layer = op.IndexIn(Layers);
            if (layer < 0 || !sampler.Drops(layer)) continue;
            if (op.Operation == "Attention") attention += flops;
            else rowWise += flops;
        }
        double Share(long step)
        {
            double kept = Math.Min(Schedule.ReservedLength(step), sequence) / (double)sequence;
            return (total - rowWise - attention + (rowWise * kept) + (attention * kept * kept)) / Math.Max(1, total);
        }

        string listed = FormattableString.Invariant($"random-LTD: the listed layers are {100 * (rowWise + attention) / Math.Max(1, total):F1}% of a step's FLOPs; the first step does about {100 * Share(0):F1}% of the full step's");
        if (Schedule.FullFromStep(sequence) is not { } full)
            return listed + FormattableString.Invariant($", and every step from {Schedule.Config.RequireSteps:N0} on about {100 * Share(Schedule.Config.RequireSteps):F1}% (the schedule never reaches all {sequence} tokens)");
        if (full == 0) return listed;
        double sum = 0;
        for (long step = 0; step < full; step++) sum += Share(step);
        return listed + FormattableString.Invariant($", the {full:N0} steps until every token runs about {100 * sum / full:F1}% on average");
    }

    /// <summary>
    /// The static costs with each <c>[TokenDrop]</c> layer's ops scaled to the tokens the profiled micro-batches ran it on
    /// (the flops profiler's counts): row-wise ops by kept/sequence, attention by its square; averaged over the micro-batches.
    /// </summary>
    public IReadOnlyList<OperationCost> ExecutedCosts(IReadOnlyList<OperationCost> costs, IReadOnlyList<TokenKeep> microBatches, int sequence)
    {
        if (microBatches.Count == 0) return costs;
        var rows = new double[Layers.Count];
        var pairs = new double[Layers.Count];
        foreach (var keep in microBatches)
        {
            for (int i = 0; i < rows.Length; i++)
            {
                double share = Math.Min(keep.KeptCount(i), sequence) / (double)sequence;
                rows[i] += share / microBatches.Count;
                pairs[i] += share * share / microBatches.Count;
            }
        }
        var executed = new OperationCost[costs.Count];
        for (int k = 0; k < costs.Count; k++)
        {
            var op = costs[k];
            int layer = op.IndexIn(Layers);
            executed[k] = layer < 0 ? op : op.Scaled(op.Operation == "Attention" ? pairs[layer] : rows[layer]);
        }
        return executed;
    }

    /// <summary>The start-up line.</summary>
    public string Describe(int sequence) => Schedule.Describe(sequence);
}
