namespace Shardwise.Training.Progress;

/// <summary>
/// Bytes held per DeepSpeed memory category, as plain numbers so progress reporting does not depend on how the
/// engine measures them.
/// </summary>
public sealed record MemoryBreakdown(
    long ParametersBytes,
    long GradientsBytes,
    long MasterBytes,
    long OptimizerBytes,
    long ActivationBytes,
    long BufferBytes)
{
    public long TotalBytes => ParametersBytes + GradientsBytes + MasterBytes + OptimizerBytes + ActivationBytes + BufferBytes;
}
