namespace Shardwise.Plans;

/// <summary>Whether a planned buffer holds a forward value or the gradient of one.</summary>
public enum BufferRole
{
    Value,
    Gradient,
    /// <summary>This tensor rank's part of a checkpointed input kept in parts (<c>[Checkpoint(PartitionInputs = true)]</c>).</summary>
    Partition,
}

/// <summary>A region of the activation arena, in elements per sample, live from step Start to End inclusive.</summary>
public sealed record PlannedBuffer(string Name, BufferRole Role, long ElementsPerSample, long OffsetPerSample, int Start, int End);

/// <summary>
/// The static activation memory plan the generator computed. Every size is per sample and scales linearly with
/// the batch chosen at run time, so peak activation memory is known before anything runs.
/// </summary>
public sealed class ActivationPlan
{
    public ActivationPlan(PlannedBuffer[] buffers, long arenaElementsPerSample, long unsharedElementsPerSample,
        long indexElementsPerSample, int tokensPerSample, long hostElementsPerSample = 0)
    {
        HostElementsPerSample = hostElementsPerSample;
        Buffers = buffers;
        ArenaElementsPerSample = arenaElementsPerSample;
        UnsharedElementsPerSample = unsharedElementsPerSample;
        IndexElementsPerSample = indexElementsPerSample;
        TokensPerSample = tokensPerSample;
    }

    public global::System.Collections.Generic.IReadOnlyList<PlannedBuffer> Buffers { get; }

    /// <summary>Activation arena size per sample after buffers with disjoint lifetimes share memory.</summary>
    public long ArenaElementsPerSample { get; }

    /// <summary>What the arena would need if no buffer were shared.</summary>
    public long UnsharedElementsPerSample { get; }

    /// <summary>Token-index arena size per sample (ids, targets, positions; 4 bytes each).</summary>
    public long IndexElementsPerSample { get; }

    /// <summary>Sequence positions per sample, for per-token figures.</summary>
    public int TokensPerSample { get; }

    /// <summary>
    /// Elements per sample of the checkpointed inputs kept in host memory (<c>[Checkpoint(InputsOnHost = true)]</c>):
    /// stashed after their last forward use, restored before their layer's backward; 0 when none.
    /// </summary>
    public long HostElementsPerSample { get; }

    /// <summary>Host bytes of those inputs for a micro-batch (pinned memory on a GPU).</summary>
    public long HostBytes(int batch, int bytesPerElement) => batch * HostElementsPerSample * bytesPerElement;

    /// <summary>Peak activation bytes for a micro-batch, at <paramref name="bytesPerElement"/> per real element.</summary>
    public long PeakBytes(int batch, int bytesPerElement)
        => batch * (ArenaElementsPerSample * bytesPerElement + IndexElementsPerSample * sizeof(int));

    /// <summary>Peak activation bytes per token at <paramref name="bytesPerElement"/> per real element.</summary>
    public double PeakBytesPerToken(int bytesPerElement) => PeakBytes(1, bytesPerElement) / (double)TokensPerSample;
}
