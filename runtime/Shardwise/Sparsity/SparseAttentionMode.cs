namespace Shardwise.Sparsity;

/// <summary>The block-sparsity patterns of DeepSpeed's sparse_attention section (its "mode" key).</summary>
public enum SparseAttentionMode
{
    /// <summary>Every block: the dense causal attention, through the sparse code path (for comparison).</summary>
    Dense,

    /// <summary>Local windows of num_local_blocks plus the last num_global_blocks of each window attended by all later rows (Sparse Transformer, "fixed").</summary>
    Fixed,

    /// <summary>Local windows of the sizes listed, global blocks by index, optional random blocks per row.</summary>
    Variable,

    /// <summary>Random blocks per row, a sliding window, and the first num_global_blocks attending and attended by all (BigBird).</summary>
    BigBird,

    /// <summary>A sliding window plus global blocks by index (block-sparse Longformer).</summary>
    BSLongformer,
}

/// <summary>
/// DeepSpeed's "attention" key: whether the layout is built for a causal (unidirectional) or a bidirectional model.
/// Shardwise's attention is causal either way: a bidirectional layout's blocks above the diagonal go unused.
/// </summary>
public enum SparseAttentionDirection
{
    Bidirectional,
    Unidirectional,
}
