using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Training.Zero;
using Shardwise.Precision;

namespace Shardwise.Training.Engine;

// This rank's optimizer state as checkpoints see it: masters and moments, owned or assembled, and the way back in.
public sealed partial class TrainingEngine
{
    /// <summary>This rank's partition of the fp32 masters and Adam moments, as stored (for per-rank checkpoints).</summary>
    public (float[] Master, float[] ExpAvg, float[] ExpAvgSq) OwnedState()
    {
        if (_swap is not null) return _swap.ReadAll();
        if (_fused is not null)
        {
            var (expAvg, expAvgSq) = ReadFusedMoments(_fused);
            return (MasterWeights.ToArray(), expAvg, expAvgSq);
        }
        return (MasterWeights.ToArray(), Optimizer.State.ExpAvg, Optimizer.State.ExpAvgSq);
    }

    /// <summary>
    /// With <see cref="OptimizerStateOnNvme"/>, hands this rank's masters and moments to <paramref name="chunk"/> one swap chunk at a time, with the
    /// chunk's offset in the rank's partition: what <see cref="OwnedState"/> returns, without all of it in host memory.
    /// </summary>
    public void StreamOwnedState(OwnedStateChunk chunk)
    {
        if (_swap is null) throw new InvalidOperationException("the optimizer state is not swapped: use OwnedState");
        using var pass = _swap.Begin(Offload.SwapPassMode.Read);
        while (pass.Next(out long start, out var master, out var expAvg, out var expAvgSq)) chunk(start, master, expAvg, expAvgSq);
    }

    /// <summary>
    /// This rank's fp32 master weights: its ZeRO partition, or everything at stage 0. With the fused step in 16-bit
    /// storage this is a host copy read from the backend now; write into it, then call <see cref="SyncWorkingParameters"/>
    /// before the next step, to change the masters.
    /// </summary>
    public Span<float> MasterWeights
    {
        get
        {
            if (_swap is not null) return SwappedMasterWeights(_swap);
            // fp32 at stages 0–1: the parameter arena is the master copy (of this rank's flat partition).
            if (_fused is null || (Storage == StorageType.Float32 && _deviceSlots is null)) return _master ?? _sharding.Owned(_program.Parameters);
            _master ??= new float[OwnedElements];
            _fused.ReadMasterWeights(_master);
            _hostMasterIsCurrent = true;
            return _master;
        }
    }

    /// <summary>
    /// Full-layout fp32 master weights and Adam moments, assembled from every rank's partition (a collective: every
    /// rank must call it). Checkpoints store these, so a run can resume on any number of ranks.
    /// </summary>
    public (float[] Master, float[] ExpAvg, float[] ExpAvgSq) ExportFullState()
    {
        if (_slots is not null && _fused is not null)
        {
            var (pieceExpAvg, pieceExpAvgSq) = ReadFusedMoments(_fused);
            return (_slots.GatherFull(MasterWeights), _slots.GatherFull(pieceExpAvg), _slots.GatherFull(pieceExpAvgSq));
        }
        if (_swap is not null)
        {
            var (master, expAvg, expAvgSq) = _swap.ReadAll();
            return _slots is not null
                ? (_slots.GatherFull(master), _slots.GatherFull(expAvg), _slots.GatherFull(expAvgSq))
                : (_sharding.GatherFull(master), _sharding.GatherFull(expAvg), _sharding.GatherFull(expAvgSq));
        }
        if (_slots is not null)
            return (_slots.GatherFull(_master), _slots.GatherFull(Optimizer.State.ExpAvg), _slots.GatherFull(Optimizer.State.ExpAvgSq));
        if (_fused is not null)
        {
            var (expAvg, expAvgSq) = ReadFusedMoments(_fused);
            return (_sharding.GatherFull(MasterWeights), _sharding.GatherFull(expAvg), _sharding.GatherFull(expAvgSq));
        }
        return (_sharding.GatherFull(MasterWeights), _sharding.GatherFull(Optimizer.State.ExpAvg), _sharding.GatherFull(Optimizer.State.ExpAvgSq));
    }

    /// <summary>
    /// The layout ranges this rank's partition holds, as (layout offset, offset in the partition, length) in partition
    /// order: the whole layout without ZeRO partitions, else <see cref="PartitionSegments"/> for this rank.
    /// </summary>
    public IReadOnlyList<(long LayoutOffset, long OwnedOffset, long Length)> OwnedSegments()
    {
        var communicator = _sharding.Communicator;
        return Scheme is { } scheme
            ? PartitionSegments.For(_program.Layout, communicator.Size, scheme, communicator.Rank).ToArray()
            : [(0L, 0L, _program.Layout.TotalElements)];
    }

    /// <summary>Takes this rank's partition of full-layout master weights and Adam moments, then refreshes the working copy.</summary>
    public void ImportFullState(float[] master, float[] expAvg, float[] expAvgSq, long adamStep)
    {
        long total = _program.Layout.TotalElements;
        if (master.Length != total || expAvg.Length != total || expAvgSq.Length != total)
            throw new ArgumentException($"the layout has {total} elements; the state arrays {master.Length}, {expAvg.Length}, {expAvgSq.Length}");
        var segments = OwnedSegments();
        ImportOwnedState(adamStep, (start, ownedMaster, ownedExpAvg, ownedExpAvgSq) =>
        {
            foreach (var (place, target, count) in OwnedRanges.Within(segments, start, ownedMaster.Length))
            {
                int source = checked((int)place);
                master.AsSpan(source, count).CopyTo(ownedMaster.Slice(target, count));
                expAvg.AsSpan(source, count).CopyTo(ownedExpAvg.Slice(target, count));
                expAvgSq.AsSpan(source, count).CopyTo(ownedExpAvgSq.Slice(target, count));
            }
        });
    }

    /// <summary>
    /// Replaces this rank's masters and Adam moments with what <paramref name="fill"/> writes, then refreshes the working
    /// copy. <paramref name="fill"/> gets the partition in pieces (one for state in memory, one per swap chunk for state on
    /// NVMe), each with its offset in the partition, and must fill all three spans: a checkpoint's state never has to
    /// be in host memory at once, let alone the full layout.
    /// </summary>
    public void ImportOwnedState(long adamStep, OwnedStateFill fill)
    {
        _compression?.ForgetTakenMasks(); // masks due are taken from the imported weights when the working copy is refreshed
        if (_swap is not null)
        {
            using (var pass = _swap.Begin(Offload.SwapPassMode.Overwrite))
            {
                while (pass.Next(out long start, out var master, out var expAvg, out var expAvgSq)) fill(start, master, expAvg, expAvgSq);
            }
            (_master, _hostMasterIsCurrent) = (null, false);
            Optimizer.State.Step = adamStep;
            SyncWorkingParameters();
            return;
        }
        if (_fused is not null)
        {
            // The backend holds this rank's partition (everything at stage 0); the moments go to the backend only.
            var (master, expAvg, expAvgSq) = (new float[OwnedElements], new float[OwnedElements], new float[OwnedElements]);
            fill(0, master, expAvg, expAvgSq);
            _fused.WriteMoments(expAvg, expAvgSq);
            _fused.WriteMasterWeights(master); // refreshes the partition's working copy
            _hostMasterIsCurrent = false;
            Optimizer.State.Step = adamStep;
            GatherPartitionsOnDevice();
            return;
        }
        fill(0, _slots is not null ? _master : MasterWeights, Optimizer.State.ExpAvg, Optimizer.State.ExpAvgSq);
        Optimizer.State.Step = adamStep;
        OneBit?.ResetCompressionErrors(); // they belong to the saved run's ranks; DeepSpeed drops them on load too
        SyncWorkingParameters();
    }

    /// <summary>Restores the counters a checkpoint saved (weights and optimizer state are restored by the caller).</summary>
    public void RestoreCounters(long globalStep, long microStep)
    {
        GlobalStep = globalStep;
        MicroStep = microStep;
        if (_compression is not null) SyncWorkingParameters(); // the compression the restored step count calls for
    }

    /// <summary>
    /// After master weights were loaded from a checkpoint, refreshes the working copy from them. With the fused step in
    /// 16-bit storage, hands the host copy from <see cref="MasterWeights"/> to the backend, if it was taken since the
    /// last update (a stale copy is never written back).
    /// </summary>
    public void SyncWorkingParameters()
    {
        if (_fused is not null)
        {
            if ((Storage != StorageType.Float32 || _deviceSlots is not null) && _hostMasterIsCurrent) _fused.WriteMasterWeights(_master);
            GatherPartitionsOnDevice();
            return;
        }
        if (_swap is not null)
        {
            SyncFromSwap(_swap, intoPieces: _slots is not null, _slots is not null ? default : _sharding.Owned(_program.Parameters));
            if (_slots is not null) PublishRoundedPieces();
            else _sharding.GatherParameters(_program.Parameters);
            return;
        }
        if (_slots is not null)
        {
            StoreRoundedPieces(0, _master);
            PublishRoundedPieces();
            _compression?.Apply(_program.Parameters, SchedulerStep, Storage); // stage 2: every rank holds the whole working copy again
            return;
        }
        if (_master is not null) StorageRounding.Round(_master, _sharding.Owned(_program.Parameters), Storage);
        _sharding.GatherParameters(_program.Parameters);
        _compression?.Apply(_program.Parameters, SchedulerStep, Storage);
    }
}

/// <summary>A piece of a rank's optimizer state to fill, from element <paramref name="start"/> of its partition.</summary>
public delegate void OwnedStateFill(long start, Span<float> master, Span<float> expAvg, Span<float> expAvgSq);

/// <summary>One chunk of a rank's optimizer state, from element <paramref name="start"/> of its partition.</summary>
public delegate void OwnedStateChunk(long start, ReadOnlySpan<float> master, ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq);
