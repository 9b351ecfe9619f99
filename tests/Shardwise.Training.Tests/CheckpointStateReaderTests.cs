using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.Cli;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Tests;

/// <summary>
/// <see cref="CheckpointStateReader"/> reads any layout range of a checkpoint's masters and moments, from the named
/// one-process files or from partition files written by another number of ranks in either ZeRO scheme: every range
/// (crossing parameters, padding and writers' boundaries) equals the same slice of the state that was written, and a
/// reading rank's owned pieces equal its slices of it.
/// </summary>
[TestClass]
public sealed class CheckpointStateReaderTests
{
    private const long AdamStep = 37;

    // Padding between slots (16..17, 23, 57..63) and at the end, as the generator's alignment leaves it.
    private static readonly ParameterLayout Layout = new(
    [
        new ParameterSlot("embed", [2, 5], 0, 10, ParameterInit.Normal),
        new ParameterSlot("blocks.0.weight", [7], 16, 7, ParameterInit.Normal),
        new ParameterSlot("blocks.0.bias", [3, 11], 24, 33, ParameterInit.Zeros),
        new ParameterSlot("head", [5], 64, 5, ParameterInit.Normal),
    ], 80);

    private string _directory = null!;

    [TestInitialize]
    public void MakeDirectory() => _directory = Directory.CreateTempSubdirectory("shardwise-state-").FullName;

    [TestCleanup]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    /// <summary>Random state, zero in the padding (what every writer stores there).</summary>
    private static float[][] RandomState(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 3).Select(_ =>
        {
            var values = new float[Layout.TotalElements];
            foreach (var slot in Layout.Slots)
                RandomData.NonZero(random, (int)slot.Length, 0.1, 2.0).CopyTo(values, slot.Offset);
            return values;
        }).ToArray();
    }

    private string WriteNamed(float[][] state)
    {
        string checkpoint = Path.Combine(_directory, "named");
        Directory.CreateDirectory(checkpoint);
        using (var model = SafeTensorsWriter.Create(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile), Specs("")))
        {
            foreach (var slot in Layout.Slots) model.Write(slot.Name, state[0].AsSpan((int)slot.Offset, (int)slot.Length));
            model.Complete();
        }
        var specs = Specs(".exp_avg").Concat(Specs(".exp_avg_sq")).Append(new SafeTensorSpec("step", SafeTensorDType.I64)).ToList();
        using var optimizer = SafeTensorsWriter.Create(Path.Combine(checkpoint, TrainingCheckpoint.OptimizerFile), specs);
        foreach (var slot in Layout.Slots) optimizer.Write(slot.Name + ".exp_avg", state[1].AsSpan((int)slot.Offset, (int)slot.Length));
        foreach (var slot in Layout.Slots) optimizer.Write(slot.Name + ".exp_avg_sq", state[2].AsSpan((int)slot.Offset, (int)slot.Length));
        optimizer.Write("step", [AdamStep]);
        optimizer.Complete();
        return checkpoint;
    }

    /// <summary>Partition files as the ZeRO ranks write them: each rank's pieces, in partition order.</summary>
    private string WritePartitions(float[][] state, PartitionScheme scheme, int ranks)
    {
        string checkpoint = Path.Combine(_directory, $"{scheme}-{ranks}");
        Directory.CreateDirectory(checkpoint);
        for (int rank = 0; rank < ranks; rank++)
        {
            var segments = PartitionSegments.For(Layout, ranks, scheme, rank).ToArray();
            long owned = segments.Length == 0 ? 0 : segments.Max(s => s.OwnedOffset + s.Length);
            var metadata = new Dictionary<string, string>
            {
                ["rank"] = rank.ToString(CultureInfo.InvariantCulture),
                ["ranks"] = ranks.ToString(CultureInfo.InvariantCulture),
                ["scheme"] = scheme.ToString(),
                ["adam_step"] = AdamStep.ToString(CultureInfo.InvariantCulture),
            };
            string[] names = ["master", "exp_avg", "exp_avg_sq"];
            using var file = SafeTensorsWriter.Create(Path.Combine(checkpoint, TrainingCheckpoint.PartitionFile(rank, ranks)),
                names.Select(n => new SafeTensorSpec(n, SafeTensorDType.F32, owned)), metadata);
            for (int t = 0; t < 3; t++)
                file.Write(names[t], Extract(state[t], segments, owned));
            file.Complete();
        }
        return checkpoint;
    }

    private static float[] Extract(float[] full, IEnumerable<(long LayoutOffset, long OwnedOffset, long Length)> segments, long owned)
    {
        var values = new float[owned];
        foreach (var (layoutOffset, ownedOffset, length) in segments)
            Array.Copy(full, layoutOffset, values, ownedOffset, length);
        return values;
    }

    private static IEnumerable<SafeTensorSpec> Specs(string suffix) =>
        Layout.Slots.Select(slot => new SafeTensorSpec(slot.Name + suffix, SafeTensorDType.F32, slot.Shape.Select(d => (long)d).ToArray()));

    public static IEnumerable<object[]> Formats() =>
    [
        ["named", 0],
        [nameof(PartitionScheme.Flat), 3],
        [nameof(PartitionScheme.Slots), 3],
        [nameof(PartitionScheme.Slots), 5],
    ];

    [TestMethod]
    [DynamicData(nameof(Formats))]
    public void EveryRangeEqualsTheWrittenState(string format, int writers)
    {
        var state = RandomState(seed: 11 + writers);
        string checkpoint = format == "named" ? WriteNamed(state) : WritePartitions(state, Enum.Parse<PartitionScheme>(format), writers);
        using var reader = CheckpointStateReader.Open(checkpoint, Layout);
        Assert.AreEqual(AdamStep, reader.AdamStep);

        var random = new Random(5);
        var tensors = new[] { CheckpointStateTensor.Master, CheckpointStateTensor.ExpAvg, CheckpointStateTensor.ExpAvgSq };
        for (int trial = 0; trial < 300; trial++)
        {
            int offset = random.Next((int)Layout.TotalElements + 1), length = random.Next((int)Layout.TotalElements - offset + 1);
            int t = random.Next(3);
            var into = Enumerable.Repeat(float.NaN, length).ToArray(); // padding must be written as zero, not left alone
            reader.Read(tensors[t], offset, into);
            CollectionAssert.AreEqual(state[t][offset..(offset + length)], into, $"{format}: {tensors[t]} [{offset}, {offset + length})");
        }
        for (int t = 0; t < 3; t++) CollectionAssert.AreEqual(state[t], reader.ReadAll(tensors[t]));
    }

    [TestMethod]
    [DynamicData(nameof(Formats))]
    public void AReadingRanksPiecesEqualItsSlices(string format, int writers)
    {
        var state = RandomState(seed: 3);
        string checkpoint = format == "named" ? WriteNamed(state) : WritePartitions(state, Enum.Parse<PartitionScheme>(format), writers);
        using var reader = CheckpointStateReader.Open(checkpoint, Layout);
        foreach (var scheme in new[] { PartitionScheme.Flat, PartitionScheme.Slots })
        foreach (int ranks in new[] { 1, 2, 4 })
        for (int rank = 0; rank < ranks; rank++)
        {
            var segments = PartitionSegments.For(Layout, ranks, scheme, rank).ToArray();
            long owned = segments.Length == 0 ? 0 : segments.Max(s => s.OwnedOffset + s.Length);
            var pieces = Enumerable.Range(0, 3).Select(_ => new float[owned]).ToArray();
            // In chunks that do not divide the partition, as the NVMe swap hands them out.
            for (long start = 0; start < owned; start += 7)
            {
                int count = (int)Math.Min(7, owned - start);
                reader.ReadOwned(segments, start, pieces[0].AsSpan((int)start, count), pieces[1].AsSpan((int)start, count), pieces[2].AsSpan((int)start, count));
            }
            for (int t = 0; t < 3; t++)
                CollectionAssert.AreEqual(Extract(state[t], segments, owned), pieces[t], $"{format}: {scheme} rank {rank} of {ranks}, tensor {t}");
        }
    }

    [TestMethod]
    public void AMissingOrForeignPartitionFileIsNamed()
    {
        var state = RandomState(seed: 8);
        string checkpoint = WritePartitions(state, PartitionScheme.Slots, 3);
        File.Delete(Path.Combine(checkpoint, TrainingCheckpoint.PartitionFile(1, 3)));
        var missing = Assert.ThrowsExactly<InvalidDataException>(() => CheckpointStateReader.Open(checkpoint, Layout));
        StringAssert.Contains(missing.Message, checkpoint);
        StringAssert.Contains(missing.Message, "2 partition files for a run of 3 ranks (rank 1's is missing)");

        // Another model's layout: the owned lengths differ, and the file that shows it is named.
        string other = WritePartitions(state, PartitionScheme.Flat, 2);
        var shorter = new ParameterLayout(Layout.Slots.Take(3).ToArray(), 64);
        var foreign = Assert.ThrowsExactly<InvalidDataException>(() => CheckpointStateReader.Open(other, shorter));
        StringAssert.Contains(foreign.Message, TrainingCheckpoint.PartitionFile(0, 2));
        StringAssert.Contains(foreign.Message, "rank 0 of 2 owns 32 float32 elements of this model's layout");

        string named = WriteNamed(state);
        var renamed = new ParameterLayout(Layout.Slots.Select(s => s with { Name = s.Name == "head" ? "lm_head" : s.Name }).ToArray(), Layout.TotalElements);
        var absent = Assert.ThrowsExactly<InvalidDataException>(() => CheckpointStateReader.Open(named, renamed));
        StringAssert.Contains(absent.Message, "model.safetensors: tensor 'lm_head' is missing");
    }

    [TestMethod]
    public void WeightsAloneNeedNoOptimizerFile()
    {
        var state = RandomState(seed: 6);
        string named = WriteNamed(state);
        File.Delete(Path.Combine(named, TrainingCheckpoint.OptimizerFile));
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => CheckpointStateReader.Open(named, Layout));
        StringAssert.Contains(missing.Message, TrainingCheckpoint.OptimizerFile);

        using var weights = CheckpointStateReader.Open(named, Layout, weightsOnly: true);
        CollectionAssert.AreEqual(state[0], weights.ReadAll(CheckpointStateTensor.Master));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => weights.ReadAll(CheckpointStateTensor.ExpAvg)).Message, "weights only");
        var flat = new float[Layout.TotalElements];
        TrainingCheckpoint.LoadWeights(named, Layout, flat);
        CollectionAssert.AreEqual(state[0], flat);
    }

    [TestMethod]
    public void ReadPartStaysInsideItsTensor()
    {
        string named = WriteNamed(RandomState(seed: 2));
        using var model = SafeTensorsReader.Open(Path.Combine(named, TrainingCheckpoint.ModelFile));
        var part = new float[4];
        var error = Assert.ThrowsExactly<SafeTensorsFormatException>(() => model.ReadPart("head", 2, part));
        StringAssert.Contains(error.Message, "head");
        StringAssert.Contains(error.Message, "holds 5 elements; elements [2, 6) are not all inside it");
        Assert.ThrowsExactly<SafeTensorsFormatException>(() => model.ReadPart("head", -1, part.AsSpan(0, 1)));
        model.ReadPart("head", 1, part);
        var whole = new float[5];
        model.Read("head", whole);
        CollectionAssert.AreEqual(whole[1..], part);
    }
}
