namespace Shardwise.Plans;

/// <summary>
/// The generator's plan for streamed gradients (ZeRO-2 and up): where each parameter slot's gradient lives in a
/// small pool while it is being accumulated during backward, and how large that pool is. A slot's gradient is live
/// from its first write until its <c>GradientFinal</c> call; slots with disjoint lifetimes share memory.
/// </summary>
public sealed class GradientPool
{
    public GradientPool(long[] offsets, long poolElements)
    {
        Offsets = offsets;
        PoolElements = poolElements;
    }

    /// <summary>Pool offset of each slot's gradient, in layout order.</summary>
    public global::System.Collections.Generic.IReadOnlyList<long> Offsets { get; }

    public long PoolElements { get; }
}
