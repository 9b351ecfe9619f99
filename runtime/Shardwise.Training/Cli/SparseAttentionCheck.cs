using System;
using System.Globalization;
using Shardwise.Sparsity;
using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// Before any step: the sparse_attention pattern against the model's sequence length, so a block that does not divide it
/// (or a window wider than the row) stops the run at start-up with the config file and key, not at the first attention
/// call; and the start-up line saying what the layout keeps.
/// </summary>
public static class SparseAttentionCheck
{
    /// <summary>The flash kernels' tile (SW_FLASH_TILE in kernels-cu/flash_attention_common.cuh).</summary>
    private const int FlashTile = 64;

    /// <summary>The start-up line, or null without a pattern; throws <see cref="CliException"/> when the pattern does not fit.</summary>
    public static string? Describe(DeepSpeedConfig config, int sequence) => Describe(config.SparseAttention, sequence, config.SourceName);

    /// <summary>As <see cref="Describe(DeepSpeedConfig, int)"/> for a pattern read from <paramref name="source"/> (a config or a checkpoint).</summary>
    public static string? Describe(SparseAttentionPattern? pattern, int sequence, string source)
    {
        if (pattern is null) return null;
        BlockSparseLayout layout;
        try
        {
            layout = pattern.LayoutFor(heads: 1, sequence);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{source}: {e.Message}");
        }

        string causal = pattern.Attention == SparseAttentionDirection.Bidirectional
            ? "; the model's attention is causal, so the layout's blocks above the diagonal go unused"
            : "";
        // The GPU's flash kernels copy whole 64×64 tiles: what they visit can be far more than what is kept (inside a
        // visited tile the warps still skip the 16-wide groups their rows drop).
        double visited = Cuda.FlashSparseTiles.VisitedShare(layout, FlashTile);
        return string.Create(CultureInfo.InvariantCulture,
            $"attention: block-sparse ({pattern.Describe()}): {layout.Blocks} blocks of {pattern.Block} tokens per row, " +
            $"{100 * layout.CausalDensity:F0}% of the causal score tiles kept{(pattern.DifferentLayoutPerHead ? " (head 0)" : "")} " +
            $"(the GPU's flash kernels visit {100 * visited:F0}% of their {FlashTile}×{FlashTile} tiles){causal}");
    }
}
