using System;
using System.Globalization;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Zero;

/// <summary>
/// What one data-parallel rank sends per optimizer step under a ZeRO config, before anything runs (<c>plan</c>), in
/// values of the host path's fp32 collectives: in collectives over all ranks (<see cref="World"/>) and, with hpZ,
/// within the rank's node (<see cref="Group"/>: backward's gathers, qgZ's first hop) and between nodes among the ranks
/// at its place (<see cref="Across"/>: qgZ's second hop). Ring collectives send (N−1)/N of what they move. Ψ is the layout padded as each
/// stage cuts it. Stages 0–1 reduce and gather once per step; 2–3 reduce each micro-batch's gradients; 3 gathers the
/// streamed slots for each micro-batch's forward and backward, and the slots kept whole once after the step. ZeRO++
/// sends qwZ's gathers as int8 blocks and qgZ's reduction as int4 blocks (<see cref="BlockQuantizer"/>: bits/32 of a
/// value plus one scale per 256); hpZ moves backward's gathers into the group. The two one-value all-reduces of a
/// step (overflow flag, gradient norm) are left out. A 16-bit communication_data_type halves every gradient reduction
/// (<see cref="GradientReduction"/>: two values per float; qgZ's blocks replace it). Tests hold it to the measured
/// traffic (ZeroPlusPlusTests, GradientCommunicationTests).
/// </summary>
public sealed record ZeroTraffic(double World, double Group, double Across = 0)
{
    public static ZeroTraffic For(ParameterLayout layout, ZeroOptimizationConfig zero, int ranks, int microBatches,
        GradientCommunicationConfig? communication = null)
    {
        if (ranks == 1) return new ZeroTraffic(0, 0);
        double share = (ranks - 1.0) / ranks;
        double wire = GradientReduction.WireFraction(communication ?? GradientCommunicationConfig.Default);
        if (zero.Stage == 0) return new ZeroTraffic(2 * layout.TotalElements * share * wire, 0);
        if (zero.Stage == 1) return new ZeroTraffic(new ShardMap(layout, ranks).PaddedElements * share * (1 + wire), 0);

        long padded = Padded(layout, ranks, _ => true);
        if (zero.Stage == 2) return new ZeroTraffic((microBatches * wire + 1) * padded * share, 0);

        var persistent = TrainingEngine.PersistentSlots(layout, zero.Stage3ParamPersistenceThreshold);
        bool Streamed(int slot) => !persistent.Contains(slot);
        long streamed = Padded(layout, ranks, Streamed);
        double weights = zero.QuantizedWeights ? Encoded(QuantizedAllGather.Bits) : 1;
        double gradients = zero.QuantizedGradients ? Encoded(QuantizedReduceScatter.Bits) : wire;
        int group = zero.HpzPartitionSize;
        // qgZ over hpZ's nodes reduces in two hops (QuantizedReduceScatter): (k−1)/k of the bucket within the node, then
        // 1/k − 1/N of it between nodes; otherwise one reduction over the world.
        bool twoHops = zero.QuantizedGradients && group > 1;
        double world = microBatches * ((twoHops ? 0 : padded * gradients) + streamed * weights * (group > 1 ? 1 : 2)) * share
                       + (padded - streamed) * share; // the slots kept whole, refreshed exactly after the step
        double withinGroup = group > 1 ? microBatches * Padded(layout, group, Streamed) * (group - 1.0) / group : 0;
        if (twoHops) withinGroup += microBatches * padded * gradients * (group - 1.0) / group;
        double across = twoHops ? microBatches * padded * gradients * (1.0 / group - 1.0 / ranks) : 0;
        return new ZeroTraffic(world, withinGroup, across);
    }

    /// <summary>Values sent per value of a quantized transfer: the packed integers and one fp32 scale per block.</summary>
    private static double Encoded(int bits) => bits / 32.0 + 1.0 / BlockQuantizer.BlockElements;

    private static long Padded(ParameterLayout layout, int ranks, Func<int, bool> include)
    {
        long padded = 0;
        for (int slot = 0; slot < layout.Slots.Count; slot++)
            if (include(slot)) padded += (layout.Slots[slot].Length + ranks - 1) / ranks * ranks;
        return padded;
    }

    /// <summary>"N values across all ranks" (and ", M within each hpZ group of k", ", A between the groups").</summary>
    public string Describe(int hpzGroup) => string.Create(CultureInfo.InvariantCulture,
        $"{World:N0} values across all ranks{(Group > 0 ? $", {Group:N0} within each hpZ group of {hpzGroup}" : "")}{(Across > 0 ? $", {Across:N0} between the groups (qgZ's second hop)" : "")}");
}
