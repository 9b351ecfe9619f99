using System;
using System.Collections.Generic;
using System.Numerics;
using System.Runtime.CompilerServices;
using Shardwise.Ops;

namespace Shardwise.Cpu;

/// <summary>
/// The CPU backend: arenas are managed arrays, matrix products go to OpenBLAS and everything else to the span
/// kernels the eager layers use too. An instance owns scratch memory and its parallel loop bodies, so it must be
/// used from one thread at a time; separate instances may run on separate threads. Large ops are split into chunks
/// run on the shared <see cref="WorkerPool"/>; after the first op of each size nothing is allocated per op.
/// </summary>
public sealed class CpuOps<T> : ITensorOps<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[][] arenas = [[], [], []];
    private int[] indices = [];

    // Pipeline micro-batches in flight each own a window of the activation and index arenas.
    private T[][] activationWindows = [];
    private int[][] indexWindows = [];

    // Checkpointed inputs kept "on the host" (InputsOnHost): plain arrays here, one per activation window.
    private T[] hostActivations = [];
    private T[][] hostWindows = [];

    // Per-chunk working memory for the parallel loops; grows to the largest op seen, then stays.
    private T[] scratch = [];
    private T[] partialSums = [];

    // The parallel loop bodies, one per op kind, refilled before each run so that a parallel op allocates nothing.
    private readonly GeluForwardWork<T> geluForward = new();
    private readonly GeluBackwardWork<T> geluBackward = new();
    private readonly AttentionForwardWork<T> attentionForward = new();
    private readonly AttentionBackwardWork<T> attentionBackward = new();
    private readonly CrossEntropyWork<T> crossEntropy = new();
    private readonly CrossEntropyBackwardWork<T> crossEntropyBackward = new();
    private readonly CrossEntropyWithGradientWork<T> crossEntropyWithGradient = new();
    private CpuOpsProfiler? profiler;

    public CpuOps()
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException(
                $"CpuOps supports float and double elements; {typeof(T).Name} is not supported.");
        }
    }

    /// <summary>Starts timing every operation (<see cref="CpuOpsProfiler"/>); <see cref="StopProfiling"/> returns the times.</summary>
    public void StartProfiling() => profiler = new CpuOpsProfiler();

    /// <summary>The wall-clock time per operation since <see cref="StartProfiling"/>, largest first.</summary>
    public IReadOnlyList<OperationTime> StopProfiling()
    {
        var stopped = profiler ?? throw new InvalidOperationException("StopProfiling without StartProfiling.");
        profiler = null;
        return stopped.Collect();
    }

    /// <summary>Every operation starts here; the scope is a no-op unless profiling.</summary>
    private CpuOpsProfiler.Scope Profile([CallerMemberName] string operation = "") =>
        profiler?.Enter(operation) ?? default;

    public void Allocate(Arena arena, long elements) => arenas[ArenaIndex(arena)] = new T[ArenaLength(arena.ToString().ToLowerInvariant(), elements)];

    public void AllocateIndices(long elements) => indices = new int[ArenaLength("token index", elements)];

    // Past Array.MaxLength no array exists; a negative count is a caller's bug (CheckedLength).
    private static int ArenaLength(string arena, long elements) =>
        elements > Array.MaxLength
            ? throw new BackendCapacityException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"the CPU backend's {arena} arena would need {elements:N0} elements, more than the {Array.MaxLength:N0} one .NET array holds: lower train_micro_batch_size_per_gpu (the activations grow with it), shorten the context, or train on a GPU (--device cuda)"))
            : CheckedLength(elements);

    public void AllocateActivationWindows(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var activations = arenas[ArenaIndex(Arena.Activations)];
        activationWindows = new T[count][];
        indexWindows = new int[count][];
        hostWindows = new T[count][];
        activationWindows[0] = activations;
        indexWindows[0] = indices;
        hostWindows[0] = hostActivations;
        for (int w = 1; w < count; w++)
        {
            activationWindows[w] = new T[activations.Length];
            indexWindows[w] = new int[indices.Length];
            hostWindows[w] = new T[hostActivations.Length];
        }
    }

    public void SelectActivationWindow(int window)
    {
        if ((uint)window >= (uint)activationWindows.Length)
            throw new ArgumentOutOfRangeException(nameof(window), window, $"There are {activationWindows.Length} activation windows; call AllocateActivationWindows first.");
        arenas[ArenaIndex(Arena.Activations)] = activationWindows[window];
        indices = indexWindows[window];
        hostActivations = hostWindows[window];
    }

    public void AllocateHostActivations(long elements) => hostActivations = new T[ArenaLength("host activation", elements)];

    public void StashActivation(Slice source, long hostOffset)
    {
        using var profiled = Profile();
        Elements(source, source.Length, nameof(source)).CopyTo(HostRange(hostOffset, source.Length));
    }

    public void RestoreActivation(long hostOffset, Slice destination)
    {
        using var profiled = Profile();
        HostRange(hostOffset, destination.Length).CopyTo(Elements(destination, destination.Length, nameof(destination)));
    }

    /// <summary>The CPU's copies are done when the calls return: nothing to wait for.</summary>
    public void WaitForStash(long hostOffset)
    {
    }

    public void WaitForRestore(long hostOffset)
    {
    }

    private Span<T> HostRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > hostActivations.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is outside the {hostActivations.Length}-element host activation store");
        return hostActivations.AsSpan((int)offset, (int)length);
    }

    public Span<T> View(Arena arena) => arenas[ArenaIndex(arena)];

    public void LoadIndices(ReadOnlySpan<int> source, IndexSlice destination)
    {
        using var profiled = Profile();
        RequireSameLength(source.Length, destination.Length, nameof(LoadIndices));
        source.CopyTo(Indices(destination, destination.Length, nameof(destination)));
    }

    public void Load(ReadOnlySpan<T> source, Slice destination)
    {
        using var profiled = Profile();
        RequireSameLength(source.Length, destination.Length, nameof(Load));
        source.CopyTo(Elements(destination, destination.Length, nameof(destination)));
    }

    public void Store(Slice source, Span<T> destination)
    {
        using var profiled = Profile();
        RequireSameLength(destination.Length, source.Length, nameof(Store));
        Elements(source, source.Length, nameof(source)).CopyTo(destination);
    }

    public void Zero(Slice destination)
    {
        using var profiled = Profile();
        Elements(destination, destination.Length, nameof(destination)).Clear();
    }

    public void Positions(IndexSlice output, int batch, int sequence)
    {
        using var profiled = Profile();
        Span<int> positions = Indices(output, (long)batch * sequence, nameof(output));
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < sequence; t++) positions[b * sequence + t] = t;
        }
    }

    public void Embedding(IndexSlice ids, Slice table, Slice output, int rows, int dim)
    {
        using var profiled = Profile();
        EmbeddingKernels.Forward<T>(Indices(ids, rows, nameof(ids)), Elements(table, table.Length, nameof(table)),
            Elements(output, (long)rows * dim, nameof(output)), rows, dim);
    }

    public void EmbeddingBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim)
    {
        using var profiled = Profile();
        EmbeddingKernels.Backward<T>(Indices(ids, rows, nameof(ids)),
            Elements(dOutput, (long)rows * dim, nameof(dOutput)), Elements(dTable, dTable.Length, nameof(dTable)),
            rows, dim);
    }

    private IActivationQuantizer? _activationQuantizer;
    private float[] _quantizedInput = [];

    public IActivationQuantizer? ActivationQuantizer
    {
        get => _activationQuantizer;
        set
        {
            if (value is not null && typeof(T) != typeof(float))
                throw new NotSupportedException($"activation quantization runs on fp32 programs; this one computes in {typeof(T).Name}");
            _activationQuantizer = value;
        }
    }

    /// <summary>Bytes of the activation quantizer's scratch so far (Q(x) of the widest covered input; 0 without one).</summary>
    public long QuantizedInputScratchBytes => (long)_quantizedInput.Length * sizeof(float);

    /// <summary>x itself, or Q(x) in a scratch buffer when the quantizer covers this Linear's weight.</summary>
    private ReadOnlySpan<T> LinearInput(Slice x, Slice weight, int rows, int inDim, [CallerMemberName] string operation = "")
    {
        var input = Elements(x, (long)rows * inDim, nameof(x), operation);
        if (_activationQuantizer is not { } quantizer || !quantizer.Quantizes(weight)) return input;
        int length = checked(rows * inDim);
        if (_quantizedInput.Length < length) _quantizedInput = new float[length];
        var quantized = _quantizedInput.AsSpan(0, length);
        quantizer.Quantize(weight, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(input), quantized, rows, inDim);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<float, T>(quantized);
    }

    public void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim)
    {
        using var profiled = Profile();
        LinearKernels.Forward<T>(LinearInput(x, weight, rows, inDim),
            Elements(weight, (long)outDim * inDim, nameof(weight)), OptionalElements(bias, outDim, nameof(bias)),
            Elements(y, (long)rows * outDim, nameof(y)), rows, inDim, outDim);
    }

    public void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias,
        int rows, int inDim, int outDim, bool accumulate)
    {
        using var profiled = Profile();
        LinearKernels.Backward<T>(LinearInput(x, weight, rows, inDim),
            Elements(weight, (long)outDim * inDim, nameof(weight)), Elements(dy, (long)rows * outDim, nameof(dy)),
            OptionalElements(dx, (long)rows * inDim, nameof(dx)),
            Elements(dWeight, (long)outDim * inDim, nameof(dWeight)), OptionalElements(dBias, outDim, nameof(dBias)),
            rows, inDim, outDim, accumulate);
    }

    // The reference of the fused ops is the unfused sequence itself, so a fused program is bitwise the unfused one.
    public void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim)
    {
        using var profiled = Profile();
        Linear(x, weight, bias, preActivation, rows, inDim, outDim);
        Gelu(preActivation, y, (long)rows * outDim);
    }

    public void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation,
        Slice dWeight, Slice? dBias, int rows, int inDim, int outDim)
    {
        using var profiled = Profile();
        LinearBackward(x, weight, dy, dPreActivation, dWeight, dBias, rows, inDim, outDim, accumulate: false);
        GeluBackward(preActivation, dPreActivation, dPreActivation, (long)rows * inDim, accumulate: false);
    }

    public void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        using var profiled = Profile();
        LayerNormKernels.Forward<T>(Elements(x, (long)rows * dim, nameof(x)), Elements(gamma, dim, nameof(gamma)),
            Elements(beta, dim, nameof(beta)), Elements(y, (long)rows * dim, nameof(y)),
            Elements(mean, rows, nameof(mean)), Elements(rstd, rows, nameof(rstd)), rows, dim);
    }

    // As the other fused ops: the unfused sequence itself, so a fused program is bitwise the unfused one.
    public void AddLayerNorm(Slice a, Slice b, Slice sum, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        using var profiled = Profile();
        Add(a, b, sum, (long)rows * dim);
        LayerNorm(sum, gamma, beta, y, mean, rstd, rows, dim);
    }

    public void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx,
        Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate)
    {
        using var profiled = Profile();
        LayerNormKernels.Backward<T>(Elements(x, (long)rows * dim, nameof(x)), Elements(gamma, dim, nameof(gamma)),
            Elements(mean, rows, nameof(mean)), Elements(rstd, rows, nameof(rstd)),
            Elements(dy, (long)rows * dim, nameof(dy)), Elements(dx, (long)rows * dim, nameof(dx)),
            Elements(dGamma, dim, nameof(dGamma)), Elements(dBeta, dim, nameof(dBeta)), rows, dim, accumulate);
    }

    /// <summary>Roughly the arithmetic per element of GeLU; decides when splitting across cores pays.</summary>
    private const long GeluWorkPerElement = 16;

    public void Gelu(Slice x, Slice y, long count)
    {
        using var profiled = Profile();
        Span<T> input = Elements(x, count, nameof(x)), output = Elements(y, count, nameof(y));
        int elements = (int)count;
        int chunks = ParallelRanges.ChunkCount(elements, GeluWorkPerElement);
        if (chunks == 1)
        {
            GeluKernels.Forward<T>(input, output);
            return;
        }

        var work = geluForward;
        (work.X, work.XOffset) = Place(x);
        (work.Y, work.YOffset) = Place(y);
        ParallelRanges.Run(elements, chunks, work);
    }

    public void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate)
    {
        using var profiled = Profile();
        Span<T> input = Elements(x, count, nameof(x)), upstream = Elements(dy, count, nameof(dy));
        Span<T> gradient = Elements(dx, count, nameof(dx));
        int elements = (int)count;
        int chunks = ParallelRanges.ChunkCount(elements, GeluWorkPerElement);
        if (chunks == 1)
        {
            GeluKernels.Backward<T>(input, upstream, gradient, accumulate);
            return;
        }

        var work = geluBackward;
        (work.X, work.XOffset) = Place(x);
        (work.DY, work.DYOffset) = Place(dy);
        (work.DX, work.DXOffset) = Place(dx);
        work.Accumulate = accumulate;
        ParallelRanges.Run(elements, chunks, work);
    }

    public void Add(Slice a, Slice b, Slice y, long count)
    {
        using var profiled = Profile();
        AddKernels.Forward<T>(Elements(a, count, nameof(a)), Elements(b, count, nameof(b)),
            Elements(y, count, nameof(y)));
    }

    public void EmbeddingRange(IndexSlice ids, Slice table, Slice output, int rows, int dim, int first, int count)
    {
        using var profiled = Profile();
        VocabularyParallelKernels.EmbeddingForward<T>(Indices(ids, rows, nameof(ids)), Elements(table, (long)count * dim, nameof(table)),
            Elements(output, (long)rows * dim, nameof(output)), rows, dim, first, count);
    }

    public void EmbeddingRangeBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim, int first, int count)
    {
        using var profiled = Profile();
        VocabularyParallelKernels.EmbeddingBackward<T>(Indices(ids, rows, nameof(ids)), Elements(dOutput, (long)rows * dim, nameof(dOutput)),
            Elements(dTable, (long)count * dim, nameof(dTable)), rows, dim, first, count);
    }

    public void CrossEntropyRowMax(Slice logits, Slice rowMax, int rows, int vocabulary)
    {
        using var profiled = Profile();
        VocabularyParallelKernels.RowMax<T>(Elements(logits, (long)rows * vocabulary, nameof(logits)), Elements(rowMax, rows, nameof(rowMax)), rows, vocabulary);
    }

    public void CrossEntropyPartials(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice targetLogit, int rows, int vocabulary, int first)
    {
        using var profiled = Profile();
        VocabularyParallelKernels.Partials<T>(Elements(logits, (long)rows * vocabulary, nameof(logits)), Indices(targets, rows, nameof(targets)),
            Elements(rowMax, rows, nameof(rowMax)), Elements(rowSum, rows, nameof(rowSum)), Elements(targetLogit, rows, nameof(targetLogit)),
            rows, vocabulary, first);
    }

    public T CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, IndexSlice targets, int rows)
    {
        using var profiled = Profile();
        return VocabularyParallelKernels.Loss<T>(Elements(rowMax, rows, nameof(rowMax)), Elements(rowSum, rows, nameof(rowSum)),
            Elements(targetLogit, rows, nameof(targetLogit)), Indices(targets, rows, nameof(targets)), rows);
    }

    public void CrossEntropyRangeBackward(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice dLogits, int rows, int vocabulary,
        int first, T scale, bool accumulate)
    {
        using var profiled = Profile();
        VocabularyParallelKernels.Backward<T>(Elements(logits, (long)rows * vocabulary, nameof(logits)), Indices(targets, rows, nameof(targets)),
            Elements(rowMax, rows, nameof(rowMax)), Elements(rowSum, rows, nameof(rowSum)), Elements(dLogits, (long)rows * vocabulary, nameof(dLogits)),
            rows, vocabulary, first, scale, accumulate);
    }

    public void AddBias(Slice y, Slice bias, int rows, int dim)
    {
        using var profiled = Profile();
        LinearKernels.AddBias<T>(Elements(y, (long)rows * dim, nameof(y)), Elements(bias, dim, nameof(bias)), rows, dim);
    }

    public void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim)
    {
        using var profiled = Profile();
        LinearKernels.AddBiasBackward<T>(Elements(dy, (long)rows * dim, nameof(dy)), Elements(dBias, dim, nameof(dBias)), rows, dim);
    }

    public void AddBackward(Slice dy, Slice dx, long count, bool accumulate)
    {
        using var profiled = Profile();
        AddKernels.Backward<T>(Elements(dy, count, nameof(dy)), Elements(dx, count, nameof(dx)), accumulate);
    }

    public void Scale(Slice x, Slice y, T factor, long count)
    {
        using var profiled = Profile();
        ScaleKernels.Forward<T>(Elements(x, count, nameof(x)), Elements(y, count, nameof(y)), factor);
    }

    public void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
    {
        using var profiled = Profile();
        TokenDropKernels.Gather<T>(Elements(x, (long)batch * sequence * dim, nameof(x)), Indices(kept, (long)batch * keptCount, nameof(kept)),
            Elements(y, (long)batch * keptCount * dim, nameof(y)), batch, sequence, keptCount, dim);
    }

    public void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
    {
        using var profiled = Profile();
        TokenDropKernels.GatherBackward<T>(Elements(dy, (long)batch * keptCount * dim, nameof(dy)), Indices(kept, (long)batch * keptCount, nameof(kept)),
            Elements(dx, (long)batch * sequence * dim, nameof(dx)), batch, sequence, keptCount, dim, accumulate);
    }

    public void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
    {
        using var profiled = Profile();
        TokenDropKernels.Scatter<T>(Elements(x, (long)batch * sequence * dim, nameof(x)), Elements(layer, (long)batch * keptCount * dim, nameof(layer)),
            Indices(kept, (long)batch * keptCount, nameof(kept)), Elements(y, (long)batch * sequence * dim, nameof(y)), batch, sequence, keptCount, dim);
    }

    public void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
    {
        using var profiled = Profile();
        TokenDropKernels.ScatterBackward<T>(Elements(dy, (long)batch * sequence * dim, nameof(dy)), Indices(kept, (long)batch * keptCount, nameof(kept)),
            Elements(dx, (long)batch * sequence * dim, nameof(dx)), batch, sequence, keptCount, dim, accumulate);
    }

    public Shardwise.Sparsity.SparseAttentionPattern? AttentionSparsity { get; set; }

    public void Attention(Slice qkv, Slice y, Slice logSumExp, int batch, int sequence, int heads, int dim)
    {
        using var profiled = Profile();
        int headDim = HeadDim(dim, heads);
        var layout = AttentionSparsity?.RestrictingLayoutFor(heads, sequence);
        Span<T> qkvSpan = Elements(qkv, 3L * batch * sequence * dim, nameof(qkv));
        Span<T> ySpan = Elements(y, (long)batch * sequence * dim, nameof(y));
        Span<T> logSumExpSpan = Elements(logSumExp, (long)batch * heads * sequence, nameof(logSumExp));
        int pairs = batch * heads, square = sequence * sequence;
        // Work per pair: the dense products' 2·seq²·hd, or the kept share of it.
        double share = layout?.CausalDensity ?? 1.0;
        int chunks = ParallelRanges.ChunkCount(pairs, (long)(2L * square * headDim * share));
        int perPair = checked((int)AttentionKernels.ScratchPerPair(sequence, headDim, layout, backward: false));
        T[] scratchRows = Scratch((long)chunks * perPair);
        if (chunks == 1)
        {
            AttentionKernels.Forward<T>(qkvSpan, ySpan, logSumExpSpan, scratchRows, batch, sequence, heads, dim, layout);
            return;
        }

        var work = attentionForward;
        (work.Qkv, work.QkvOffset) = Place(qkv);
        (work.Y, work.YOffset) = Place(y);
        (work.LogSumExp, work.LogSumExpOffset) = Place(logSumExp);
        (work.Scratch, work.Sequence, work.Heads, work.Dim, work.Layout, work.ScratchPerChunk) = (scratchRows, sequence, heads, dim, layout, perPair);
        ParallelRanges.Run(pairs, chunks, work);
    }

    // y is part of the contract for backends that form D = Σ dy·y from it (the flash kernels); this reference
    // forms D = Σ P·dP from the recomputed probabilities instead, and only checks that y is there.
    public void AttentionBackward(Slice qkv, Slice y, Slice logSumExp, Slice dy, Slice dqkv,
        int batch, int sequence, int heads, int dim, bool accumulate)
    {
        using var profiled = Profile();
        int headDim = HeadDim(dim, heads);
        var layout = AttentionSparsity?.RestrictingLayoutFor(heads, sequence);
        Span<T> qkvSpan = Elements(qkv, 3L * batch * sequence * dim, nameof(qkv));
        Elements(y, (long)batch * sequence * dim, nameof(y));
        Span<T> logSumExpSpan = Elements(logSumExp, (long)batch * heads * sequence, nameof(logSumExp));
        Span<T> dySpan = Elements(dy, (long)batch * sequence * dim, nameof(dy));
        Span<T> dqkvSpan = Elements(dqkv, 3L * batch * sequence * dim, nameof(dqkv));
        int pairs = batch * heads, square = sequence * sequence;
        double share = layout?.CausalDensity ?? 1.0;
        int chunks = ParallelRanges.ChunkCount(pairs, (long)(6L * square * headDim * share));
        int perPair = checked((int)AttentionKernels.ScratchPerPair(sequence, headDim, layout, backward: true));
        T[] scratchRows = Scratch((long)chunks * perPair);
        if (chunks == 1)
        {
            AttentionKernels.Backward<T>(qkvSpan, logSumExpSpan, dySpan, dqkvSpan, scratchRows, batch, sequence,
                heads, dim, accumulate, layout);
            return;
        }

        var work = attentionBackward;
        (work.Qkv, work.QkvOffset) = Place(qkv);
        (work.LogSumExp, work.LogSumExpOffset) = Place(logSumExp);
        (work.DY, work.DYOffset) = Place(dy);
        (work.DQkv, work.DQkvOffset) = Place(dqkv);
        (work.Scratch, work.Sequence, work.Heads, work.Dim, work.Accumulate, work.Layout, work.ScratchPerChunk) =
            (scratchRows, sequence, heads, dim, accumulate, layout, perPair);
        ParallelRanges.Run(pairs, chunks, work);
    }

    /// <summary>Roughly the arithmetic per logit of the softmax; decides when splitting rows across cores pays.</summary>
    private const long CrossEntropyWorkPerLogit = 8;

    public T CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary)
    {
        using var profiled = Profile();
        Span<T> logitSpan = Elements(logits, (long)rows * vocabulary, nameof(logits));
        Span<int> targetSpan = Indices(targets, rows, nameof(targets));
        int divisor = CrossEntropyKernels.MeanDivisor(targetSpan);
        int chunks = ParallelRanges.ChunkCount(rows, vocabulary * CrossEntropyWorkPerLogit);
        T[] scratchRows = Scratch((long)chunks * vocabulary);
        if (chunks == 1)
        {
            return CrossEntropyKernels.SumOfLosses<T>(logitSpan, targetSpan, scratchRows, rows, vocabulary) / T.CreateChecked(divisor);
        }

        T[] sums = PartialSums(chunks);
        var work = crossEntropy;
        (work.Logits, work.LogitsOffset) = Place(logits);
        (work.Targets, work.TargetsOffset) = (indices, (int)targets.Offset);
        (work.Scratch, work.Sums, work.Vocabulary) = (scratchRows, sums, vocabulary);
        ParallelRanges.Run(rows, chunks, work);
        return MeanOfChunkSums(sums, chunks, divisor);
    }

    /// <summary>Room for one partial sum per chunk of a parallel reduction.</summary>
    private T[] PartialSums(int chunks)
    {
        if (partialSums.Length < chunks) partialSums = new T[chunks];
        return partialSums;
    }

    /// <summary>
    /// The chunks' sums added in chunk order, which keeps the result independent of thread timing, over
    /// <paramref name="divisor"/>.
    /// </summary>
    private static T MeanOfChunkSums(T[] sums, int chunks, int divisor)
    {
        T total = T.Zero;
        for (int chunk = 0; chunk < chunks; chunk++) total += sums[chunk];
        return total / T.CreateChecked(divisor);
    }

    public void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        T scale, bool accumulate)
    {
        using var profiled = Profile();
        Span<T> logitSpan = Elements(logits, (long)rows * vocabulary, nameof(logits));
        Span<int> targetSpan = Indices(targets, rows, nameof(targets));
        Span<T> gradientSpan = Elements(dLogits, (long)rows * vocabulary, nameof(dLogits));
        T factor = scale / T.CreateChecked(CrossEntropyKernels.MeanDivisor(targetSpan));
        int chunks = ParallelRanges.ChunkCount(rows, vocabulary * CrossEntropyWorkPerLogit);
        T[] scratchRows = Scratch((long)chunks * vocabulary);
        if (chunks == 1)
        {
            CrossEntropyKernels.Backward<T>(logitSpan, targetSpan, gradientSpan, scratchRows, rows, vocabulary,
                factor, accumulate);
            return;
        }

        var work = crossEntropyBackward;
        (work.Logits, work.LogitsOffset) = Place(logits);
        (work.DLogits, work.DLogitsOffset) = Place(dLogits);
        (work.Targets, work.TargetsOffset) = (indices, (int)targets.Offset);
        (work.Scratch, work.Vocabulary, work.Factor, work.Accumulate) = (scratchRows, vocabulary, factor, accumulate);
        ParallelRanges.Run(rows, chunks, work);
    }

    public T CrossEntropyWithGradient(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        T scale, bool accumulate)
    {
        using var profiled = Profile();
        Span<T> logitSpan = Elements(logits, (long)rows * vocabulary, nameof(logits));
        Span<int> targetSpan = Indices(targets, rows, nameof(targets));
        Span<T> gradientSpan = Elements(dLogits, (long)rows * vocabulary, nameof(dLogits));
        int divisor = CrossEntropyKernels.MeanDivisor(targetSpan);
        T factor = scale / T.CreateChecked(divisor);
        // The chunking of CrossEntropy and CrossEntropyBackward, so that the sum and its order are theirs.
        int chunks = ParallelRanges.ChunkCount(rows, vocabulary * CrossEntropyWorkPerLogit);
        T[] scratchRows = Scratch((long)chunks * vocabulary);
        if (chunks == 1)
        {
            return CrossEntropyKernels.SumOfLossesAndGradient<T>(logitSpan, targetSpan, gradientSpan, scratchRows,
                rows, vocabulary, factor, accumulate) / T.CreateChecked(divisor);
        }

        T[] sums = PartialSums(chunks);
        var work = crossEntropyWithGradient;
        (work.Logits, work.LogitsOffset) = Place(logits);
        (work.DLogits, work.DLogitsOffset) = Place(dLogits);
        (work.Targets, work.TargetsOffset) = (indices, (int)targets.Offset);
        (work.Scratch, work.Sums, work.Vocabulary, work.Factor, work.Accumulate) = (scratchRows, sums, vocabulary, factor, accumulate);
        ParallelRanges.Run(rows, chunks, work);
        return MeanOfChunkSums(sums, chunks, divisor);
    }

    private static int ArenaIndex(Arena arena) =>
        arena is Arena.Parameters or Arena.Gradients or Arena.Activations
            ? (int)arena
            : throw new ArgumentOutOfRangeException(nameof(arena), arena, "Unknown arena.");

    private static int CheckedLength(long elements)
    {
        if (elements < 0 || elements > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(elements), elements,
                $"A CPU arena holds between 0 and {Array.MaxLength} elements.");
        }

        return (int)elements;
    }

    private static int HeadDim(int dim, int heads)
    {
        if (heads <= 0 || dim % heads != 0)
        {
            throw new ArgumentException($"Attention dim {dim} is not divisible into {heads} heads.");
        }

        return dim / heads;
    }

    private static void RequireSameLength(long span, long slice, string operation)
    {
        if (span != slice)
        {
            throw new ArgumentException($"{operation}: the span has {span} elements but the slice has {slice}.");
        }
    }

    /// <summary>The first <paramref name="needed"/> elements of a slice, after checking the slice is big enough.</summary>
    private Span<T> Elements(Slice slice, long needed, string name, [CallerMemberName] string operation = "")
    {
        if (needed < 0) throw new ArgumentOutOfRangeException(name, $"{operation}: negative size {needed} for {name}.");
        if (slice.Length < needed)
        {
            throw new ArgumentException($"{operation}: {name} {slice} is shorter than the {needed} elements needed.",
                name);
        }

        T[] arena = arenas[ArenaIndex(slice.Arena)];
        if (slice.Offset < 0 || slice.Offset + slice.Length > arena.Length)
        {
            throw new ArgumentOutOfRangeException(name,
                $"{operation}: {name} {slice} lies outside the {slice.Arena} arena of {arena.Length} elements.");
        }

        return arena.AsSpan((int)slice.Offset, (int)needed);
    }

    private Span<T> OptionalElements(Slice? slice, long needed, string name,
        [CallerMemberName] string operation = "") =>
        slice is { } present ? Elements(present, needed, name, operation) : [];

    private Span<int> Indices(IndexSlice slice, long needed, string name, [CallerMemberName] string operation = "")
    {
        if (needed < 0) throw new ArgumentOutOfRangeException(name, $"{operation}: negative size {needed} for {name}.");
        if (slice.Length < needed)
        {
            throw new ArgumentException($"{operation}: {name} {slice} is shorter than the {needed} indices needed.",
                name);
        }

        if (slice.Offset < 0 || slice.Offset + slice.Length > indices.Length)
        {
            throw new ArgumentOutOfRangeException(name,
                $"{operation}: {name} {slice} lies outside the index arena of {indices.Length} elements.");
        }

        return indices.AsSpan((int)slice.Offset, (int)needed);
    }

    /// <summary>The arena array and start of a slice already validated by <see cref="Elements"/>, for parallel loops.</summary>
    private (T[] Arena, int Offset) Place(Slice slice) => (arenas[(int)slice.Arena], (int)slice.Offset);

    private T[] Scratch(long elements)
    {
        if (scratch.Length < elements) scratch = new T[CheckedLength(elements)];
        return scratch;
    }
}
