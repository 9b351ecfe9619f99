using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;

namespace Shardwise.Sparsity;

/// <summary>
/// A block-sparse attention pattern as DeepSpeed's sparse_attention section describes it (its SparsityConfig classes):
/// the [seq, seq] score matrix is cut into block × block tiles and each head keeps only the tiles its layout marks.
/// Shardwise's attention stays causal on top of the layout: a query attends to key k when k ≤ q and the layout keeps
/// the tile (q / block, k / block). Defaults are DeepSpeed's. The random blocks of variable and bigbird come from
/// <see cref="Seed"/>, so every rank, every layer and every resumed run sees the same layout (DeepSpeed draws them
/// from Python's unseeded generator per layer).
/// </summary>
public sealed record SparseAttentionPattern
{
    public SparseAttentionMode Mode { get; init; } = SparseAttentionMode.Fixed;

    /// <summary>Rows and columns of one layout tile.</summary>
    public int Block { get; init; } = 16;

    /// <summary>Whether each head gets its own layout (fixed: its own global representative; variable, bigbird: its own random blocks).</summary>
    public bool DifferentLayoutPerHead { get; init; }

    public SparseAttentionDirection Attention { get; init; } = SparseAttentionDirection.Bidirectional;

    /// <summary>fixed: blocks per local window.</summary>
    public int NumLocalBlocks { get; init; } = 4;

    /// <summary>fixed: global blocks per local window; bigbird: the first blocks, global to all.</summary>
    public int NumGlobalBlocks { get; init; } = 1;

    /// <summary>fixed, variable: global blocks also attend to every block (their whole row).</summary>
    public bool HorizontalGlobalAttention { get; init; }

    /// <summary>fixed: how many heads' global representatives differ (the last block of a window, the one before, ...).</summary>
    public int NumDifferentGlobalPatterns { get; init; } = 1;

    /// <summary>variable, bigbird: random key blocks per block row.</summary>
    public int NumRandomBlocks { get; init; }

    /// <summary>variable: sizes of the first local windows; the last size repeats to the end.</summary>
    public IReadOnlyList<int> LocalWindowBlocks { get; init; } = [4];

    /// <summary>variable, bslongformer: global block indices (window starts when <see cref="GlobalBlockEndIndices"/> is set).</summary>
    public IReadOnlyList<int> GlobalBlockIndices { get; init; } = [0];

    /// <summary>variable, bslongformer: exclusive ends of the global windows, or null for single blocks.</summary>
    public IReadOnlyList<int>? GlobalBlockEndIndices { get; init; }

    /// <summary>bigbird, bslongformer: blocks of the sliding window centred on the diagonal.</summary>
    public int NumSlidingWindowBlocks { get; init; } = 3;

    /// <summary>Seed of the random blocks (variable, bigbird).</summary>
    public int Seed { get; init; }

    /// <summary>
    /// Under tensor parallelism a rank's attention holds heads / Ranks consecutive heads: its layouts are rank Rank's slice
    /// of the whole model's (the random blocks drawn as for all heads), so every head keeps the layout it has in one
    /// process. (0, 1) outside tensor parallelism.
    /// </summary>
    public (int Rank, int Ranks) TensorShard { get; init; } = (0, 1);

    /// <summary>This pattern for tensor-parallel rank <paramref name="rank"/> of <paramref name="ranks"/>.</summary>
    public SparseAttentionPattern ForTensorRank(int rank, int ranks)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ranks);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, ranks);
        return this with { TensorShard = (rank, ranks) };
    }

    // Keyed by the pattern's value, so a copy made with `with` never sees a layout built for other settings.
    private static readonly ConcurrentDictionary<(SparseAttentionPattern Pattern, int Heads, int Sequence), BlockSparseLayout> Layouts = new();

    /// <summary>
    /// The layout for <paramref name="heads"/> heads over <paramref name="sequence"/> tokens, built once per shape.
    /// Throws <see cref="ArgumentException"/> when the pattern does not fit the shape (the block does not divide the
    /// sequence, more random or window blocks than the row has, a query row with no key to attend to).
    /// </summary>
    public BlockSparseLayout LayoutFor(int heads, int sequence)
    {
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "needs at least one head");
        if (sequence <= 0) throw new ArgumentOutOfRangeException(nameof(sequence), sequence, "needs at least one token");
        return Layouts.GetOrAdd((this, heads, sequence), key =>
        {
            var (rank, ranks) = key.Pattern.TensorShard;
            if (ranks == 1) return SparseLayoutBuilder.Build(key.Pattern, key.Heads, key.Sequence);
            var whole = (key.Pattern with { TensorShard = (0, 1) }).LayoutFor(key.Heads * ranks, key.Sequence);
            return whole.HeadRange(rank * key.Heads, key.Heads);
        });
    }

    /// <summary>
    /// <see cref="LayoutFor"/>, or null when that layout keeps every causal tile (dense mode, or a pattern that drops only
    /// blocks above the diagonal): the backends then run their dense attention, bitwise the same as without a pattern.
    /// </summary>
    public BlockSparseLayout? RestrictingLayoutFor(int heads, int sequence)
    {
        BlockSparseLayout layout = LayoutFor(heads, sequence);
        return layout.CausalDensity < 1.0 ? layout : null;
    }

    /// <summary>
    /// What is wrong with these settings whatever the shape, as (DeepSpeed key, message) pairs: DeepSpeed's own
    /// checks in its SparsityConfig constructors, plus positive sizes.
    /// </summary>
    public IEnumerable<(string Key, string Message)> Problems()
    {
        if (Block <= 0) yield return ("block", $"{Block} is out of range: must be >= 1");
        if (NumRandomBlocks < 0) yield return ("num_random_blocks", $"{NumRandomBlocks} is out of range: must be >= 0");
        switch (Mode)
        {
            case SparseAttentionMode.Fixed:
                if (NumLocalBlocks <= 0) yield return ("num_local_blocks", $"{NumLocalBlocks} is out of range: must be >= 1");
                else if (NumGlobalBlocks <= 0) yield return ("num_global_blocks", $"{NumGlobalBlocks} is out of range: must be >= 1");
                else if (NumLocalBlocks % NumGlobalBlocks != 0)
                    yield return ("num_local_blocks", $"{NumLocalBlocks} blocks per local window must be divisible by num_global_blocks ({NumGlobalBlocks})");
                else if (NumDifferentGlobalPatterns < 1)
                    yield return ("num_different_global_patterns", $"{NumDifferentGlobalPatterns} is out of range: must be >= 1");
                else if (NumDifferentGlobalPatterns > 1 && !DifferentLayoutPerHead)
                    yield return ("num_different_global_patterns", $"{NumDifferentGlobalPatterns} different global patterns need different_layout_per_head = true (one layout serves all heads otherwise)");
                else if (NumDifferentGlobalPatterns > NumLocalBlocks / NumGlobalBlocks)
                    yield return ("num_different_global_patterns", $"{NumDifferentGlobalPatterns} is more than num_local_blocks / num_global_blocks = {NumLocalBlocks / NumGlobalBlocks}");
                if (HorizontalGlobalAttention && Attention != SparseAttentionDirection.Bidirectional)
                    yield return ("horizontal_global_attention", "needs attention = \"bidirectional\" (DeepSpeed refuses it for unidirectional layouts)");
                break;
            case SparseAttentionMode.Variable:
                for (int i = 0; i < LocalWindowBlocks.Count; i++)
                    if (LocalWindowBlocks[i] <= 0) yield return ("local_window_blocks", $"entry {i} is {LocalWindowBlocks[i]}: window sizes must be >= 1");
                if (LocalWindowBlocks.Count == 0) yield return ("local_window_blocks", "is empty: give at least one window size");
                foreach (var problem in GlobalIndexProblems()) yield return problem;
                if (HorizontalGlobalAttention && Attention != SparseAttentionDirection.Bidirectional)
                    yield return ("horizontal_global_attention", "needs attention = \"bidirectional\" (DeepSpeed refuses it for unidirectional layouts)");
                break;
            case SparseAttentionMode.BigBird:
                if (NumSlidingWindowBlocks <= 0) yield return ("num_sliding_window_blocks", $"{NumSlidingWindowBlocks} is out of range: must be >= 1");
                if (NumGlobalBlocks < 0) yield return ("num_global_blocks", $"{NumGlobalBlocks} is out of range: must be >= 0");
                break;
            case SparseAttentionMode.BSLongformer:
                if (NumSlidingWindowBlocks <= 0) yield return ("num_sliding_window_blocks", $"{NumSlidingWindowBlocks} is out of range: must be >= 1");
                foreach (var problem in GlobalIndexProblems()) yield return problem;
                break;
        }
    }

    private IEnumerable<(string Key, string Message)> GlobalIndexProblems()
    {
        for (int i = 0; i < GlobalBlockIndices.Count; i++)
            if (GlobalBlockIndices[i] < 0) yield return ("global_block_indices", $"entry {i} is {GlobalBlockIndices[i]}: block indices must be >= 0");
        if (GlobalBlockEndIndices is not { } ends) yield break;
        if (ends.Count != GlobalBlockIndices.Count)
        {
            yield return ("global_block_end_indices", $"has {ends.Count} entries and global_block_indices {GlobalBlockIndices.Count}: they must pair up");
            yield break;
        }

        for (int i = 0; i < ends.Count; i++)
            if (GlobalBlockIndices[i] >= ends[i])
                yield return ("global_block_end_indices", $"entry {i} is {ends[i]}, not after its start {GlobalBlockIndices[i]}: each global window must end after it starts");
    }

    /// <summary>One line naming the mode and the settings it uses, e.g. for the trainer's start-up log.</summary>
    public string Describe()
    {
        string direction = Attention == SparseAttentionDirection.Bidirectional ? "bidirectional" : "unidirectional";
        string perHead = DifferentLayoutPerHead ? ", a layout per head" : "";
        string settings = Mode switch
        {
            SparseAttentionMode.Dense => "",
            SparseAttentionMode.Fixed => $", {NumLocalBlocks} local / {NumGlobalBlocks} global blocks{(NumDifferentGlobalPatterns > 1 ? $", {NumDifferentGlobalPatterns} global patterns" : "")}{(HorizontalGlobalAttention ? ", horizontal global" : "")}",
            SparseAttentionMode.Variable => $", windows [{string.Join(", ", LocalWindowBlocks)}], global [{Globals()}], {NumRandomBlocks} random{(HorizontalGlobalAttention ? ", horizontal global" : "")}",
            SparseAttentionMode.BigBird => $", {NumRandomBlocks} random, window {NumSlidingWindowBlocks}, {NumGlobalBlocks} global",
            _ => $", window {NumSlidingWindowBlocks}, global [{Globals()}]",
        };
        return string.Create(CultureInfo.InvariantCulture, $"{Mode.ToString().ToLowerInvariant()}, block {Block}{settings}{perHead}, {direction} layout");
    }

    private string Globals() => GlobalBlockEndIndices is { } ends
        ? string.Join(", ", System.Linq.Enumerable.Select(System.Linq.Enumerable.Zip(GlobalBlockIndices, ends), p => $"{p.First}..{p.Second}"))
        : string.Join(", ", GlobalBlockIndices);

    // Value equality over the settings that shape the layout: those of this mode only (a key of another mode changes
    // nothing), the list-valued ones by content. Every attention call looks its layout up by this value, so it
    // compares fields and allocates nothing.
    public bool Equals(SparseAttentionPattern? other) =>
        other is not null && Mode == other.Mode && Block == other.Block && DifferentLayoutPerHead == other.DifferentLayoutPerHead &&
        Attention == other.Attention && Seed == other.Seed && TensorShard == other.TensorShard && SameModeSettings(other);

    public override int GetHashCode() => HashCode.Combine(Mode, Block, DifferentLayoutPerHead, Attention, Seed, TensorShard);

    private bool SameModeSettings(SparseAttentionPattern other) => Mode switch
    {
        SparseAttentionMode.Fixed => NumLocalBlocks == other.NumLocalBlocks && NumGlobalBlocks == other.NumGlobalBlocks &&
            HorizontalGlobalAttention == other.HorizontalGlobalAttention && NumDifferentGlobalPatterns == other.NumDifferentGlobalPatterns,
        SparseAttentionMode.Variable => NumRandomBlocks == other.NumRandomBlocks && HorizontalGlobalAttention == other.HorizontalGlobalAttention &&
            SameList(LocalWindowBlocks, other.LocalWindowBlocks) && SameGlobals(other),
        SparseAttentionMode.BigBird => NumRandomBlocks == other.NumRandomBlocks && NumSlidingWindowBlocks == other.NumSlidingWindowBlocks &&
            NumGlobalBlocks == other.NumGlobalBlocks,
        SparseAttentionMode.BSLongformer => NumSlidingWindowBlocks == other.NumSlidingWindowBlocks && SameGlobals(other),
        _ => true,
    };

    private bool SameGlobals(SparseAttentionPattern other) =>
        SameList(GlobalBlockIndices, other.GlobalBlockIndices) &&
        (GlobalBlockEndIndices is null ? other.GlobalBlockEndIndices is null
            : other.GlobalBlockEndIndices is not null && SameList(GlobalBlockEndIndices, other.GlobalBlockEndIndices));

    private static bool SameList(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        if (a.Count != b.Count) return false;
        for (int i = 0; i < a.Count; i++)
            if (a[i] != b[i]) return false;
        return true;
    }
}
