using System;
using System.Collections.Generic;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// A backend decorator for ZeRO-2 and ZeRO-3: the generated program still addresses parameters and their gradients
/// by layout offsets, but their memory is the small pools the generator planned, not full-size buffers.
/// Gradients (stage ≥ 2) live in <see cref="GradientPool"/>: the engine reduces each slot to its owners when the
/// program calls <c>GradientFinal</c>, then clears its region. Parameters (stage 3, after
/// <see cref="StartParameterStreaming"/>) live in <see cref="ParameterPool"/> while resident, or, for slots kept whole
/// (stage3_param_persistence_threshold), in a persistent region after it. Everything else passes through.
/// </summary>
public sealed class GradientStreamingOps<T> : ITensorOps<T> where T : unmanaged
{
    private readonly ITensorOps<T> _inner;
    private readonly ParameterLayout _layout;
    private readonly GradientPool _pool;
    private readonly Dictionary<long, (long PoolOffset, long Length)> _slots = new();
    private readonly Dictionary<long, int> _slotIndex = new();
    private readonly Dictionary<long, long> _residentParameters = new(); // slot offset → parameter pool offset
    private readonly ParameterPool? _plannedParameterPool;
    private ParameterPool? _parameterPool;
    private bool[] _persistent = Array.Empty<bool>();
    private long _parameterArenaElements;

    /// <param name="parameterPool">The ZeRO-3 residency plan; null when parameters stay whole (stage 2).</param>
    public GradientStreamingOps(ITensorOps<T> inner, ParameterLayout layout, GradientPool pool, ParameterPool? parameterPool = null)
    {
        _inner = inner;
        _layout = layout;
        _pool = pool;
        _plannedParameterPool = parameterPool;
        for (int i = 0; i < layout.Slots.Count; i++)
        {
            _slots[layout.Slots[i].Offset] = (pool.Offsets[i], layout.Slots[i].Length);
            _slotIndex[layout.Slots[i].Offset] = i;
        }
    }

    /// <summary>The ZeRO-3 residency plan this backend was built with, if any.</summary>
    public ParameterPool? ParameterPlan => _plannedParameterPool;

    /// <summary>Whether this backend was built for ZeRO-3 (it streams parameters once the engine starts it).</summary>
    public bool PlansParameterStreaming => _plannedParameterPool is not null;

    /// <summary>Whether parameters are streamed (ZeRO-3) rather than held whole.</summary>
    public bool StreamsParameters => _parameterPool is not null;

    /// <summary>Elements of the parameter arena: the full layout before streaming starts, then pool + persistent region.</summary>
    public long ParameterArenaElements => _parameterArenaElements;

    /// <summary>
    /// Switches to ZeRO-3: drops the full parameter buffer (the engine has taken its partition from it) for the
    /// planned pool, plus a region after it where <paramref name="persistentSlots"/> stay whole.
    /// </summary>
    public void StartParameterStreaming(IReadOnlyList<int> persistentSlots)
    {
        var pool = _plannedParameterPool ?? throw new InvalidOperationException("no parameter residency plan was given: build the backend for ZeRO-3");
        _parameterPool = pool;
        long offset = pool.PoolElements;
        _residentParameters.Clear();
        foreach (int slot in persistentSlots)
        {
            _residentParameters[_layout.Slots[slot].Offset] = offset;
            offset += _layout.Slots[slot].Length;
        }
        PersistentSlots = persistentSlots;
        _persistent = new bool[_layout.Slots.Count];
        foreach (int slot in persistentSlots) _persistent[slot] = true;
        _parameterArenaElements = offset;
        _inner.Allocate(Arena.Parameters, offset);
    }

    public IReadOnlyList<int> PersistentSlots { get; private set; } = Array.Empty<int>();

    /// <summary>Where a parameter slot lives now (stage 3): its pool or persistent region.</summary>
    public Slice ResidentSlice(int slot)
    {
        var s = _layout.Slots[slot];
        return new Slice(Arena.Parameters, _residentParameters[s.Offset], s.Length);
    }

    /// <summary>Maps a slot into the parameter pool for a phase; returns the region to gather it into.</summary>
    public Slice MakeResident(int slot, int phase)
    {
        var s = _layout.Slots[slot];
        if (!_residentParameters.ContainsKey(s.Offset) || !IsPersistent(slot))
            _residentParameters[s.Offset] = _parameterPool!.Offset(slot, phase);
        return ResidentSlice(slot);
    }

    public void Release(int slot)
    {
        if (!IsPersistent(slot)) _residentParameters.Remove(_layout.Slots[slot].Offset);
    }

    public bool IsPersistent(int slot) => slot < _persistent.Length && _persistent[slot];

    public ITensorOps<T> Inner => _inner;

    /// <summary>The backend under <paramref name="ops"/>: the decorated one for ZeRO-2/3's streaming ops, else <paramref name="ops"/> itself.</summary>
    public static ITensorOps<T> Backend(ITensorOps<T> ops) => ops is GradientStreamingOps<T> streaming ? streaming.Inner : ops;

    public long PoolElements => _pool.PoolElements;

    /// <summary>The pool region that holds a layout slot's gradient.</summary>
    public Slice PoolSlice(ParameterSlot slot) => new(Arena.Gradients, _slots[slot.Offset].PoolOffset, slot.Length);

    public void Allocate(Arena arena, long elements)
    {
        if (arena == Arena.Parameters) _parameterArenaElements = elements;
        _inner.Allocate(arena, arena == Arena.Gradients ? _pool.PoolElements : elements);
    }

    public void AllocateIndices(long elements) => _inner.AllocateIndices(elements);

    public void AllocateActivationWindows(int count) => _inner.AllocateActivationWindows(count);

    public void SelectActivationWindow(int window) => _inner.SelectActivationWindow(window);

    public void AllocateHostActivations(long elements) => _inner.AllocateHostActivations(elements);

    public void StashActivation(Slice source, long hostOffset) => _inner.StashActivation(source, hostOffset);

    public void RestoreActivation(long hostOffset, Slice destination) => _inner.RestoreActivation(hostOffset, destination);

    public void WaitForStash(long hostOffset) => _inner.WaitForStash(hostOffset);

    public void WaitForRestore(long hostOffset) => _inner.WaitForRestore(hostOffset);

    public void EmbeddingRange(IndexSlice ids, Slice table, Slice output, int rows, int dim, int first, int count)
        => _inner.EmbeddingRange(ids, P(table), output, rows, dim, first, count);

    public void EmbeddingRangeBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim, int first, int count)
        => _inner.EmbeddingRangeBackward(ids, dOutput, Map(dTable), rows, dim, first, count);

    public void CrossEntropyRowMax(Slice logits, Slice rowMax, int rows, int vocabulary) => _inner.CrossEntropyRowMax(logits, rowMax, rows, vocabulary);

    public void CrossEntropyPartials(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice targetLogit, int rows, int vocabulary, int first)
        => _inner.CrossEntropyPartials(logits, targets, rowMax, rowSum, targetLogit, rows, vocabulary, first);

    public T CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, IndexSlice targets, int rows) => _inner.CrossEntropyFromPartials(rowMax, rowSum, targetLogit, targets, rows);

    public void CrossEntropyRangeBackward(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice dLogits, int rows, int vocabulary,
        int first, T scale, bool accumulate)
        => _inner.CrossEntropyRangeBackward(logits, targets, rowMax, rowSum, dLogits, rows, vocabulary, first, scale, accumulate);

    public void AddBias(Slice y, Slice bias, int rows, int dim) => _inner.AddBias(y, P(bias), rows, dim);

    public void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim) => _inner.AddBiasBackward(dy, Map(dBias), rows, dim);

    /// <summary>For <see cref="Arena.Gradients"/> this is the pool, not the layout: read slots through <see cref="PoolSlice"/>.</summary>
    public Span<T> View(Arena arena) => _inner.View(arena);

    public void LoadIndices(ReadOnlySpan<int> source, IndexSlice destination) => _inner.LoadIndices(source, destination);

    public void Load(ReadOnlySpan<T> source, Slice destination) => _inner.Load(source, Map(P(destination)));

    public void Store(Slice source, Span<T> destination) => _inner.Store(Map(P(source)), destination);

    public void Zero(Slice destination)
    {
        // Clearing "all gradients" (ZeroGradients) clears the whole pool.
        bool wholeSlot = _slots.TryGetValue(destination.Offset, out var slot) && slot.Length == destination.Length;
        if (destination.Arena == Arena.Gradients && !wholeSlot)
            _inner.Zero(new Slice(Arena.Gradients, 0, _pool.PoolElements));
        else
            _inner.Zero(Map(destination));
    }

    public void Positions(IndexSlice output, int batch, int sequence) => _inner.Positions(output, batch, sequence);

    public void Embedding(IndexSlice ids, Slice table, Slice output, int rows, int dim) => _inner.Embedding(ids, P(table), output, rows, dim);

    public void EmbeddingBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim)
        => _inner.EmbeddingBackward(ids, dOutput, Map(dTable), rows, dim);

    public void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim)
        => _inner.Linear(x, P(weight), bias is { } b ? P(b) : null, y, rows, inDim, outDim);

    public void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias, int rows, int inDim, int outDim, bool accumulate)
        => _inner.LinearBackward(x, P(weight), dy, dx, Map(dWeight), dBias is { } b ? Map(b) : null, rows, inDim, outDim, accumulate);

    public void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim)
        => _inner.LinearGelu(x, P(weight), bias is { } b ? P(b) : null, preActivation, y, rows, inDim, outDim);

    public void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation, Slice dWeight, Slice? dBias, int rows, int inDim, int outDim)
        => _inner.GeluLinearBackward(preActivation, x, P(weight), dy, dPreActivation, Map(dWeight), dBias is { } b ? Map(b) : null, rows, inDim, outDim);

    public void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
        => _inner.LayerNorm(x, P(gamma), P(beta), y, mean, rstd, rows, dim);

    public void AddLayerNorm(Slice a, Slice b, Slice sum, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
        => _inner.AddLayerNorm(a, b, sum, P(gamma), P(beta), y, mean, rstd, rows, dim);

    public void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx, Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate)
        => _inner.LayerNormBackward(x, P(gamma), mean, rstd, dy, dx, Map(dGamma), Map(dBeta), rows, dim, accumulate);

    public void Gelu(Slice x, Slice y, long count) => _inner.Gelu(x, y, count);

    public void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate) => _inner.GeluBackward(x, dy, dx, count, accumulate);

    public void Add(Slice a, Slice b, Slice y, long count) => _inner.Add(a, b, y, count);

    public void AddBackward(Slice dy, Slice dx, long count, bool accumulate) => _inner.AddBackward(dy, dx, count, accumulate);

    public void Scale(Slice x, Slice y, T factor, long count) => _inner.Scale(x, y, factor, count);

    public void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
        => _inner.GatherTokens(x, kept, y, batch, sequence, keptCount, dim);

    public void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        => _inner.GatherTokensBackward(dy, kept, dx, batch, sequence, keptCount, dim, accumulate);

    public void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
        => _inner.ScatterTokens(x, layer, kept, y, batch, sequence, keptCount, dim);

    public void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        => _inner.ScatterTokensBackward(dy, kept, dx, batch, sequence, keptCount, dim, accumulate);

    public global::Shardwise.Sparsity.SparseAttentionPattern? AttentionSparsity
    {
        get => _inner.AttentionSparsity;
        set => _inner.AttentionSparsity = value;
    }

    public IActivationQuantizer? ActivationQuantizer
    {
        get => _inner.ActivationQuantizer;
        set => _inner.ActivationQuantizer = value;
    }

    public void Attention(Slice qkv, Slice y, Slice logSumExp, int batch, int sequence, int heads, int dim)
        => _inner.Attention(qkv, y, logSumExp, batch, sequence, heads, dim);

    public void AttentionBackward(Slice qkv, Slice y, Slice logSumExp, Slice dy, Slice dqkv, int batch, int sequence, int heads, int dim, bool accumulate)
        => _inner.AttentionBackward(qkv, y, logSumExp, dy, dqkv, batch, sequence, heads, dim, accumulate);

    public T CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary) => _inner.CrossEntropy(logits, targets, rows, vocabulary);

    public void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary, T scale, bool accumulate)
        => _inner.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, scale, accumulate);

    public T CrossEntropyWithGradient(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary, T scale, bool accumulate)
        => _inner.CrossEntropyWithGradient(logits, targets, dLogits, rows, vocabulary, scale, accumulate);

    /// <summary>A parameter slice, translated to where the slot is resident when parameters are streamed.</summary>
    private Slice P(Slice slice)
    {
        if (slice.Arena != Arena.Parameters || _parameterPool is null) return slice;
        if (!_residentParameters.TryGetValue(slice.Offset, out long offset))
        {
            string name = _slotIndex.TryGetValue(slice.Offset, out int i) ? _layout.Slots[i].Name : $"offset {slice.Offset}";
            throw new InvalidOperationException($"parameter '{name}' is used while not gathered; the residency plan and the program disagree");
        }
        return new Slice(Arena.Parameters, offset, slice.Length);
    }

    private Slice Map(Slice slice)
    {
        if (slice.Arena != Arena.Gradients) return slice;
        if (!_slots.TryGetValue(slice.Offset, out var slot) || slot.Length != slice.Length)
            throw new InvalidOperationException($"gradient slice at layout offset {slice.Offset} (length {slice.Length}) is not a whole parameter slot; ZeRO-2 streams gradients per slot");
        return new Slice(Arena.Gradients, slot.PoolOffset, slice.Length);
    }
}
