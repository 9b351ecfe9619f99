using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Plans;

namespace Shardwise.Pipeline.Probe;

/// <summary>
/// A small language model written by hand (no generator) to test the pipeline runtime: token embedding E [V, H], then
/// <see cref="Blocks"/> blocks y = GeLU(x·Wᵀ + b), then logits = x·Eᵀ with the embedding tied as the output head, then
/// cross-entropy. Cut into p stages of equal block counts (the first stage also embeds, the last holds a tied copy of E
/// and the head); with tensor degree t the blocks alternate column-parallel (W and b split by rows) and row-parallel
/// (W split by columns, b replicated), Megatron's MLP pair, so each stage must hold whole pairs.
/// </summary>
public sealed record ChainModel(int Vocabulary = 11, int Width = 8, int Blocks = 4, int Sequence = 4)
{
    public const string Embedding = "embedding.weight";

    public static string Weight(int block) => $"blocks.{block}.weight";

    public static string Bias(int block) => $"blocks.{block}.bias";

    /// <summary>The whole model's layout (what one process trains): E, then each block's W and b.</summary>
    public ParameterLayout FullLayout()
    {
        var slots = new List<(string, int[])> { (Embedding, [Vocabulary, Width]) };
        for (int block = 0; block < Blocks; block++)
        {
            slots.Add((Weight(block), [Width, Width]));
            slots.Add((Bias(block), [Width]));
        }
        return Layout(slots);
    }

    /// <summary>How tensor parallelism splits block <paramref name="block"/>: even blocks by output rows, odd by input columns.</summary>
    public static BlockKind Kind(int block, int tensor) => tensor == 1 ? BlockKind.Plain : block % 2 == 0 ? BlockKind.ColumnParallel : BlockKind.RowParallel;

    /// <summary>The partition into <paramref name="pipeline"/> stages of tensor degree <paramref name="tensor"/>.</summary>
    public ModelPartition Partition(int pipeline, int tensor)
    {
        if (Blocks % pipeline != 0 || (tensor > 1 && Blocks / pipeline % 2 != 0) || Width % tensor != 0)
            throw new ArgumentException($"{Blocks} blocks of width {Width} do not cut into {pipeline} stages of whole tensor-parallel pairs over {tensor} ranks");
        return new ModelPartition(pipeline, tensor, Enumerable.Range(0, pipeline).Select(s => Stage(s, pipeline, tensor)).ToArray());
    }

    private StagePlan Stage(int index, int count, int tensor)
    {
        var shape = new ChainStageShape(this, index, count, tensor);
        var slots = new List<(string, int[])>();
        var parameters = new List<StageParameter>();
        void Add(string name, int[] localShape, TensorSplit split, bool firstHolder)
        {
            parameters.Add(new StageParameter(slots.Count, name, split, firstHolder));
            slots.Add((name, localShape));
        }

        if (shape.IsFirst) Add(Embedding, [Vocabulary, Width], TensorSplit.Replicated, true);
        foreach (int block in shape.BlockIndices)
        {
            switch (Kind(block, tensor))
            {
                case BlockKind.ColumnParallel:
                    Add(Weight(block), [Width / tensor, Width], new TensorSplit(SplitAxis.Rows, 1), true);
                    Add(Bias(block), [Width / tensor], new TensorSplit(SplitAxis.Rows, 1), true);
                    break;
                case BlockKind.RowParallel:
                    Add(Weight(block), [Width, Width / tensor], new TensorSplit(SplitAxis.Columns, 1), true);
                    Add(Bias(block), [Width], TensorSplit.Replicated, true);
                    break;
                default:
                    Add(Weight(block), [Width, Width], TensorSplit.Replicated, true);
                    Add(Bias(block), [Width], TensorSplit.Replicated, true);
                    break;
            }
        }
        if (shape.IsLast && !shape.IsFirst) Add(Embedding, [Vocabulary, Width], TensorSplit.Replicated, false);

        var tied = new List<TiedParameter>();
        if (count > 1 && (shape.IsFirst || shape.IsLast))
            tied.Add(new TiedParameter(shape.IsFirst ? 0 : slots.Count - 1, Embedding, [0, count - 1]));
        var activations = new ActivationPlan([], shape.ArenaElementsPerSample, shape.ArenaElementsPerSample, shape.IndexElementsPerSample, Sequence);
        ParameterLayout layout = Layout(slots);
        // No sharing in the gradient pool: every slot keeps its layout place (ZeRO-2 only needs GradientFinal events).
        var gradientPool = new GradientPool(layout.Slots.Select(slot => slot.Offset).ToArray(), layout.TotalElements);
        return new StagePlan(index, count, tensor, $"blocks {shape.BlockIndices.First()}..{shape.BlockIndices.Last()}", layout, activations,
            gradientPool, new ParameterPool([], [], 0, [], []), parameters,
            shape.IsFirst ? 0 : Sequence * Width, shape.IsLast ? 0 : Sequence * Width, tied);
    }

    private static ParameterLayout Layout(List<(string Name, int[] Shape)> slots)
    {
        long offset = 0;
        var result = new ParameterSlot[slots.Count];
        for (int i = 0; i < slots.Count; i++)
        {
            long length = slots[i].Shape.Aggregate(1L, (a, b) => a * b);
            result[i] = new ParameterSlot(slots[i].Name, slots[i].Shape, offset, length, ParameterInit.Normal);
            offset += length;
        }
        return new ParameterLayout(result, offset);
    }
}

/// <summary>How one block is computed under tensor parallelism.</summary>
public enum BlockKind
{
    Plain,
    /// <summary>Each rank computes its share of the output features from the whole input.</summary>
    ColumnParallel,
    /// <summary>Each rank multiplies its share of the input features; the partial sums are all-reduced.</summary>
    RowParallel,
}
