using System.Collections.Generic;
using Shardwise.Sparsity;

namespace Shardwise.Cuda;

/// <summary>
/// Block-sparse attention (<see cref="ITensorOps{T}.AttentionSparsity"/>): each layout the attention asks for is copied
/// to the device once, at the first step of its shape, with the flash kernels' tile table after it
/// (<see cref="FlashSparseTiles"/>), and stays (a few KiB: heads·((seq/block)² + (seq/64)²) bytes). The flash kernels'
/// _sparse entry points skip the tiles the table drops; the GEMM path's softmax masks the dropped keys.
/// </summary>
public sealed partial class CudaOps
{
    private readonly Dictionary<BlockSparseLayout, DeviceMemory> deviceLayouts = new(ReferenceEqualityComparer.Instance);

    public SparseAttentionPattern? AttentionSparsity { get; set; }

    /// <summary>
    /// The device copies of the layout cells and the flash tile table for this shape, and the block size; (0, 0, 1)
    /// without sparsity or with a layout that keeps every causal tile (the dense kernels run).
    /// </summary>
    private (ulong Cells, ulong Tiles, int Block) DeviceSparseLayout(int heads, int sequence)
    {
        if (AttentionSparsity?.RestrictingLayoutFor(heads, sequence) is not { } layout) return (0, 0, 1);
        if (!deviceLayouts.TryGetValue(layout, out DeviceMemory? memory))
        {
            byte[] tiles = FlashSparseTiles.Build(layout, FlashTile);
            memory = allocations.Allocate(context, layout.Cells.Length + tiles.Length);
            memory.Upload(layout.Cells);
            memory.Upload<byte>(tiles, layout.Cells.Length);
            deviceLayouts.Add(layout, memory);
        }

        return (memory.Pointer, memory.Pointer + (ulong)layout.Cells.Length, layout.Block);
    }

    private void DisposeSparseLayouts()
    {
        foreach (DeviceMemory memory in deviceLayouts.Values) memory.Dispose();
        deviceLayouts.Clear();
    }
}
