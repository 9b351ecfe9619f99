using System;
using System.Numerics;

namespace Shardwise.Cpu;

// The parallel loop bodies of CpuOps. Each CpuOps keeps one instance of each and sets its fields (arena arrays,
// offsets of slices already validated by CpuOps, sizes, flags) before every run, so a parallel op allocates
// nothing. Chunks write disjoint parts of their outputs and their own part of any per-chunk scratch.

internal sealed class GeluForwardWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] X = [], Y = [];
    public int XOffset, YOffset;

    public void Run(int chunk, int start, int end) =>
        GeluKernels.Forward<T>(X.AsSpan(XOffset + start, end - start), Y.AsSpan(YOffset + start, end - start));
}

internal sealed class GeluBackwardWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] X = [], DY = [], DX = [];
    public int XOffset, DYOffset, DXOffset;
    public bool Accumulate;

    public void Run(int chunk, int start, int end) =>
        GeluKernels.Backward<T>(X.AsSpan(XOffset + start, end - start), DY.AsSpan(DYOffset + start, end - start),
            DX.AsSpan(DXOffset + start, end - start), Accumulate);
}

/// <summary>Items are (batch, head) pairs; each chunk forms its probabilities in <see cref="ScratchPerChunk"/> elements of <see cref="Scratch"/>.</summary>
internal sealed class AttentionForwardWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] Qkv = [], Y = [], LogSumExp = [], Scratch = [];
    public int QkvOffset, YOffset, LogSumExpOffset;
    public int Sequence, Heads, Dim;
    public Shardwise.Sparsity.BlockSparseLayout? Layout;
    public int ScratchPerChunk;

    public void Run(int chunk, int start, int end)
    {
        int sequence = Sequence, heads = Heads, dim = Dim;
        for (int pair = start; pair < end; pair++)
        {
            int b = pair / heads, h = pair % heads;
            AttentionKernels.ForwardHead<T>(
                Qkv.AsSpan(QkvOffset + b * sequence * 3 * dim, sequence * 3 * dim),
                LogSumExp.AsSpan(LogSumExpOffset + pair * sequence, sequence),
                Y.AsSpan(YOffset + b * sequence * dim, sequence * dim),
                Scratch.AsSpan(chunk * ScratchPerChunk, ScratchPerChunk), sequence, heads, h, dim, Layout);
        }
    }
}

/// <summary>Items are (batch, head) pairs; each chunk uses <see cref="ScratchPerChunk"/> elements of <see cref="Scratch"/>.</summary>
internal sealed class AttentionBackwardWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] Qkv = [], LogSumExp = [], DY = [], DQkv = [], Scratch = [];
    public int QkvOffset, LogSumExpOffset, DYOffset, DQkvOffset;
    public int Sequence, Heads, Dim;
    public bool Accumulate;
    public Shardwise.Sparsity.BlockSparseLayout? Layout;
    public int ScratchPerChunk;

    public void Run(int chunk, int start, int end)
    {
        int sequence = Sequence, heads = Heads, dim = Dim;
        for (int pair = start; pair < end; pair++)
        {
            int b = pair / heads, h = pair % heads;
            AttentionKernels.BackwardHead<T>(
                Qkv.AsSpan(QkvOffset + b * sequence * 3 * dim, sequence * 3 * dim),
                LogSumExp.AsSpan(LogSumExpOffset + pair * sequence, sequence),
                DY.AsSpan(DYOffset + b * sequence * dim, sequence * dim),
                DQkv.AsSpan(DQkvOffset + b * sequence * 3 * dim, sequence * 3 * dim),
                Scratch.AsSpan(chunk * ScratchPerChunk, ScratchPerChunk), sequence, heads, h, dim, Accumulate, Layout);
        }
    }
}

/// <summary>
/// Items are rows; chunk c stores its sum of losses in <c>Sums[c]</c> and uses one row of <see cref="Scratch"/>.
/// </summary>
internal sealed class CrossEntropyWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] Logits = [], Scratch = [], Sums = [];
    public int[] Targets = [];
    public int LogitsOffset, TargetsOffset, Vocabulary;

    public void Run(int chunk, int start, int end)
    {
        int vocabulary = Vocabulary;
        Sums[chunk] = CrossEntropyKernels.SumOfLosses<T>(
            Logits.AsSpan(LogitsOffset + start * vocabulary, (end - start) * vocabulary),
            Targets.AsSpan(TargetsOffset + start, end - start), Scratch.AsSpan(chunk * vocabulary, vocabulary),
            end - start, vocabulary);
    }
}

/// <summary>
/// Items are rows; chunk c stores its sum of losses in <c>Sums[c]</c>, writes its rows' dlogits and uses one row of
/// <see cref="Scratch"/>.
/// </summary>
internal sealed class CrossEntropyWithGradientWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] Logits = [], DLogits = [], Scratch = [], Sums = [];
    public int[] Targets = [];
    public int LogitsOffset, DLogitsOffset, TargetsOffset, Vocabulary;
    public T Factor;
    public bool Accumulate;

    public void Run(int chunk, int start, int end)
    {
        int vocabulary = Vocabulary;
        Sums[chunk] = CrossEntropyKernels.SumOfLossesAndGradient<T>(
            Logits.AsSpan(LogitsOffset + start * vocabulary, (end - start) * vocabulary),
            Targets.AsSpan(TargetsOffset + start, end - start),
            DLogits.AsSpan(DLogitsOffset + start * vocabulary, (end - start) * vocabulary),
            Scratch.AsSpan(chunk * vocabulary, vocabulary), end - start, vocabulary, Factor, Accumulate);
    }
}

/// <summary>Items are rows; each chunk uses one row of <see cref="Scratch"/>.</summary>
internal sealed class CrossEntropyBackwardWork<T> : IChunkWork where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[] Logits = [], DLogits = [], Scratch = [];
    public int[] Targets = [];
    public int LogitsOffset, DLogitsOffset, TargetsOffset, Vocabulary;
    public T Factor;
    public bool Accumulate;

    public void Run(int chunk, int start, int end)
    {
        int vocabulary = Vocabulary;
        CrossEntropyKernels.Backward<T>(
            Logits.AsSpan(LogitsOffset + start * vocabulary, (end - start) * vocabulary),
            Targets.AsSpan(TargetsOffset + start, end - start),
            DLogits.AsSpan(DLogitsOffset + start * vocabulary, (end - start) * vocabulary),
            Scratch.AsSpan(chunk * vocabulary, vocabulary), end - start, vocabulary, Factor, Accumulate);
    }
}
