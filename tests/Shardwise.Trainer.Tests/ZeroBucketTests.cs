using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Zero;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// ZeRO-2/3 gradient and parameter buckets (<see cref="SlotSharding"/>): reduce_bucket_size and allgather_bucket_size
/// set how many collectives run, never the results. Each element is summed in the same rank order whatever the
/// bucket, so results are bitwise identical across bucket sizes, and the elements moved are the same.
/// </summary>
[TestClass]
public sealed class ZeroBucketTests
{
    // Lengths that 3 ranks do not divide; pieces [3, 334, 5, 1366, 1, 84, 11], padded [9, 1002, 15, 4098, 3, 252, 33].
    private static readonly long[] Lengths = [7, 1000, 13, 4097, 1, 250, 33];
    // A static backward order that is not the layout's (as a generated backward's): slots arrive last layer first.
    private static readonly int[] Arrival = [5, 6, 4, 3, 2, 1, 0];
    private const int Ranks = 3;

    private static ParameterLayout Layout()
    {
        var slots = new ParameterSlot[Lengths.Length];
        long offset = 0;
        for (int i = 0; i < slots.Length; i++)
        {
            slots[i] = new ParameterSlot($"p{i}", [(int)Lengths[i]], offset, Lengths[i], ParameterInit.Normal);
            offset += (Lengths[i] + 7) / 8 * 8; // aligned, as the generator lays slots out: gaps between slots
        }
        return new ParameterLayout(slots, offset);
    }

    /// <summary>Gradient of <paramref name="slot"/> on <paramref name="rank"/> in micro-batch <paramref name="micro"/>: non-zero, distinct per rank.</summary>
    private static float[] Gradient(int slot, int rank, int micro)
    {
        var random = new Random(1000 * micro + 10 * slot + rank);
        var gradient = new float[Lengths[slot]];
        for (int i = 0; i < gradient.Length; i++) gradient[i] = (float)(random.NextDouble() * 2 - 1) * (1 + slot);
        return gradient;
    }

    private sealed record ReduceResult(float[] Accumulator, int Buckets, long SentBytes, long BufferBytes);

    /// <summary>Two micro-batches of gradients, reduced in <see cref="Arrival"/> order and accumulated, on each rank.</summary>
    private static ReduceResult[] Reduce(long bucket)
    {
        var layout = Layout();
        return InProcessGroup.Run(Ranks, communicator =>
        {
            var sharding = new SlotSharding(layout, communicator, bucket, allgatherBucketElements: 1);
            var accumulator = new float[sharding.OwnedLength];
            float scale = 1f / Ranks;
            for (int micro = 0; micro < 2; micro++)
            {
                foreach (int slot in Arrival)
                {
                    var gradient = Gradient(slot, communicator.Rank, micro);
                    sharding.ReduceSlot(slot, gradient, accumulator, scale);
                    Array.Clear(gradient); // the caller clears its pool region at once: the bucket holds a copy
                }
                sharding.FlushReductions();
                Assert.AreEqual(0, sharding.PendingSlots);
            }
            return new ReduceResult(accumulator, sharding.ReduceBuckets, communicator.Traffic.Sent(Collective.ReduceScatter), sharding.BufferBytes);
        }, TimeSpan.FromMinutes(1));
    }

    [TestMethod]
    public void GradientBucketsGiveTheSameSumsWithFewerCollectives()
    {
        var alone = Reduce(bucket: 1);           // every slot alone: the per-slot reduction this replaces
        var mixed = Reduce(bucket: 300);         // small slots share buckets; 1002 and 4098 exceed it and go alone
        var whole = Reduce(bucket: 1_000_000_000); // one bucket per backward

        // Reference: rank r's piece of each slot, summed over ranks in rank order, scaled, accumulated over 2 micro-batches.
        for (int rank = 0; rank < Ranks; rank++)
        {
            var expected = new List<float>();
            for (int slot = 0; slot < Lengths.Length; slot++)
            {
                long chunk = (Lengths[slot] + Ranks - 1) / Ranks;
                long length = Math.Clamp(Lengths[slot] - rank * chunk, 0, chunk);
                var sum = new float[length];
                for (int micro = 0; micro < 2; micro++)
                {
                    var reduced = new float[length];
                    for (int r = 0; r < Ranks; r++)
                    {
                        var g = Gradient(slot, r, micro);
                        for (int i = 0; i < length; i++) reduced[i] += g[rank * chunk + i];
                    }
                    for (int i = 0; i < length; i++) sum[i] += (1f / Ranks) * reduced[i];
                }
                expected.AddRange(sum);
            }
            Assert.IsTrue(expected.Any(v => v != 0));
            CollectionAssert.AreEqual(expected.ToArray(), alone[rank].Accumulator, $"rank {rank}: per-slot reduction");
            CollectionAssert.AreEqual(alone[rank].Accumulator, mixed[rank].Accumulator, $"rank {rank}: bucket 300 differs from per-slot");
            CollectionAssert.AreEqual(alone[rank].Accumulator, whole[rank].Accumulator, $"rank {rank}: one bucket differs from per-slot");

            // Per micro-batch: 7 slots alone; {5,6,4} (288), {3}, {2}, {1}, {0} at 300; one bucket.
            Assert.AreEqual(2 * 7, alone[rank].Buckets);
            Assert.AreEqual(2 * 5, mixed[rank].Buckets);
            Assert.AreEqual(2 * 1, whole[rank].Buckets);
            // The same elements travel (padding included): Σ padded × (N−1)/N per micro-batch.
            long padded = Lengths.Sum(l => (l + Ranks - 1) / Ranks * Ranks);
            Assert.AreEqual(2 * padded * (Ranks - 1) / Ranks * sizeof(float), alone[rank].SentBytes);
            Assert.AreEqual(alone[rank].SentBytes, mixed[rank].SentBytes);
            Assert.AreEqual(alone[rank].SentBytes, whole[rank].SentBytes);
        }

        // Buffers: N + 1 segments, a segment holding the largest piece (1366) or the bucket's share, at most the model's (1804).
        var layout = Layout();
        Assert.AreEqual((1366L * Ranks + 1366) * sizeof(float), alone[0].BufferBytes);
        Assert.AreEqual((1804L * Ranks + 1804) * sizeof(float), whole[0].BufferBytes);
        foreach (var (bucket, result) in new[] { (1L, alone[0]), (300L, mixed[0]), (1_000_000_000L, whole[0]) })
            Assert.AreEqual(SlotSharding.BufferBytesOf(layout, Ranks, bucket, 1, gathersDuringBackward: false), result.BufferBytes);
        Assert.AreEqual((1804L * Ranks + 1804 + 1366L * Ranks) * sizeof(float),
            SlotSharding.BufferBytesOf(layout, Ranks, 1, 1_000_000_000, gathersDuringBackward: true));
    }

    [TestMethod]
    public void ParameterBucketsGatherEverySlotWithFewerCollectives()
    {
        var layout = Layout();
        var results = new Dictionary<long, (float[] Full, int Buckets)[]>();
        foreach (long bucket in new[] { 1L, 300L, 1_000_000_000L })
        {
            results[bucket] = InProcessGroup.Run(Ranks, communicator =>
            {
                var sharding = new SlotSharding(layout, communicator, reduceBucketElements: 1, bucket);
                var owned = new float[sharding.OwnedLength];
                var random = new Random(77 + communicator.Rank);
                for (int i = 0; i < owned.Length; i++) owned[i] = (float)random.NextDouble() + 1;
                var full = new float[layout.TotalElements];
                full.AsSpan().Fill(float.NaN); // the gaps between slots must stay untouched
                sharding.GatherInto(owned, full);
                // What every rank gathered must be what each owner holds.
                var mine = new float[sharding.OwnedLength];
                sharding.ExtractOwned(full, mine);
                CollectionAssert.AreEqual(owned, mine, $"rank {communicator.Rank}: its own pieces came back changed");
                return (full, sharding.GatherBuckets);
            }, TimeSpan.FromMinutes(1));
        }

        var reference = results[1][0].Full;
        foreach (var slot in layout.Slots)
        {
            for (long i = slot.Offset; i < slot.Offset + slot.Length; i++) Assert.IsTrue(reference[i] >= 1, $"{slot.Name}[{i - slot.Offset}] not gathered");
            long end = (slot.Length + 7) / 8 * 8 + slot.Offset;
            for (long i = slot.Offset + slot.Length; i < end; i++) Assert.IsTrue(float.IsNaN(reference[i]), $"gap after {slot.Name} was written");
        }
        foreach (var (bucket, ranks) in results)
        {
            foreach (var (full, _) in ranks) CollectionAssert.AreEqual(reference, full, $"bucket {bucket}");
        }
        // Layout order, padded [9, 1002, 15, 4098, 3, 252, 33]: at 300, {0} {1} {2} {3} {4,5,6}.
        Assert.AreEqual(7, results[1][0].Buckets);
        Assert.AreEqual(5, results[300][0].Buckets);
        Assert.AreEqual(1, results[1_000_000_000][0].Buckets);
    }

    [TestMethod]
    public void GatheringWhileAGradientBucketIsPendingIsRefused()
    {
        var layout = Layout();
        InProcessGroup.Run(2, communicator =>
        {
            var sharding = new SlotSharding(layout, communicator, 1_000_000, 1_000_000);
            var accumulator = new float[sharding.OwnedLength];
            sharding.ReduceSlot(3, Gradient(3, communicator.Rank, 0), accumulator, 1f);
            Assert.AreEqual(1, sharding.PendingSlots);
            Assert.IsTrue(accumulator.All(v => v == 0), "a pending bucket is not yet reduced");
            Assert.ThrowsExactly<InvalidOperationException>(() => sharding.GatherInto(accumulator, new float[layout.TotalElements]));
            Assert.ThrowsExactly<InvalidOperationException>(() => sharding.GatherSlot(3, accumulator, new float[Lengths[3]]),
                "single-slot gathers need their own staging (ZeRO-3 only)");
            sharding.FlushReductions();
            Assert.AreEqual(0, sharding.PendingSlots);
            float[] both = Gradient(3, 0, 0), other = Gradient(3, 1, 0);
            for (int i = 0; i < both.Length; i++) both[i] += other[i];
            long chunk = (Lengths[3] + 1) / 2;
            CollectionAssert.AreEqual(both.AsSpan((int)(communicator.Rank * chunk), sharding.OwnedPiece(accumulator, 3).Length).ToArray(),
                sharding.OwnedPiece(accumulator, 3).ToArray(), "the flushed bucket: this rank's piece of both ranks' sum");
        }, TimeSpan.FromMinutes(1));
    }

    /// <summary>
    /// One rank owns every slot whole: gradients go straight into the accumulator (nothing pends), gathers are copies,
    /// no collective runs and no communication buffer is held, with the sums the staged path makes.
    /// </summary>
    [TestMethod]
    public void OneRankNeedsNoBuffersAndNoCollectives()
    {
        var layout = Layout();
        Assert.AreEqual(0, SlotSharding.BufferBytesOf(layout, 1, 1_000_000, 1_000_000, gathersDuringBackward: true));
        InProcessGroup.Run(1, inner =>
        {
            var communicator = new CountingCommunicator(inner);
            var sharding = new SlotSharding(layout, communicator, 1_000_000, 1_000_000, gathersDuringBackward: true);
            Assert.AreEqual(0, sharding.BufferBytes);
            var accumulator = new float[sharding.OwnedLength];
            var expected = new float[layout.TotalElements];
            foreach (int micro in new[] { 0, 1 })
            {
                foreach (int slot in Arrival)
                {
                    float[] gradient = Gradient(slot, 0, micro);
                    sharding.ReduceSlot(slot, gradient, accumulator, 0.5f);
                    Assert.AreEqual(0, sharding.PendingSlots);
                    for (int i = 0; i < gradient.Length; i++) expected[layout.Slots[slot].Offset + i] += 0.5f * gradient[i];
                }
                sharding.FlushReductions();
            }
            var full = new float[layout.TotalElements];
            sharding.GatherInto(accumulator, full);
            for (int index = 0; index < layout.Slots.Count; index++)
            {
                var slot = layout.Slots[index];
                float[] slotSum = expected.AsSpan((int)slot.Offset, (int)slot.Length).ToArray();
                CollectionAssert.AreEqual(slotSum, sharding.OwnedPiece(accumulator, index).ToArray(), $"{slot.Name} accumulated");
                CollectionAssert.AreEqual(slotSum, full.AsSpan((int)slot.Offset, (int)slot.Length).ToArray(), $"{slot.Name} gathered");
            }
            var one = new float[Lengths[3]];
            sharding.GatherSlot(3, accumulator, one);
            CollectionAssert.AreEqual(expected.AsSpan((int)layout.Slots[3].Offset, one.Length).ToArray(), one);
            Assert.AreEqual((0, 0), (communicator.ReduceScatters, communicator.AllGathers), "no collective on one rank");
        }, TimeSpan.FromMinutes(1));
    }

    /// <summary>Counts the collectives a rank calls, then passes them on.</summary>
    private sealed class CountingCommunicator(ICommunicator inner) : ICommunicator
    {
        public int ReduceScatters, AllGathers;
        public int Rank => inner.Rank;
        public int Size => inner.Size;
        public TimeSpan Timeout => inner.Timeout;
        public TrafficCounter Traffic => inner.Traffic;
        public void AllReduceSum(Span<float> data) => inner.AllReduceSum(data);
        public void AllReduceMax(Span<double> data) => inner.AllReduceMax(data);
        public void AllReduceSum(Span<double> data) => inner.AllReduceSum(data);

        public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
        {
            ReduceScatters++;
            inner.ReduceScatterSum(input, output);
        }

        public void AllGather(ReadOnlySpan<float> input, Span<float> output)
        {
            AllGathers++;
            inner.AllGather(input, output);
        }

        public void Broadcast(Span<float> data, int root) => inner.Broadcast(data, root);
        public void Send(ReadOnlySpan<float> data, int peer, int tag) => inner.Send(data, peer, tag);
        public void Receive(Span<float> data, int peer, int tag) => inner.Receive(data, peer, tag);
        public void Barrier() => inner.Barrier();
        public ICommunicator Split(int color, int key) => inner.Split(color, key);
        public void Dispose() => inner.Dispose();
    }

    private sealed record EngineRun(float[] Master, int ReduceScatters, int AllGathers, long ReduceScatterBytes, int Persistent,
        int ParameterRequests, int PrefetchHits);

    /// <summary>TinyGpt, 2 optimizer steps of 2 micro-batches each on 2 ranks; counts collectives from the first forward to the last step.</summary>
    private static EngineRun[] Train(int stage, long bucket)
    {
        const int ranks = 2, steps = 2;
        var config = DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
              "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": {{bucket}}, "allgather_bucket_size": {{bucket}},
                                     "stage3_param_persistence_threshold": 1000 } }
            """).Config;
        return InProcessGroup.Run(ranks, inner =>
        {
            var communicator = new CountingCommunicator(inner);
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
            TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
            var engine = TrainingEngine.Initialize(program, config, communicator);
            var sampler = new AdditionTask().CreateDataset(500, seed: 5).CreateSampler(DataSplit.Train, ranks, TinyGpt.SequenceLength, seed: 9);
            var inputs = new int[ranks * TinyGpt.SequenceLength];
            var targets = new int[inputs.Length];
            int mine = communicator.Rank * TinyGpt.SequenceLength;
            communicator.ReduceScatters = communicator.AllGathers = 0;
            communicator.Traffic.Reset();
            int requestsBefore = engine.ParameterRequests, hitsBefore = engine.PrefetchHits;
            while (engine.GlobalStep < steps)
            {
                sampler.NextBatch(inputs, targets);
                engine.Forward(inputs.AsSpan(mine, TinyGpt.SequenceLength), targets.AsSpan(mine, TinyGpt.SequenceLength));
                engine.Backward();
                engine.Step();
            }
            var counted = (communicator.ReduceScatters, communicator.AllGathers, communicator.Traffic.Sent(Collective.ReduceScatter));
            var (rs, ag) = engine.SlotCollectives;
            Assert.AreEqual(counted.ReduceScatters, rs, "the engine's count and the communicator's");
            int persistent = TinyGpt.ParameterLayout.Slots.Count(s => s.Length < 1000);
            return new EngineRun(engine.ExportFullState().Master, counted.ReduceScatters, counted.AllGathers, counted.Item3, persistent,
                engine.ParameterRequests - requestsBefore, engine.PrefetchHits - hitsBefore);
        }, TimeSpan.FromMinutes(2));
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    public void EngineResultsDoNotDependOnTheBucketSizes(int stage)
    {
        const int microBatches = 4, steps = 2;
        int slots = TinyGpt.ParameterLayout.Slots.Count;
        var alone = Train(stage, bucket: 1);
        var mixed = Train(stage, bucket: 20_000); // below TinyGpt's largest slots (they go alone), above its small ones
        var whole = Train(stage, bucket: 1_000_000_000);
        Assert.IsTrue(TinyGpt.ParameterLayout.Slots.Max(s => s.Length) > 20_000 && TinyGpt.ParameterLayout.Slots.Min(s => s.Length) < 20_000);

        for (int rank = 0; rank < 2; rank++)
        {
            CollectionAssert.AreEqual(alone[0].Master, alone[rank].Master, $"rank {rank} differs from rank 0");
            CollectionAssert.AreEqual(alone[rank].Master, mixed[rank].Master, $"stage {stage}, rank {rank}: bucket 20,000 differs from per-slot");
            CollectionAssert.AreEqual(alone[rank].Master, whole[rank].Master, $"stage {stage}, rank {rank}: one bucket differs from per-slot");

            // Gradients: one reduce-scatter per slot per micro-batch, or one per micro-batch; the same bytes either way.
            Assert.AreEqual(microBatches * slots, alone[rank].ReduceScatters);
            Assert.AreEqual(microBatches, whole[rank].ReduceScatters);
            Assert.IsTrue(mixed[rank].ReduceScatters > microBatches && mixed[rank].ReduceScatters < microBatches * slots / 2,
                $"bucket 20,000: {mixed[rank].ReduceScatters} reduce-scatters for {microBatches} micro-batches of {slots} slots");
            Assert.AreEqual(alone[rank].ReduceScatterBytes, whole[rank].ReduceScatterBytes);
            Assert.AreEqual(alone[rank].ReduceScatterBytes, mixed[rank].ReduceScatterBytes);

            if (stage == 2)
            {
                // Parameters after each step: every slot alone, or one bucket.
                Assert.AreEqual(steps * slots, alone[rank].AllGathers);
                Assert.AreEqual(steps, whole[rank].AllGathers);
            }
            else
            {
                // The slots kept whole are refreshed after each step in one bucket instead of one collective each, and
                // the streamed slots are prefetched in groups (one collective each) as large as the staging and the
                // send buffer allow; the send buffer follows the bucket sizes (at bucket 1: the largest piece).
                int persistent = alone[rank].Persistent;
                Assert.IsTrue(persistent > 1);
                Assert.AreEqual(alone[rank].ParameterRequests, whole[rank].ParameterRequests);
                Assert.IsTrue(alone[rank].AllGathers <= alone[rank].ParameterRequests + steps * persistent,
                    $"bucket 1: {alone[rank].AllGathers} all-gathers, at most one per request and per slot kept whole");
                // Nothing is gathered twice: the slots kept whole stand in the static order but are never requested;
                // taken for out-of-order requests they made the streamer drop its prefetched slots (13 times as many
                // all-gathers before).
                Assert.IsTrue(whole[rank].PrefetchHits > whole[rank].ParameterRequests / 2,
                    $"{whole[rank].PrefetchHits} of {whole[rank].ParameterRequests} requests served by the prefetch");
                Assert.IsTrue(whole[rank].AllGathers * 4 < whole[rank].ParameterRequests,
                    $"one bucket: {whole[rank].AllGathers} all-gathers for {whole[rank].ParameterRequests} requests");
            }
        }
        Console.WriteLine($"stage {stage}, 2 ranks, {microBatches} micro-batches: reduce-scatters {alone[0].ReduceScatters} / {mixed[0].ReduceScatters} / {whole[0].ReduceScatters}, " +
                          $"all-gathers {alone[0].AllGathers} / {mixed[0].AllGathers} / {whole[0].AllGathers} at buckets 1 / 20,000 / 1e9, " +
                          $"{whole[0].ParameterRequests} parameter requests, {whole[0].PrefetchHits} prefetch hits");
    }
}
