using System.Linq;
namespace Shardwise.Generator.Ir;

using Shardwise.Generator.Model;

/// <summary>Whether a value holds real numbers (and can carry a gradient) or token indices.</summary>
internal enum ValueKind
{
    Real,
    Tokens,
}

/// <summary>
/// A tensor produced or consumed by the program. <see cref="Shape"/> is per sample: the leading batch dimension is
/// chosen at run time, so every buffer's size is a constant times the batch.
/// <para>
/// <see cref="Fp32Statistics"/>: per-row values the kernels keep in fp32 whatever the storage (LayerNorm's mean and
/// rstd). They are planned at two arena elements per value (<see cref="ElementsPerSample"/>), so that an arena of
/// 16-bit elements (a GPU's in fp16/bf16) holds them at its own element size; the CPU backend, whose arena is fp32,
/// uses the first half. (The vocabulary-parallel cross-entropy's row statistics are not marked: tensor-parallel
/// stages store fp32, because their all-reduces move those statistics as arena elements.)
/// </para>
/// </summary>
internal sealed record IrValue(int Id, ValueKind Kind, EquatableArray<int> Shape, string Name, bool Fp32Statistics = false)
{
    /// <summary>Arena elements that hold one fp32 statistic: two 16-bit ones.</summary>
    public const int StatisticSlots = 2;

    /// <summary>
    /// In a tensor-parallel rank's program: the value may differ between the ranks (a column-split activation, a
    /// row-parallel partial sum, anything computed from one or from a split parameter). False: every rank holds the
    /// same values (the residual stream after g's sum), which is what lets the ranks keep parts of it.
    /// </summary>
    public bool DiffersAcrossTensorRanks { get; init; }

    /// <summary>Values per sample: the product of the shape.</summary>
    public long ValuesPerSample
    {
        get
        {
            long count = 1;
            foreach (int d in Shape) count *= d;
            return count;
        }
    }

    /// <summary>Arena elements per sample: the values, twice for <see cref="Fp32Statistics"/>.</summary>
    public long ElementsPerSample => Fp32Statistics ? StatisticSlots * ValuesPerSample : ValuesPerSample;

    /// <summary>Positions per sample: every dimension except the last (the feature dimension).</summary>
    public long RowsPerSample => Shape.Count == 0 ? 1 : ValuesPerSample / Shape[Shape.Count - 1];
}

internal enum OpKind
{
    Positions,
    Embedding,
    Linear,
    LayerNorm,
    Gelu,
    Add,
    Attention,
    CrossEntropy,
    /// <summary>
    /// Megatron's f: identity forward, all-reduce of the gradient over the tensor-parallel group in backward. Placed
    /// before a column-parallel layer, whose input gradient is only a partial sum on each rank.
    /// </summary>
    TensorCopy,
    /// <summary>
    /// Megatron's g: all-reduce forward (summing a row-parallel layer's partial outputs), then the layer's bias once;
    /// identity backward.
    /// </summary>
    TensorSum,
    /// <summary>
    /// Random-LTD: loads the tokens a <c>[TokenDrop]</c> element keeps in this micro-batch, <c>[batch, kept]</c> packed
    /// in a <c>[batch, sequence]</c> index buffer (every token when none are dropped). Dims: sequence, element.
    /// </summary>
    TokenIndices,
    /// <summary>Random-LTD: the element's input rows of the kept tokens, packed at the front (Dims: sequence, width, element).</summary>
    TokenGather,
    /// <summary>
    /// Random-LTD: the element's output, its rows for the kept tokens and its input's for the others (inputs: the
    /// element's input, the element's output on the kept tokens, the kept indices; Dims: sequence, width, element).
    /// </summary>
    TokenScatter,
}

/// <summary>
/// One forward operation. <see cref="Outputs"/> holds the result first, then tensors saved for the backward pass
/// (LayerNorm's mean and rstd, attention's log-sum-exp). <see cref="Dims"/> are the op's static sizes.
/// </summary>
internal sealed record IrOp(
    OpKind Kind,
    string Layer,
    EquatableArray<int> Inputs,
    EquatableArray<int> Outputs,
    EquatableArray<int> Parameters,
    EquatableArray<int> Dims);

internal enum ParameterInit
{
    /// <summary>Normal(0, 0.02), GPT-2's initialisation for weights.</summary>
    Normal,
    Zeros,
    Ones,
}

/// <summary>
/// A trainable tensor. <see cref="EagerPath"/> is the chain of layer nodes from the model to the owning eager
/// layer; <see cref="EagerMember"/> the member path from that layer to the Parameter (e.g. <c>Qkv.Weight</c>).
/// </summary>
internal sealed record IrParameter(
    int Id,
    string Name,
    EquatableArray<int> Shape,
    ParameterInit Init,
    EquatableArray<LayerAccess> EagerPath,
    string EagerMember)
{
    public long Elements
    {
        get
        {
            long count = 1;
            foreach (int d in Shape) count *= d;
            return count;
        }
    }
}

/// <summary>A model input: a value loaded by the caller before the forward pass.</summary>
internal sealed record IrInput(string Name, int Value);

/// <summary>The traced forward program of a model, with static shapes.</summary>
internal sealed record IrGraph(
    EquatableArray<IrValue> Values,
    EquatableArray<IrOp> Ops,
    EquatableArray<IrParameter> Parameters,
    EquatableArray<IrInput> Inputs,
    int Output,
    bool OutputIsLoss)
{
    /// <summary>Whether <paramref name="value"/> is one of the program's inputs or its output (the caller's, not the arena's alone).</summary>
    public bool IsInputOrOutput(int value) => value == Output || Inputs.Any(input => input.Value == value);

    /// <summary>(tokens, targets) → cross-entropy: a program a generic trainer can drive (CompiledLanguageModel).</summary>
    public bool IsLanguageModel
        => OutputIsLoss && Inputs.Count == 2
           && Inputs.All(i => Values[i.Value].Kind == ValueKind.Tokens && Values[i.Value].Shape.Count == 1)
           && Ops[Ops.Count - 1].Inputs[1] == Inputs[1].Value;

    /// <summary>For each value, the index of the op that produces it; −1 for model inputs. Computed on each call.</summary>
    public int[] Producers()
    {
        var producers = new int[Values.Count];
        for (int v = 0; v < producers.Length; v++) producers[v] = -1;
        for (int k = 0; k < Ops.Count; k++)
            foreach (int output in Ops[k].Outputs) producers[output] = k;
        return producers;
    }

    /// <summary>
    /// For each value, the index of the one op that reads it; −1 when no op or more than one reads it (an op reading a
    /// value twice counts as two reads). Computed on each call.
    /// </summary>
    public int[] SoleReaders()
    {
        var reads = new int[Values.Count];
        var reader = new int[Values.Count];
        for (int k = 0; k < Ops.Count; k++)
        {
            foreach (int input in Ops[k].Inputs)
            {
                reads[input]++;
                reader[input] = k;
            }
        }
        for (int v = 0; v < reader.Length; v++)
            if (reads[v] != 1) reader[v] = -1;
        return reader;
    }
}
