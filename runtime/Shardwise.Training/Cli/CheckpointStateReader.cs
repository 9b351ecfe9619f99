using System;
using System.Collections.Generic;
using System.IO;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// Reads a checkpoint's fp32 masters and Adam moments by layout range, whichever way it was written (named one-process
/// files, or one ZeRO partition file per writing rank), so a rank loads only the ranges it owns: resuming costs each
/// rank its partition in host memory, not the full layout three times over.
/// </summary>
public abstract class CheckpointStateReader : IDisposable
{
    protected CheckpointStateReader(ParameterLayout layout, long adamStep)
    {
        Layout = layout;
        AdamStep = adamStep;
    }

    /// <summary>The layout the ranges refer to: the whole model's.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>Adam's step count, for bias correction.</summary>
    public long AdamStep { get; }

    /// <summary>
    /// Opens the state of <paramref name="checkpoint"/>, checking that it matches <paramref name="layout"/> before anything
    /// is read. <paramref name="weightsOnly"/> needs only the masters (sampling, consolidation): the one-process format's
    /// optimizer file is then neither opened nor required, and <see cref="AdamStep"/> is 0.
    /// </summary>
    public static CheckpointStateReader Open(string checkpoint, ParameterLayout layout, bool weightsOnly = false)
    {
        if (File.Exists(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile))) return NamedStateFiles.OpenFiles(checkpoint, layout, weightsOnly);
        return PartitionStateFiles.OpenFiles(checkpoint, layout);
    }

    /// <summary>
    /// Fills <paramref name="into"/> with layout elements [<paramref name="layoutOffset"/>, + into.Length) of
    /// <paramref name="tensor"/>; padding between parameters reads as zero.
    /// </summary>
    public abstract void Read(CheckpointStateTensor tensor, long layoutOffset, Span<float> into);

    /// <summary>
    /// Fills a piece of a partition: elements [<paramref name="ownedStart"/>, + master.Length) of the partition whose
    /// layout ranges are <paramref name="segments"/> (in partition order, as <c>TrainingEngine.OwnedSegments</c> gives them).
    /// </summary>
    public void ReadOwned(IReadOnlyList<(long LayoutOffset, long OwnedOffset, long Length)> segments, long ownedStart,
        Span<float> master, Span<float> expAvg, Span<float> expAvgSq)
    {
        foreach (var (place, at, count) in Zero.OwnedRanges.Within(segments, ownedStart, master.Length))
        {
            Read(CheckpointStateTensor.Master, place, master.Slice(at, count));
            Read(CheckpointStateTensor.ExpAvg, place, expAvg.Slice(at, count));
            Read(CheckpointStateTensor.ExpAvgSq, place, expAvgSq.Slice(at, count));
        }
    }

    /// <summary>The whole layout of one tensor (consolidation, sampling, and models that fit in one array).</summary>
    public float[] ReadAll(CheckpointStateTensor tensor)
    {
        var values = new float[Layout.TotalElements];
        Read(tensor, 0, values);
        return values;
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);

    /// <summary>The index of the first of <paramref name="count"/> sorted ranges that ends after <paramref name="offset"/>.</summary>
    protected static int FirstEndingAfter(long offset, int count, Func<int, long> end)
    {
        int low = 0, high = count;
        while (low < high)
        {
            int middle = (low + high) >>> 1;
            if (end(middle) <= offset) low = middle + 1;
            else high = middle;
        }
        return low;
    }
}
