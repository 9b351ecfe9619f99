using System;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The CPU backend with the fused optimizer step of <see cref="FusedAdamReference"/>: a program compiled over it makes
/// the engine take its fused path (as over CudaOps), while every tensor operation is CpuOps'.
/// </summary>
internal sealed class FusedReferenceOps : ITensorOps<float>, IFusedOptimizerOps
{
    private readonly CpuOps<float> _cpu = new();
    private readonly FusedAdamReference _fused;

    private readonly bool _checkAddLayerNorm;

    /// <param name="checkAddLayerNorm">
    /// Runs <see cref="AddLayerNorm"/> as a one-pass device kernel may: it asserts that no output overlaps an operand
    /// (the sum may be an operand exactly) and fills the outputs with NaN before the unfused sequence runs, so a
    /// program whose buffer plan let an output share memory with an operand still being read computes something else.
    /// </param>
    public FusedReferenceOps(bool checkAddLayerNorm = false)
    {
        _fused = new FusedAdamReference(_cpu);
        _checkAddLayerNorm = checkAddLayerNorm;
    }

    /// <summary>How many <see cref="CrossEntropyBackward"/> and <see cref="CrossEntropyWithGradient"/> calls the program made.</summary>
    public int CrossEntropyBackwardCalls { get; private set; }

    /// <inheritdoc cref="CrossEntropyBackwardCalls"/>
    public int CrossEntropyWithGradientCalls { get; private set; }

    /// <summary>How many <see cref="AddLayerNorm"/> calls the program made.</summary>
    public int AddLayerNormCalls { get; private set; }

    // ---- IFusedOptimizerOps: the reference ----
    public bool SupportsFusedOptimizer(StorageType storage) => _fused.SupportsFusedOptimizer(storage);
    public void CreateOptimizerState(StorageType storage, long start, long length) => _fused.CreateOptimizerState(storage, start, length);
    public GradientMeasurement MeasureGradients(bool checkOverflow) => _fused.MeasureGradients(checkOverflow);
    public void AdamStep(in FusedAdamStep step) => _fused.AdamStep(step);
    public void LionStep(in FusedLionStep step) => _fused.LionStep(step);
    public void AdagradStep(in FusedAdagradStep step) => _fused.AdagradStep(step);
    public void ReadMasterWeights(Span<float> destination) => _fused.ReadMasterWeights(destination);
    public void WriteMasterWeights(ReadOnlySpan<float> source) => _fused.WriteMasterWeights(source);
    public void ReadMoments(Span<float> expAvg, Span<float> expAvgSq) => _fused.ReadMoments(expAvg, expAvgSq);
    public void WriteMoments(ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq) => _fused.WriteMoments(expAvg, expAvgSq);
    public void ReleaseOptimizerState() => _fused.ReleaseOptimizerState();

    // ---- ITensorOps<float>: CpuOps ----
    public void Allocate(Arena arena, long elements) => _cpu.Allocate(arena, elements);
    public void AllocateIndices(long elements) => _cpu.AllocateIndices(elements);
    public void AllocateActivationWindows(int count) => _cpu.AllocateActivationWindows(count);
    public void SelectActivationWindow(int window) => _cpu.SelectActivationWindow(window);
    public void AllocateHostActivations(long elements) => _cpu.AllocateHostActivations(elements);
    public void StashActivation(Slice source, long hostOffset) => _cpu.StashActivation(source, hostOffset);
    public void RestoreActivation(long hostOffset, Slice destination) => _cpu.RestoreActivation(hostOffset, destination);
    public void WaitForStash(long hostOffset) => _cpu.WaitForStash(hostOffset);
    public void WaitForRestore(long hostOffset) => _cpu.WaitForRestore(hostOffset);
    public Span<float> View(Arena arena) => _cpu.View(arena);
    public void LoadIndices(ReadOnlySpan<int> source, IndexSlice destination) => _cpu.LoadIndices(source, destination);
    public void Load(ReadOnlySpan<float> source, Slice destination) => _cpu.Load(source, destination);
    public void Store(Slice source, Span<float> destination) => _cpu.Store(source, destination);
    public void Zero(Slice destination) => _cpu.Zero(destination);
    public void Positions(IndexSlice output, int batch, int sequence) => _cpu.Positions(output, batch, sequence);
    public void Embedding(IndexSlice ids, Slice table, Slice output, int rows, int dim) => _cpu.Embedding(ids, table, output, rows, dim);
    public void EmbeddingBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim) => _cpu.EmbeddingBackward(ids, dOutput, dTable, rows, dim);
    public void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim) => _cpu.Linear(x, weight, bias, y, rows, inDim, outDim);

    public void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias, int rows, int inDim, int outDim, bool accumulate)
        => _cpu.LinearBackward(x, weight, dy, dx, dWeight, dBias, rows, inDim, outDim, accumulate);

    public void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim)
        => _cpu.LinearGelu(x, weight, bias, preActivation, y, rows, inDim, outDim);

    public void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation, Slice dWeight, Slice? dBias, int rows, int inDim, int outDim)
        => _cpu.GeluLinearBackward(preActivation, x, weight, dy, dPreActivation, dWeight, dBias, rows, inDim, outDim);

    public void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
        => _cpu.LayerNorm(x, gamma, beta, y, mean, rstd, rows, dim);

    public void AddLayerNorm(Slice a, Slice b, Slice sum, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        AddLayerNormCalls++;
        if (_checkAddLayerNorm)
        {
            bool sumIsOperand = sum == a || sum == b;
            Slice[] outputs = sumIsOperand ? [y, mean, rstd] : [sum, y, mean, rstd];
            Slice[] read = [a, b, gamma, beta];
            for (int i = 0; i < outputs.Length; i++)
            {
                foreach (Slice operand in read)
                    if (Overlap(outputs[i], operand)) throw new InvalidOperationException($"AddLayerNorm output {outputs[i]} overlaps operand {operand}");
                for (int j = i + 1; j < outputs.Length; j++)
                    if (Overlap(outputs[i], outputs[j])) throw new InvalidOperationException($"AddLayerNorm outputs {outputs[i]} and {outputs[j]} overlap");
            }
            foreach (Slice output in outputs)
            {
                var poison = new float[output.Length];
                Array.Fill(poison, float.NaN);
                _cpu.Load(poison, output);
            }
        }
        _cpu.AddLayerNorm(a, b, sum, gamma, beta, y, mean, rstd, rows, dim);
    }

    private static bool Overlap(Slice x, Slice y) =>
        x.Arena == y.Arena && x.Offset < y.Offset + y.Length && y.Offset < x.Offset + x.Length;

    public void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx, Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate)
        => _cpu.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, dim, accumulate);

    public void Gelu(Slice x, Slice y, long count) => _cpu.Gelu(x, y, count);
    public void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate) => _cpu.GeluBackward(x, dy, dx, count, accumulate);
    public void AddBias(Slice y, Slice bias, int rows, int dim) => _cpu.AddBias(y, bias, rows, dim);
    public void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim) => _cpu.AddBiasBackward(dy, dBias, rows, dim);
    public void Add(Slice a, Slice b, Slice y, long count) => _cpu.Add(a, b, y, count);
    public void AddBackward(Slice dy, Slice dx, long count, bool accumulate) => _cpu.AddBackward(dy, dx, count, accumulate);

    public void Scale(Slice x, Slice y, float factor, long count) => _cpu.Scale(x, y, factor, count);

    public void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
        => _cpu.GatherTokens(x, kept, y, batch, sequence, keptCount, dim);

    public void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        => _cpu.GatherTokensBackward(dy, kept, dx, batch, sequence, keptCount, dim, accumulate);

    public void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
        => _cpu.ScatterTokens(x, layer, kept, y, batch, sequence, keptCount, dim);

    public void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        => _cpu.ScatterTokensBackward(dy, kept, dx, batch, sequence, keptCount, dim, accumulate);

    public global::Shardwise.Sparsity.SparseAttentionPattern? AttentionSparsity
    {
        get => _cpu.AttentionSparsity;
        set => _cpu.AttentionSparsity = value;
    }

    public void Attention(Slice qkv, Slice y, Slice logSumExp, int batch, int sequence, int heads, int dim)
        => _cpu.Attention(qkv, y, logSumExp, batch, sequence, heads, dim);

    public void AttentionBackward(Slice qkv, Slice y, Slice logSumExp, Slice dy, Slice dqkv, int batch, int sequence, int heads, int dim, bool accumulate)
        => _cpu.AttentionBackward(qkv, y, logSumExp, dy, dqkv, batch, sequence, heads, dim, accumulate);

    public float CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary) => _cpu.CrossEntropy(logits, targets, rows, vocabulary);

    public void EmbeddingRange(IndexSlice ids, Slice table, Slice output, int rows, int dim, int first, int count)
        => _cpu.EmbeddingRange(ids, table, output, rows, dim, first, count);

    public void EmbeddingRangeBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim, int first, int count)
        => _cpu.EmbeddingRangeBackward(ids, dOutput, dTable, rows, dim, first, count);

    public void CrossEntropyRowMax(Slice logits, Slice rowMax, int rows, int vocabulary) => _cpu.CrossEntropyRowMax(logits, rowMax, rows, vocabulary);

    public void CrossEntropyPartials(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice targetLogit, int rows, int vocabulary, int first)
        => _cpu.CrossEntropyPartials(logits, targets, rowMax, rowSum, targetLogit, rows, vocabulary, first);

    public float CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, IndexSlice targets, int rows)
        => _cpu.CrossEntropyFromPartials(rowMax, rowSum, targetLogit, targets, rows);

    public void CrossEntropyRangeBackward(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice dLogits, int rows, int vocabulary, int first,
        float scale, bool accumulate)
        => _cpu.CrossEntropyRangeBackward(logits, targets, rowMax, rowSum, dLogits, rows, vocabulary, first, scale, accumulate);

    public void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary, float scale, bool accumulate)
    {
        CrossEntropyBackwardCalls++;
        _cpu.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, scale, accumulate);
    }

    public float CrossEntropyWithGradient(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary, float scale, bool accumulate)
    {
        CrossEntropyWithGradientCalls++;
        return _cpu.CrossEntropyWithGradient(logits, targets, dLogits, rows, vocabulary, scale, accumulate);
    }
}
