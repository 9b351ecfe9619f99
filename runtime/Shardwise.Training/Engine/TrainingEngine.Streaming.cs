using System;
using System.Linq;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Offload;
using Shardwise.Training.Optim;
using Shardwise.Training.Precision;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

// ZeRO-2/3 through host memory: gradients streamed per slot into the accumulator, ZeRO-3 parameters gathered on demand.
public sealed partial class TrainingEngine
{
    /// <summary>
    /// Stages 2–3 through host memory: fp32 masters of this rank's pieces (taken from the parameters, or
    /// <paramref name="masters"/>), the reduced-gradient accumulator, the rounded pieces, and the listener that streams
    /// every final slot gradient into the accumulator.
    /// </summary>
    private void StartHostStreaming(SlotSharding slots, GradientStreamingOps<float> streamingOps, float[]? masters)
    {
        if (masters is null)
        {
            masters = new float[slots.OwnedLength];
            slots.ExtractOwned(_program.Parameters, masters);
            StorageRounding.RoundInPlace(_program.Parameters, Storage);
        }
        _accumulator = new float[slots.OwnedLength];
        _rounded = new float[slots.OwnedLength];
        StorageRounding.Round(masters, _rounded, Storage);
        if (Config.ZeroOptimization.OffloadParam.Device == OffloadDevice.Nvme)
        {
            // offload_param to NVMe (ZeRO-3): the rounded pieces go to their swap file; no host copy is kept.
            _parameterSwap = SwappedParameterPieces.Create(Config.ZeroOptimization.OffloadParam, slots, _rounded, Storage, _sharding.Communicator.Rank);
            _rounded = null;
        }
        _ownedPieces = _parameterSwap ?? (IOwnedPieces)new OwnedPieceArray(slots, _rounded!);
        if (SwapsOptimizerState(Config)) _swap = CreateSwap(masters); // NVMe: the host copy is dropped
        else _master = masters;
        _gradientStreamer = new GradientStreamer(slots, streamingOps, _accumulator, Storage);
        _program.GradientListener = _gradientStreamer;
    }

    /// <summary>
    /// ZeRO-3: serves the program's parameter requests through <paramref name="gatherer"/> (the device's, or host
    /// memory's). hpZ runs on the host path only (DeviceSlotExchangeFor leaves ZeRO++ to it); its gathers share the
    /// prefetch staging.
    /// </summary>
    private void StartParameterStreamer(IParameterGatherer gatherer)
    {
        var secondary = _nodes is not null && gatherer is HostParameterGatherer host
            ? new SecondaryPartition(_program.Layout, _nodes.Node, _streamingOps!, host.Staging)
            : null;
        _parameterStreamer = new ParameterStreamer(_slots!, _streamingOps!, gatherer, _streamingOps!.ParameterPlan!, secondary, () => _program.LayerKeep);
        if (_parameterPasses is not null) _parameterStreamer.FollowPasses(_parameterPasses);
        _program.ParameterListener = _parameterStreamer;
    }

    /// <summary>
    /// ZeRO-3: the passes one step runs (0 forward, 1 backward), in order, when they are not one forward then one
    /// backward: a pipeline stage's 1F1B schedule. The parameter prefetch follows them. No effect at other stages.
    /// </summary>
    public void FollowParameterPasses(System.Collections.Generic.IReadOnlyList<int> phases)
    {
        _parameterPasses = phases.ToArray();
        _parameterStreamer?.FollowPasses(_parameterPasses);
    }

    /// <summary>ZeRO-3: the slots kept whole (shorter than stage3_param_persistence_threshold), in layout order.</summary>
    internal static System.Collections.Generic.List<int> PersistentSlots(ParameterLayout layout, long threshold)
    {
        var persistent = new System.Collections.Generic.List<int>();
        for (int i = 0; i < layout.Slots.Count; i++)
        {
            if (layout.Slots[i].Length < threshold) persistent.Add(i);
        }
        return persistent;
    }

    /// <summary>
    /// ZeRO-3 prefetch staging: stage3_prefetch_bucket_size elements, cut so that the gather pool, the slots kept whole
    /// and the staging together stay within stage3_max_live_parameters, and never larger than the model.
    /// </summary>
    internal static long PrefetchElements(ZeroOptimizationConfig zero, long parameterArenaElements, long modelElements)
        => Math.Max(0, Math.Min(Math.Min(zero.Stage3PrefetchBucketSize, modelElements), zero.Stage3MaxLiveParameters - parameterArenaElements));

    /// <summary>ZeRO-3: parameter requests served from the prefetch buffer so far.</summary>
    public int PrefetchHits => _parameterStreamer?.PrefetchHits ?? 0;

    /// <summary>
    /// ZeRO-3 with hpZ: the traffic within this rank's node group (backward's gathers, and qgZ's first hop), apart from
    /// the world's; null otherwise.
    /// </summary>
    public Shardwise.Distributed.TrafficCounter? HpzGroupTraffic => _nodes?.Node.Traffic;

    /// <summary>ZeRO-3 with hpZ: the traffic between nodes among the ranks at this rank's place (qgZ's second hop); null otherwise.</summary>
    public Shardwise.Distributed.TrafficCounter? AcrossNodesTraffic => _nodes?.Across.Traffic;

    /// <summary>ZeRO-3 with progressive layer drop: parameter requests answered without a gather, their only reader dropped.</summary>
    public int DroppedLayerSkips => _parameterStreamer?.DroppedLayerSkips ?? 0;

    /// <summary>ZeRO-3 with hpZ: parameter requests served from the node group's copy so far (backward's).</summary>
    public int SecondaryGathers => _parameterStreamer?.SecondaryGathers ?? 0;

    /// <summary>ZeRO-3: parameter requests the program made so far (each served by one gather, ahead or on demand).</summary>
    public int ParameterRequests => _parameterStreamer?.Gathers ?? 0;

    /// <summary>
    /// ZeRO-3: refreshes the slots kept whole (below stage3_param_persistence_threshold) from every rank's pieces, in
    /// buckets of allgather_bucket_size elements.
    /// </summary>
    private void RefreshPersistentParameters()
    {
        if (_deviceSlots is not null) _deviceSlots.GatherInto(_persistentSlots, _persistentOffsets);
        else _slots!.GatherSlots(_persistentSlots, _ownedPieces!, _program.Parameters, _persistentOffsets);
    }

    /// <summary>
    /// Stages 2–3 on the host, after the rounded pieces changed: ZeRO-3 refreshes the slots kept whole (the rest is
    /// gathered when needed), ZeRO-2 gathers every rank's pieces into the working copy.
    /// </summary>
    private void PublishRoundedPieces()
    {
        _parameterStreamer?.ParametersChanged();
        if (_streamingOps!.StreamsParameters) RefreshPersistentParameters();
        else _slots!.GatherInto(_rounded, _program.Parameters);
    }

    /// <summary>Stages 2–3: gradient reduce-scatters and parameter all-gathers run so far (one per bucket).</summary>
    public (int ReduceBuckets, int GatherBuckets) SlotCollectives =>
        _deviceSlots is not null ? (_deviceSlots.ReduceBuckets, _deviceSlots.GatherBuckets)
        : _slots is null ? (0, 0) : (_slots.ReduceBuckets, _slots.GatherBuckets);

    /// <summary>The boundary step of ZeRO-2: the gradients were reduced per slot during backward into the accumulator.</summary>
    private StepOutcome StepStreamed()
    {
        long forwardUpdates = SchedulerStep; // the updates the forwards of this step's gradients ran after
        var gradients = _accumulator.AsSpan();
        var communicator = _sharding.Communicator;
        bool overflow = RankAgreement.Any(communicator, Storage == StorageType.Float16 && OverflowCheck.HasInfOrNaN(gradients));
        if (ModelParallel is not null) overflow = ModelParallel.Any(overflow);
        double scale = LossScaler.Scale;
        bool skip = LossScaler.Update(overflow);
        GlobalStep++;
        if (skip)
        {
            gradients.Clear();
            _program.ZeroGradients();
            _compression?.Learned?.DiscardGradients();
            return StepOutcome.SkippedOverflow;
        }

        if (_compression is not null)
        {
            // Pruned weights' gradients are zero, as w·mask's are (topk's mask scores take theirs first): each owned
            // piece is a run of the layout.
            for (int slot = 0; slot < _program.Layout.Slots.Count; slot++)
                _compression.MaskGradients(_slots!.OwnedPiece(_accumulator, slot), _slots.OwnedPieceLayoutOffset(slot), forwardUpdates,
                    _compression.Learned is null ? default : _slots.OwnedPiece(_master!, slot));
        }
        double sumOfSquares = RankAgreement.Sum(communicator, ModelParallel is null ? GradientClipping.SumOfSquares(gradients) : ModelParallelSumOfSquares());
        sumOfSquares += ReduceMaskScoreGradients(forwardUpdates, partitioned: communicator.Size > 1);
        if (ModelParallel is not null) sumOfSquares = ModelParallel.Sum(sumOfSquares);
        UnscaleAndClip(gradients, scale, sumOfSquares);

        var betas = AdvanceSchedule();
        StepMaskScores(forwardUpdates, scale, sumOfSquares, betas);
        if (_swap is not null)
        {
            StepSwapped(_swap, gradients, intoPieces: true, default, betas);
            PublishRoundedPieces();
        }
        else
        {
            Optimizer.Step(_master, gradients, LastLearningRate, betas);
            SyncWorkingParameters();
        }
        gradients.Clear();
        _program.ZeroGradients();
        return StepOutcome.Updated;
    }

    /// <summary>Stage 2 on part of a split model: Σ of squares of this rank's pieces that the model-parallel hook counts.</summary>
    private double ModelParallelSumOfSquares()
    {
        double sum = 0;
        for (int slot = 0; slot < _program.Layout.Slots.Count; slot++)
            sum += ModelParallel!.SumOfSquares(_slots!.OwnedPiece(_accumulator, slot), _slots.OwnedPieceLayoutOffset(slot));
        return sum;
    }
}
