namespace Shardwise.Plans;

/// <summary>Which axis of a parameter tensor parallelism splits.</summary>
public enum SplitAxis
{
    /// <summary>Every tensor-parallel rank holds the whole tensor (LayerNorm, a row-parallel bias).</summary>
    None,
    /// <summary>Rows (output features of a Linear, vocabulary of an embedding): rank r holds part r of each row group.</summary>
    Rows,
    /// <summary>Columns (input features of a row-parallel Linear): rank r holds columns [r·C/t, (r+1)·C/t).</summary>
    Columns,
}

/// <summary>
/// How one parameter is split across t tensor-parallel ranks. Rows split in <see cref="Groups"/> equal groups, each
/// cut into t parts (attention's fused qkv has three groups, q, k and v, so each rank keeps whole heads of each).
/// </summary>
public sealed record TensorSplit(SplitAxis Axis, int Groups)
{
    public static readonly TensorSplit Replicated = new(SplitAxis.None, 1);

    public override string ToString() => Axis switch
    {
        SplitAxis.None => "replicated",
        SplitAxis.Rows => Groups == 1 ? "rows" : $"rows in {Groups} groups",
        _ => "columns",
    };
}

/// <summary>
/// A parameter held by a stage: its local slot, the model parameter it comes from (the name in the model's full
/// <see cref="ParameterLayout"/>), how tensor parallelism splits it, and whether this stage is the first holder
/// (a tied parameter lives on several stages; norms count it once).
/// </summary>
public sealed record StageParameter(int Slot, string Name, TensorSplit Split, bool FirstHolder);

/// <summary>
/// One pipeline stage's static plan for one tensor rank: the local layout and memory plans, where each local slot
/// comes from, the activation sizes crossing in and out (per sample), and the parameters whose gradients must be
/// summed with other stages (a tied embedding and output head) before the optimizer step.
/// </summary>
public sealed record StagePlan(
    int Index,
    int Count,
    int Tensor,
    string Layers,
    ParameterLayout Layout,
    ActivationPlan Activations,
    GradientPool GradientPool,
    ParameterPool ParameterPool,
    System.Collections.Generic.IReadOnlyList<StageParameter> Parameters,
    long ReceivedElementsPerSample,
    long SentElementsPerSample,
    System.Collections.Generic.IReadOnlyList<TiedParameter> Tied)
{
    /// <summary>
    /// Whether the activation this stage receives or sends may differ between the tensor ranks (a split value crossing
    /// the cut): then every rank sends its whole slice. False (the residual stream of a Megatron model): the ranks hold
    /// the same boundary, so each may send a part and the receivers all-gather it (pipe_partitioned, grad_partitioned).
    /// </summary>
    public bool BoundaryDiffersAcrossTensorRanks { get; init; }
}

/// <summary>A parameter held by several stages: its local slot here, and every stage holding it.</summary>
public sealed record TiedParameter(int Slot, string Name, System.Collections.Generic.IReadOnlyList<int> Stages);

/// <summary>The static partition of a model: p pipeline stages, each planned for one of t tensor ranks.</summary>
public sealed record ModelPartition(int Pipeline, int Tensor, System.Collections.Generic.IReadOnlyList<StagePlan> Stages);

/// <summary>Implemented by the generated half of a language model planned with Pipeline or Tensor above 1.</summary>
public interface IPartitionedModelDefinition : ILanguageModelDefinition
{
    static abstract ModelPartition Partition { get; }

    /// <summary>Builds stage <paramref name="stage"/>'s program over a backend for a micro-batch size.</summary>
    static abstract CompiledStage<T> CompileStage<T>(int stage, Shardwise.Ops.ITensorOps<T> ops, int batch)
        where T : unmanaged, global::System.Numerics.IFloatingPointIeee754<T>;
}
