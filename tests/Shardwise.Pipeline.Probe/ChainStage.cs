using System;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Pipeline.Probe;

/// <summary>
/// The hand-written program of one <see cref="ChainModel"/> stage for one tensor rank, built only from
/// <see cref="ITensorOps{T}"/> calls, the way generated stage programs are. With one stage of tensor degree 1 it is the
/// whole model, the single-process reference (the embedding and the head then share one slot).
/// </summary>
public sealed class ChainStage : CompiledStage<float>
{
    private readonly ChainModel _model;
    private readonly ChainStageShape _shape;
    private readonly int _rows;

    public ChainStage(ChainModel model, StagePlan plan, ITensorOps<float> ops, int batch)
        : base(ops, batch, plan)
    {
        _model = model;
        _shape = new ChainStageShape(model, plan.Index, plan.Count, plan.Tensor);
        _rows = batch * model.Sequence;
    }

    public override int SequenceLength => _model.Sequence;

    public override int VocabularySize => _model.Vocabulary;

    public override Slice Logits => Buffer(_shape.Logits, _model.Vocabulary);

    public override Slice ReceivedActivation => _shape.IsFirst ? default : Buffer(_shape.X0, _model.Width);

    public override Slice SentActivation => _shape.IsLast ? default : Buffer(_shape.Y[^1], _model.Width);

    public override Slice InputGradient => _shape.IsFirst ? default : Buffer(_shape.Dx0, _model.Width);

    public override Slice OutputGradient => _shape.IsLast ? default : Buffer(_shape.Dy[^1], _model.Width);

    private IndexSlice TokenIds => Indices(0, _model.Sequence);

    private IndexSlice TargetIds => Indices(_model.Sequence, _model.Sequence);

    /// <summary>The embedding on the first stage (slot 0); the tied copy, the last slot, on the last.</summary>
    private Slice EmbeddingTable(Arena arena) => SlotSlice(arena, IsFirst ? 0 : Layout.Slots.Count - 1);

    public override float Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets)
    {
        int h = _model.Width;
        if (IsFirst)
        {
            CheckInput(nameof(tokens), tokens.Length, _rows);
            Ops.LoadIndices(tokens, TokenIds);
            Ops.Embedding(TokenIds, EmbeddingTable(Arena.Parameters), Buffer(_shape.X0, h), _rows, h);
        }

        Slice x = Buffer(_shape.X0, h);
        for (int j = 0; j < _shape.BlockIndices.Length; j++)
        {
            int block = _shape.BlockIndices[j], inWidth = _shape.InputWidth(block), outWidth = _shape.OutputWidth(block);
            Slice z = Buffer(_shape.Z[j], outWidth), y = Buffer(_shape.Y[j], outWidth);
            if (ChainModel.Kind(block, Stage.Tensor) == BlockKind.RowParallel)
            {
                // Partial sums of this rank's input features; the bias is added once, after the sum (Megatron's g).
                Ops.Linear(x, Weight(j, Arena.Parameters), null, z, _rows, inWidth, outWidth);
                TensorParallelAllReduce(z);
                Ops.AddBias(z, Bias(j, Arena.Parameters), _rows, outWidth);
            }
            else
            {
                Ops.Linear(x, Weight(j, Arena.Parameters), Bias(j, Arena.Parameters), z, _rows, inWidth, outWidth);
            }
            Ops.Gelu(z, y, (long)_rows * outWidth);
            x = y;
        }

        if (!IsLast) return 0f;
        CheckInput(nameof(targets), targets.Length, _rows);
        Ops.LoadIndices(targets, TargetIds);
        Ops.Linear(x, EmbeddingTable(Arena.Parameters), null, Logits, _rows, h, _model.Vocabulary);
        return Ops.CrossEntropy(Logits, TargetIds, _rows, _model.Vocabulary);
    }

    public override void Backward(float scale)
    {
        int h = _model.Width, last = _shape.BlockIndices.Length - 1;
        if (IsLast)
        {
            Slice dLogits = Buffer(_shape.DLogits, _model.Vocabulary);
            Ops.CrossEntropyBackward(Logits, TargetIds, dLogits, _rows, _model.Vocabulary, scale, accumulate: false);
            Ops.LinearBackward(Buffer(_shape.Y[last], h), EmbeddingTable(Arena.Parameters), dLogits, Buffer(_shape.Dy[last], h),
                EmbeddingTable(Arena.Gradients), null, _rows, h, _model.Vocabulary, accumulate: false);
            if (!IsFirst) GradientFinal(Layout.Slots.Count - 1); // the tied copy; on one stage the embedding adds to it below
        }
        // Elsewhere Dy[last] is the received OutputGradient.

        for (int j = last; j >= 0; j--)
        {
            int block = _shape.BlockIndices[j], inWidth = _shape.InputWidth(block), outWidth = _shape.OutputWidth(block);
            Slice z = Buffer(_shape.Z[j], outWidth), dz = Buffer(_shape.Dz[j], outWidth);
            Slice x = j == 0 ? Buffer(_shape.X0, h) : Buffer(_shape.Y[j - 1], inWidth);
            Slice dx = j == 0 ? Buffer(_shape.Dx0, h) : Buffer(_shape.Dy[j - 1], inWidth);
            Ops.GeluBackward(z, Buffer(_shape.Dy[j], outWidth), dz, (long)_rows * outWidth, accumulate: false);
            switch (ChainModel.Kind(block, Stage.Tensor))
            {
                case BlockKind.RowParallel:
                    Ops.AddBiasBackward(dz, Bias(j, Arena.Gradients), _rows, outWidth);
                    Ops.LinearBackward(x, Weight(j, Arena.Parameters), dz, dx, Weight(j, Arena.Gradients), null,
                        _rows, inWidth, outWidth, accumulate: false);
                    break;
                case BlockKind.ColumnParallel:
                    Ops.LinearBackward(x, Weight(j, Arena.Parameters), dz, dx, Weight(j, Arena.Gradients), Bias(j, Arena.Gradients),
                        _rows, inWidth, outWidth, accumulate: false);
                    // Each rank's dx covers its share of the output features; the whole gradient is their sum (Megatron's f).
                    TensorParallelAllReduce(dx);
                    break;
                default:
                    Ops.LinearBackward(x, Weight(j, Arena.Parameters), dz, dx, Weight(j, Arena.Gradients), Bias(j, Arena.Gradients),
                        _rows, inWidth, outWidth, accumulate: false);
                    break;
            }
            GradientFinal(WeightSlot(j));
            GradientFinal(WeightSlot(j) + 1);
        }

        if (IsFirst)
        {
            Ops.EmbeddingBackward(TokenIds, Buffer(_shape.Dx0, h), EmbeddingTable(Arena.Gradients), _rows, h);
            GradientFinal(0);
        }
    }

    /// <summary>Block j's weight: after the embedding on the first stage, two slots per block.</summary>
    private Slice Weight(int j, Arena arena) => SlotSlice(arena, WeightSlot(j));

    private Slice Bias(int j, Arena arena) => SlotSlice(arena, WeightSlot(j) + 1);

    private int WeightSlot(int j) => (IsFirst ? 1 : 0) + 2 * j;

    private Slice SlotSlice(Arena arena, int slot) => new(arena, Layout.Slots[slot].Offset, Layout.Slots[slot].Length);

    private Slice Buffer(long offsetPerSample, int features) => Activation(offsetPerSample, (long)_model.Sequence * features);
}
