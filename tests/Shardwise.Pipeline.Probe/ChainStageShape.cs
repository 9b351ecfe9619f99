using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Pipeline.Probe;

/// <summary>
/// One stage's activation layout (offsets per sample, never reused: the model is tiny), computed the same way by the
/// plan (<see cref="ChainModel.Partition"/>) and the program (<see cref="ChainStage"/>). Each block has its
/// pre-activation z and output y, and their gradients dz and dy; x0 is the stage's input (the embedding's output on the
/// first stage, the received activation elsewhere) and dx0 its gradient.
/// </summary>
public sealed class ChainStageShape
{
    private long _next;

    public ChainStageShape(ChainModel model, int index, int count, int tensor)
    {
        Model = model;
        Tensor = tensor;
        IsFirst = index == 0;
        IsLast = index == count - 1;
        int perStage = model.Blocks / count;
        BlockIndices = Enumerable.Range(index * perStage, perStage).ToArray();
        int s = model.Sequence, h = model.Width;
        X0 = Next(s * h);
        Dx0 = Next(s * h);
        foreach (int block in BlockIndices)
        {
            int width = OutputWidth(block);
            Z.Add(Next(s * width));
            Y.Add(Next(s * width));
            Dz.Add(Next(s * width));
            Dy.Add(Next(s * width));
        }
        if (IsLast)
        {
            Logits = Next(s * model.Vocabulary);
            DLogits = Next(s * model.Vocabulary);
        }
        ArenaElementsPerSample = _next;
    }

    public ChainModel Model { get; }

    public int Tensor { get; }

    public bool IsFirst { get; }

    public bool IsLast { get; }

    public int[] BlockIndices { get; }

    public long X0 { get; }

    public long Dx0 { get; }

    public List<long> Z { get; } = [];

    public List<long> Y { get; } = [];

    public List<long> Dz { get; } = [];

    public List<long> Dy { get; } = [];

    public long Logits { get; }

    public long DLogits { get; }

    public long ArenaElementsPerSample { get; }

    /// <summary>Token ids at 0, targets at Sequence, per sample.</summary>
    public long IndexElementsPerSample => 2L * Model.Sequence;

    /// <summary>Features of a block's output on this rank: a column-parallel block keeps its share.</summary>
    public int OutputWidth(int block) => ChainModel.Kind(block, Tensor) == BlockKind.ColumnParallel ? Model.Width / Tensor : Model.Width;

    /// <summary>Features of a block's input on this rank: a row-parallel block takes its share.</summary>
    public int InputWidth(int block) => ChainModel.Kind(block, Tensor) == BlockKind.RowParallel ? Model.Width / Tensor : Model.Width;

    private long Next(long elements)
    {
        long offset = _next;
        _next += elements;
        return offset;
    }
}
