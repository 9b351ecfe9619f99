using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// The generated per-stage programs compute exactly what the whole-model program computes: the stages run in order
/// (activations handed forward, gradients handed back, by plain copies), tensor ranks as threads summing through a
/// barrier, float64. Loss equal and every local gradient equal to its slice of the whole model's gradient, with a
/// tied parameter's gradients summed over the stages that hold it.
/// </summary>
[TestClass]
public sealed class PartitionedProgramTests
{
    private const int Batch = 3;
    private const double Tolerance = 1e-10;

    [TestMethod]
    public void PipelineStagesEqualWholeModel() => Check<PipelineGpt>(PipelineGpt.Context, PipelineGpt.Vocabulary, (ops, b) => new PipelineGpt.Compiled<double>(ops, b));

    [TestMethod]
    public void TensorRanksEqualWholeModel() => Check<TensorGpt>(TensorGpt.Context, TensorGpt.Vocabulary, (ops, b) => new TensorGpt.Compiled<double>(ops, b));

    /// <summary>
    /// Block-sparse attention with a random layout per head: each tensor rank (one head of two) applies its own head's
    /// layout (<see cref="Shardwise.Sparsity.SparseAttentionPattern.ForTensorRank"/>), so the split model still equals the whole.
    /// </summary>
    [TestMethod]
    public void TensorRanksWithAPerHeadSparseLayoutEqualWholeModel()
    {
        var pattern = new Shardwise.Sparsity.SparseAttentionPattern
        {
            Mode = Shardwise.Sparsity.SparseAttentionMode.BigBird, Block = 1, NumRandomBlocks = 2, NumSlidingWindowBlocks = 1,
            NumGlobalBlocks = 0, DifferentLayoutPerHead = true, Seed = 3,
        };
        var layout = pattern.LayoutFor(2, TensorGpt.Context);
        Assert.AreNotEqual(layout.Render(0), layout.Render(1), "the heads' layouts differ, so a rank taking the wrong one fails");
        Assert.AreEqual(layout.Render(1), pattern.ForTensorRank(1, 2).LayoutFor(1, TensorGpt.Context).Render(0));
        Check<TensorGpt>(TensorGpt.Context, TensorGpt.Vocabulary, (ops, b) => new TensorGpt.Compiled<double>(ops, b), pattern);
    }

    [TestMethod]
    public void PipelineTimesTensorEqualsWholeModel() => Check<HybridGpt>(HybridGpt.Context, HybridGpt.Vocabulary, (ops, b) => new HybridGpt.Compiled<double>(ops, b));

    [TestMethod]
    public void CheckpointedStagesEqualWholeModel()
    {
        Check<CheckpointedHybridGpt>(CheckpointedHybridGpt.Context, CheckpointedHybridGpt.Vocabulary, (ops, b) => new CheckpointedHybridGpt.Compiled<double>(ops, b));
        StringAssert.Contains(CheckpointedHybridGpt.PlanReport, "activation checkpointing: blocks.0..3");
        Assert.IsTrue(CheckpointedHybridGpt.Partition.Stages[0].Activations.ArenaElementsPerSample < HybridGpt.Partition.Stages[0].Activations.ArenaElementsPerSample,
            "a checkpointed stage plans a smaller activation arena");
    }

    /// <summary>
    /// Partitioned checkpoint inputs: each tensor rank keeps half of every block input the stage recomputes from
    /// (a part buffer of ⌈48 / 2⌉ = 24 elements per sample), and the ranks put it back together before the recompute;
    /// the stages still equal the whole model. (Its blocks are too small for the parts to lower the arena's peak;
    /// HostCheckpointEmitTests shows GPT-2's.)
    /// </summary>
    [TestMethod]
    public void PartitionedCheckpointStagesEqualWholeModel()
    {
        Check<PartitionedCheckpointHybridGpt>(PartitionedCheckpointHybridGpt.Context, PartitionedCheckpointHybridGpt.Vocabulary,
            (ops, b) => new PartitionedCheckpointHybridGpt.Compiled<double>(ops, b));
        var stage = PartitionedCheckpointHybridGpt.Partition.Stages[1];
        var parts = stage.Activations.Buffers.Where(b => b.Role == BufferRole.Partition).ToList();
        Assert.IsTrue(parts.Count >= 1, "stage 1 keeps the inputs of the blocks after its first in parts");
        Assert.IsTrue(parts.All(b => b.ElementsPerSample == PartitionedCheckpointHybridGpt.Context * PartitionedCheckpointHybridGpt.Width / 2), string.Join(", ", parts));
        // The whole model (one process, one tensor rank) keeps its checkpointed inputs whole.
        Assert.IsFalse(PartitionedCheckpointHybridGpt.ActivationPlan.Buffers.Any(b => b.Role == BufferRole.Partition));
    }

    [TestMethod]
    public void PartitionTablesDescribeTheSplit()
    {
        var partition = HybridGpt.Partition;
        Assert.AreEqual(2, partition.Pipeline);
        Assert.AreEqual(2, partition.Tensor);
        var first = partition.Stages[0];
        var qkv = first.Parameters.Single(p => p.Name == "blocks.0.attention.qkv.weight");
        Assert.AreEqual(new TensorSplit(SplitAxis.Rows, 3), qkv.Split);
        CollectionAssert.AreEqual(new[] { 3 * HybridGpt.Width / 2, HybridGpt.Width }, first.Layout.Slots[qkv.Slot].Shape);
        Assert.AreEqual(new TensorSplit(SplitAxis.Columns, 1), first.Parameters.Single(p => p.Name == "blocks.0.down.weight").Split);
        Assert.AreEqual(TensorSplit.Replicated, first.Parameters.Single(p => p.Name == "blocks.0.down.bias").Split);
        Assert.AreEqual((long)HybridGpt.Context * HybridGpt.Width, first.SentElementsPerSample);
        Assert.AreEqual(first.SentElementsPerSample, partition.Stages[1].ReceivedElementsPerSample);
        var tied = partition.Stages[1].Tied.Single();
        Assert.AreEqual("tokens.weight", tied.Name);
        CollectionAssert.AreEqual(new[] { 0, 1 }, tied.Stages.ToArray());
        Assert.IsFalse(partition.Stages[1].Parameters[tied.Slot].FirstHolder);
        Assert.AreEqual(new TensorSplit(SplitAxis.Rows, 1), partition.Stages[1].Parameters[tied.Slot].Split, "the tied table is split by vocabulary on both stages");
        CollectionAssert.AreEqual(new[] { HybridGpt.Vocabulary / 2, HybridGpt.Width }, partition.Stages[1].Layout.Slots[tied.Slot].Shape);
    }

    private static void Check<TModel>(int context, int vocabulary, Func<ITensorOps<double>, int, CompiledLanguageModel<double>> whole,
        Shardwise.Sparsity.SparseAttentionPattern? sparsity = null)
        where TModel : IPartitionedModelDefinition
    {
        var random = new Random(7);
        var ids = RandomData.Tokens(random, Batch * context, vocabulary);
        var targets = RandomData.Tokens(random, Batch * context, vocabulary);

        var reference = whole(new CpuOps<double> { AttentionSparsity = sparsity }, Batch);
        RandomData.Parameters(reference, seed: 11);
        reference.ZeroGradients();
        double expectedLoss = reference.Forward(ids, targets);
        reference.Backward(1.0);
        var fullParameters = reference.Parameters.ToArray();
        var fullGradients = reference.Gradients.ToArray();
        var layout = TModel.ParameterLayout;

        var partition = TModel.Partition;
        int t = partition.Tensor;
        var losses = new double[t];
        var stageGradients = new double[t][][];
        var group = new ThreadGroup(t);
        var threads = Enumerable.Range(0, t).Select(rank => new Thread(() =>
        {
            var stages = Enumerable.Range(0, partition.Pipeline).Select(s => TModel.CompileStage<double>(s,
                new CpuOps<double> { AttentionSparsity = sparsity?.ForTensorRank(rank, t) }, Batch)).ToArray();
            foreach (var stage in stages)
            {
                stage.TensorParallel = group.Member(rank, stage.Ops);
                Place(layout, fullParameters, stage.Stage, stage.Parameters, rank, t);
                stage.ZeroGradients();
            }
            double loss = 0;
            for (int s = 0; s < stages.Length; s++)
            {
                if (s > 0) Copy(stages[s - 1], stages[s - 1].SentActivation, stages[s], stages[s].ReceivedActivation);
                loss = stages[s].Forward(ids, targets);
            }
            for (int s = stages.Length - 1; s >= 0; s--)
            {
                if (s < stages.Length - 1) Copy(stages[s + 1], stages[s + 1].InputGradient, stages[s], stages[s].OutputGradient);
                stages[s].Backward(1.0);
            }
            losses[rank] = loss;
            stageGradients[rank] = stages.Select(st => st.Gradients.ToArray()).ToArray();
        })).ToList();
        threads.ForEach(th => th.Start());
        threads.ForEach(th => th.Join());

        for (int rank = 0; rank < t; rank++)
        {
            Assert.AreEqual(expectedLoss, losses[rank], Tolerance * Math.Abs(expectedLoss), $"loss on tensor rank {rank}");
            var summed = new Dictionary<string, double[]>();
            for (int s = 0; s < partition.Pipeline; s++)
            {
                var plan = partition.Stages[s];
                foreach (var parameter in plan.Parameters)
                {
                    var slot = plan.Layout.Slots[parameter.Slot];
                    var local = stageGradients[rank][s].AsSpan((int)slot.Offset, (int)slot.Length).ToArray();
                    if (summed.TryGetValue(parameter.Name, out var sum)) for (int i = 0; i < sum.Length; i++) sum[i] += local[i];
                    else summed[parameter.Name] = local;
                }
            }
            var split = partition.Stages.SelectMany(p => p.Parameters).GroupBy(p => p.Name).ToDictionary(g => g.Key, g => g.First().Split);
            Assert.AreEqual(layout.Slots.Count, summed.Count, "every model parameter lives on some stage");
            foreach (var (name, gradient) in summed)
            {
                var full = layout.Slots.Single(s => s.Name == name);
                var expected = Extract(fullGradients.AsSpan((int)full.Offset, (int)full.Length), full.Shape, split[name], rank, t);
                Assert.AreEqual(expected.Length, gradient.Length, name);
                double scale = expected.Max(Math.Abs);
                Assert.IsTrue(scale > 0, $"{name}: the reference gradient must not be zero");
                for (int i = 0; i < expected.Length; i++)
                    Assert.AreEqual(expected[i], gradient[i], Tolerance * scale + 1e-14, $"{name}[{i}] on tensor rank {rank}");
            }
        }
    }

    private static void Place(ParameterLayout full, double[] parameters, StagePlan stage, Span<double> local, int rank, int t)
    {
        foreach (var parameter in stage.Parameters)
        {
            var source = full.Slots.Single(s => s.Name == parameter.Name);
            var slot = stage.Layout.Slots[parameter.Slot];
            Extract(parameters.AsSpan((int)source.Offset, (int)source.Length), source.Shape, parameter.Split, rank, t)
                .CopyTo(local.Slice((int)slot.Offset, (int)slot.Length));
        }
    }

    /// <summary>Rank r's part of a whole tensor, written out independently of the runtime's mapping.</summary>
    private static double[] Extract(ReadOnlySpan<double> whole, int[] shape, TensorSplit split, int rank, int t)
    {
        int rows = shape[0], columns = shape.Length > 1 ? shape[1] : 1;
        var result = new List<double>();
        if (split.Axis == SplitAxis.None) return whole.ToArray();
        if (split.Axis == SplitAxis.Columns)
        {
            int part = columns / t;
            for (int r = 0; r < rows; r++) result.AddRange(whole.Slice(r * columns + rank * part, part).ToArray());
            return result.ToArray();
        }
        int groupRows = rows / split.Groups, partRows = groupRows / t;
        for (int g = 0; g < split.Groups; g++)
            result.AddRange(whole.Slice((g * groupRows + rank * partRows) * columns, partRows * columns).ToArray());
        return result.ToArray();
    }

    private static void Copy(CompiledModel<double> from, Slice source, CompiledModel<double> to, Slice destination)
    {
        Assert.AreEqual(source.Length, destination.Length, "the boundary sizes of neighbouring stages agree");
        var buffer = new double[source.Length];
        from.Read(source, buffer);
        to.Ops.Load(buffer, destination);
    }

    /// <summary>Tensor ranks as threads: an all-reduce is a barrier, a sum of every rank's copy, and a second barrier.</summary>
    private sealed class ThreadGroup(int size)
    {
        private readonly Barrier _barrier = new(size);
        private readonly double[][] _contributions = new double[size][];

        public ITensorParallelGroup Member(int rank, ITensorOps<double> ops) => new MemberGroup(this, rank, ops);

        private sealed class MemberGroup(ThreadGroup group, int rank, ITensorOps<double> ops) : ITensorParallelGroup
        {
            public int Rank => rank;

            public int Size => group._contributions.Length;

            public void AllReduceSum(Slice data) => AllReduce(data, (a, b) => a + b);

            public void AllReduceMax(Slice data) => AllReduce(data, Math.Max);

            public void KeepPart(Slice value, Slice part)
            {
                var (from, count, _) = TensorParts.Of(value.Length, rank, Size);
                if (count == 0) return;
                var mine = new double[count];
                ops.Store(value with { Offset = value.Offset + from, Length = count }, mine);
                ops.Load(mine, part with { Length = count });
            }

            public void GatherParts(Slice part, Slice value)
            {
                var (_, count, chunk) = TensorParts.Of(value.Length, rank, Size);
                var mine = new double[chunk];
                if (count > 0) ops.Store(part with { Length = count }, mine.AsSpan(0, (int)count));
                group._contributions[rank] = mine;
                group._barrier.SignalAndWait();
                var all = group._contributions.SelectMany(c => c).Take((int)value.Length).ToArray();
                group._barrier.SignalAndWait();
                ops.Load(all, value);
            }

            private void AllReduce(Slice data, Func<double, double, double> combine)
            {
                var mine = new double[data.Length];
                ops.Store(data, mine);
                group._contributions[rank] = mine;
                group._barrier.SignalAndWait();
                var sum = (double[])group._contributions[0].Clone();
                foreach (var contribution in group._contributions.Skip(1))
                    for (int i = 0; i < sum.Length; i++) sum[i] = combine(sum[i], contribution[i]);
                group._barrier.SignalAndWait();
                ops.Load(sum, data);
            }
        }
    }
}
