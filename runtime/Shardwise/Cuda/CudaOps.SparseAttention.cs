using System.Collections.Generic;
using Shardwise.Sparsity;

namespace Shardwise.Cuda;

/// <summary>
/// Block-sparse attention (<see cref="ITensorOps{T}.AttentionSparsity"/>): each layout the attention asks for is copied
/// to the device once, at the first step of its shape, and stays (a few KiB: heads·(seq/block)² bytes); the attention
/// kernels read it from there.
/// </summary>
public sealed partial class CudaOps
{
    private readonly Dictionary<BlockSparseLayout, DeviceMemory> deviceLayouts = new(ReferenceEqualityComparer.Instance);

    public SparseAttentionPattern? AttentionSparsity { get; set; }

    /// <summary>The device copy of the layout for this shape and its block size; (0, 1) without sparsity (every causal key).</summary>
    private (ulong Layout, int Block) DeviceSparseLayout(int heads, int sequence)
    {
        if (AttentionSparsity is null) return (0, 1);
        BlockSparseLayout layout = AttentionSparsity.LayoutFor(heads, sequence);
        if (!deviceLayouts.TryGetValue(layout, out DeviceMemory? memory))
        {
            memory = allocations.Allocate(context, layout.Cells.Length);
            memory.Upload(layout.Cells);
            deviceLayouts.Add(layout, memory);
        }

        return (memory.Pointer, layout.Block);
    }

    private void DisposeSparseLayouts()
    {
        foreach (DeviceMemory memory in deviceLayouts.Values) memory.Dispose();
        deviceLayouts.Clear();
    }
}
