using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>Full layout ↔ a stage and tensor rank's local layout, and the gather that consolidates a replica.</summary>
[TestClass]
public sealed class PartitionedParametersTests
{
    private static readonly ChainModel Model = new(Vocabulary: 5, Width: 4, Blocks: 4, Sequence: 2);

    [TestMethod]
    public void ALocalSlotHoldsItsPieceOfTheModelParameter()
    {
        // p = 2, t = 2: stage 1 holds blocks 2 (column-parallel) and 3 (row-parallel), then the tied embedding.
        var layout = Model.FullLayout();
        float[] full = Enumerable.Range(0, (int)layout.TotalElements).Select(i => (float)i).ToArray();
        StagePlan stage = Model.Partition(2, 2).Stages[1];
        var local = new float[stage.Layout.TotalElements];
        PartitionedParameters.Extract(layout, full, stage, tensorRank: 1, local);

        float[] Slot(ParameterLayout l, float[] flat, string name)
        {
            var slot = l.Slots.Single(s => s.Name == name);
            return flat.AsSpan((int)slot.Offset, (int)slot.Length).ToArray();
        }
        float[] w2 = Slot(layout, full, ChainModel.Weight(2)), w3 = Slot(layout, full, ChainModel.Weight(3));
        // Block 2's W [4, 4] by rows: rank 1 keeps rows 2 and 3.
        CollectionAssert.AreEqual(w2.Skip(8).ToArray(), Slot(stage.Layout, local, ChainModel.Weight(2)));
        // Block 3's W [4, 4] by columns: rank 1 keeps columns 2 and 3 of each row.
        CollectionAssert.AreEqual(new[] { w3[2], w3[3], w3[6], w3[7], w3[10], w3[11], w3[14], w3[15] }, Slot(stage.Layout, local, ChainModel.Weight(3)));
        CollectionAssert.AreEqual(Slot(layout, full, ChainModel.Bias(3)), Slot(stage.Layout, local, ChainModel.Bias(3)));
        CollectionAssert.AreEqual(Slot(layout, full, ChainModel.Embedding), Slot(stage.Layout, local, ChainModel.Embedding));
    }

    [TestMethod]
    [DataRow(1, 1)]
    [DataRow(2, 1)]
    [DataRow(4, 1)]
    [DataRow(1, 2)]
    [DataRow(2, 2)]
    public void GatheringEveryRanksLocalsRebuildsTheFullLayout(int pipeline, int tensor)
    {
        var (layout, partition, full) = RandomReplica(Model, pipeline, tensor, seed: 11);
        var gathered = InProcessGroup.Run(pipeline * tensor,
            world => PartitionedParameters.Gather(world, partition, layout, Local(layout, partition, full, world.Rank)), TimeSpan.FromSeconds(30));

        foreach (float[] result in gathered) CollectionAssert.AreEqual(full, result);
    }

    /// <summary>
    /// Streaming a replica to member 0 hands it every parameter whole, in layout order, equal to the full layout's, for
    /// the same partitions as the gather; and member 0 allocates for it about two of the largest parameter, not the layout
    /// (the gather gives every member the full layout and an all-gather buffer of every member's padded stage).
    /// </summary>
    [TestMethod]
    [DataRow(1, 1)]
    [DataRow(2, 1)]
    [DataRow(4, 1)]
    [DataRow(1, 2)]
    [DataRow(2, 2)]
    public void StreamingEveryRanksLocalsHandsMemberZeroEachWholeParameter(int pipeline, int tensor)
    {
        var (layout, partition, full) = RandomReplica(new ChainModel(Vocabulary: 100, Width: 64, Blocks: 8, Sequence: 2), pipeline, tensor, seed: 17);
        var results = InProcessGroup.Run(pipeline * tensor, world =>
        {
            var local = Local(layout, partition, full, world.Rank);
            var written = new System.Collections.Generic.List<(string Name, float[] Values)>();
            long before = GC.GetAllocatedBytesForCurrentThread();
            PartitionedParameters.StreamToFirst(world, partition, layout, local,
                world.Rank == 0 ? (slot, values) => written.Add((slot.Name, values.ToArray())) : null);
            return (written, Allocated: GC.GetAllocatedBytesForCurrentThread() - before);
        }, TimeSpan.FromSeconds(30));

        var (parameters, allocated) = results[0];
        CollectionAssert.AreEqual(layout.Slots.Select(slot => slot.Name).ToArray(), parameters.Select(p => p.Name).ToArray(), "every parameter once, in layout order");
        foreach (var (slot, (name, values)) in layout.Slots.Zip(parameters))
            CollectionAssert.AreEqual(full.AsSpan((int)slot.Offset, (int)slot.Length).ToArray(), values, name);
        Assert.IsTrue(results.Skip(1).All(r => r.written.Count == 0), "only member 0 writes");

        // What the test keeps (a copy of every parameter) is the test's, not the stream's.
        long largest = layout.Slots.Max(slot => slot.Length) * sizeof(float), kept = layout.ParameterCount * sizeof(float) + 64 * layout.Slots.Count;
        Console.WriteLine($"p={pipeline} t={tensor}: member 0 allocated {allocated - kept:N0} bytes besides the copies; largest parameter {largest:N0}, the layout {layout.TotalElements * sizeof(float):N0}");
        Assert.IsTrue(allocated - kept < 3 * largest, $"member 0 allocated {allocated - kept:N0} bytes; the largest parameter is {largest:N0}");
    }

    private static (ParameterLayout Layout, ModelPartition Partition, float[] Full) RandomReplica(ChainModel model, int pipeline, int tensor, int seed)
    {
        var layout = model.FullLayout();
        var random = new Random(seed);
        return (layout, model.Partition(pipeline, tensor), Enumerable.Range(0, (int)layout.TotalElements).Select(_ => (float)random.NextDouble()).ToArray());
    }

    /// <summary>Model-parallel member <paramref name="member"/>'s local buffer (stage member / t, tensor rank member mod t).</summary>
    private static float[] Local(ParameterLayout layout, ModelPartition partition, float[] full, int member)
    {
        StagePlan stage = partition.Stages[member / partition.Tensor];
        var local = new float[stage.Layout.TotalElements];
        PartitionedParameters.Extract(layout, full, stage, member % partition.Tensor, local);
        return local;
    }

    [TestMethod]
    public void ABufferOfTheWrongLayoutIsRefused()
    {
        var layout = Model.FullLayout();
        StagePlan stage = Model.Partition(2, 1).Stages[0];
        var error = Assert.ThrowsExactly<ArgumentException>(() =>
            PartitionedParameters.Extract(layout, new float[layout.TotalElements], stage, 0, new float[3]));
        StringAssert.Contains(error.Message, $"the local buffer has 3 elements, stage 0's layout {stage.Layout.TotalElements}");
    }
}
