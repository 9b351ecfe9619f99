using Shardwise.Ops;

namespace Shardwise.Plans;

/// <summary>
/// One pipeline stage of a partitioned model, for one tensor-parallel rank: the layers the static cut gave this stage,
/// compiled as a straight-line program like <c>Compiled&lt;T&gt;</c>. The activation crossing into the stage is
/// received into <see cref="ReceivedActivation"/> before <c>Forward</c>; the one crossing out is read from
/// <see cref="SentActivation"/> after it. In backward the gradient of the output is received into
/// <see cref="OutputGradient"/> and the gradient of the input is sent from <see cref="InputGradient"/>.
/// <c>Forward</c> returns the mean loss on the last stage and zero elsewhere; <c>Backward(scale)</c> applies
/// <c>scale</c> only on the last stage (earlier stages receive gradients that already carry it).
/// </summary>
public abstract class CompiledStage<T> : CompiledLanguageModel<T> where T : unmanaged
{
    protected CompiledStage(ITensorOps<T> ops, int batch, StagePlan stage)
        : base(ops, batch, stage.Layout, stage.Activations)
    {
        Stage = stage;
    }

    /// <summary>This stage's plan: layout, shard map, boundaries.</summary>
    public StagePlan Stage { get; }

    public bool IsFirst => Stage.Index == 0;

    public bool IsLast => Stage.Index == Stage.Count - 1;

    /// <summary>The previous stage's output, received here before <c>Forward</c> (empty on the first stage).</summary>
    public abstract Slice ReceivedActivation { get; }

    /// <summary>This stage's output for the next stage (empty on the last stage).</summary>
    public abstract Slice SentActivation { get; }

    /// <summary>∂L/∂<see cref="ReceivedActivation"/> after <c>Backward</c>, to send to the previous stage (empty on the first stage).</summary>
    public abstract Slice InputGradient { get; }

    /// <summary>∂L/∂<see cref="SentActivation"/>, received here before <c>Backward</c> (empty on the last stage).</summary>
    public abstract Slice OutputGradient { get; }

    /// <summary>
    /// The tensor-parallel group the generated all-reduces run over (Megatron's f and g). Null means a tensor degree
    /// of 1; a program planned for t &gt; 1 refuses to run without one.
    /// </summary>
    public ITensorParallelGroup? TensorParallel { get; set; }

    /// <summary>This rank's index within its tensor-parallel group (0 without one).</summary>
    public int TensorRank => TensorParallel?.Rank ?? 0;

    /// <summary>Gives the activation and index arenas one window per micro-batch in flight (1F1B keeps p − s).</summary>
    public void UseActivationWindows(int count) => Ops.AllocateActivationWindows(count);

    /// <summary>Selects the window of the micro-batch the next forward or backward works on.</summary>
    public void SelectActivationWindow(int window) => Ops.SelectActivationWindow(window);

    /// <summary>Sums <paramref name="data"/> over the tensor-parallel group, in place (emitted by the tensor split).</summary>
    protected void TensorParallelAllReduce(Slice data) => TensorGroup()?.AllReduceSum(data);

    /// <summary>Element-wise maximum of <paramref name="data"/> over the tensor-parallel group, in place (the vocabulary-parallel loss).</summary>
    protected void TensorParallelAllReduceMax(Slice data) => TensorGroup()?.AllReduceMax(data);

    /// <summary>Keeps this rank's part of a checkpointed input until backward (<c>[Checkpoint(PartitionInputs = true)]</c>).</summary>
    protected void TensorParallelKeepPart(Slice value, Slice part) => TensorGroup()?.KeepPart(value, part);

    /// <summary>Puts a checkpointed input back together from every tensor rank's part, before its recompute.</summary>
    protected void TensorParallelGatherParts(Slice part, Slice value) => TensorGroup()?.GatherParts(part, value);

    /// <summary>The group the generated collectives run over; null for a tensor degree of 1 (nothing to reduce).</summary>
    private ITensorParallelGroup? TensorGroup()
    {
        if (Stage.Tensor == 1) return null;
        return TensorParallel ?? throw new global::System.InvalidOperationException(
            $"Stage {Stage.Index} was planned for tensor degree {Stage.Tensor} but has no tensor-parallel group.");
    }
}

/// <summary>The tensor-parallel group of one rank, as the generated stage programs see it.</summary>
public interface ITensorParallelGroup
{
    int Rank { get; }

    int Size { get; }

    /// <summary>Sums a planned buffer over the group, in place.</summary>
    void AllReduceSum(Slice data);

    /// <summary>Element-wise maximum of a planned buffer over the group, in place.</summary>
    void AllReduceMax(Slice data);

    /// <summary>
    /// Copies this rank's part of <paramref name="value"/> (<see cref="TensorParts.Of"/>: elements [r·c, min((r + 1)·c, n)),
    /// c = ⌈n / t⌉) to the start of <paramref name="part"/>. <paramref name="value"/> holds the same on every rank.
    /// </summary>
    void KeepPart(Slice value, Slice part);

    /// <summary>Rebuilds <paramref name="value"/> from every rank's <paramref name="part"/>: <see cref="KeepPart"/> undone over the group.</summary>
    void GatherParts(Slice part, Slice value);
}

/// <summary>How a value of n elements is cut into t parts, one per tensor rank: ⌈n / t⌉ each, the last ones shorter (or empty).</summary>
public static class TensorParts
{
    /// <summary>Rank <paramref name="rank"/>'s part: where it starts, how many elements it has, and the common part length.</summary>
    public static (long From, long Count, long Chunk) Of(long elements, int rank, int ranks)
    {
        long chunk = (elements + ranks - 1) / ranks;
        long from = System.Math.Min(elements, rank * chunk);
        return (from, System.Math.Min(chunk, elements - from), chunk);
    }
}
