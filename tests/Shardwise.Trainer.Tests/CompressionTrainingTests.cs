using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Data;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// compression_training in the engine against a training loop written out by hand: the same model and optimizer with
/// compression off, whose loop puts the compressed weights in place for each forward and backward, puts the masters
/// back for the update, and zeroes pruned weights' gradients (DeepSpeed's straight-through quantization and w·mask
/// pruning). The engine must reach the same masters bit for bit.
/// </summary>
[TestClass]
public sealed class CompressionTrainingTests
{
    private const int Updates = 10;
    private const int QuantizeOffset = 1, StartBits = 8, TargetBits = 4, Period = 2, QuantizeGroups = 2;
    private const int RowOffset = 2, SparseOffset = 3;
    private const double RowDense = 0.75, SparseDense = 0.5;

    private static string Json(int stage, string rounding = "nearest", bool mixed = false) => $$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 2e-3, "weight_decay": 0.01 } },
          "zero_optimization": { "stage": {{stage}} } }
        """;

    private static CompressionModuleGroup Group(string name, params string[] patterns) => new(name, "$.compression_training.x.different_groups." + name, patterns, null);

    private static CompressionTrainingConfig Compression(QuantizationRounding rounding = QuantizationRounding.Nearest, bool mixed = false) => new()
    {
        WeightQuantization = new WeightQuantizationConfig
        {
            Enabled = true,
            ScheduleOffset = QuantizeOffset,
            QuantizeGroups = QuantizeGroups,
            Rounding = rounding,
            MixedFp16 = mixed,
            ChangeRatio = 0.2,
            Groups = [new WeightQuantizationGroup(Group("wq1", "expand", "contract"), StartBits, TargetBits, Period)],
        },
        RowPruning = new PruningConfig { Enabled = true, ScheduleOffset = RowOffset, SectionPath = "$.r", Groups = [new PruningGroup(Group("rp1", "expand"), RowDense)] },
        SparsePruning = new PruningConfig { Enabled = true, ScheduleOffset = SparseOffset, SectionPath = "$.s", Groups = [new PruningGroup(Group("sp1", @"blocks\.[01]\.contract"), SparseDense)] },
    };

    private static DeepSpeedConfig Config(int stage, CompressionTrainingConfig? compression, QuantizationRounding rounding = QuantizationRounding.Nearest)
        => DeepSpeedConfig.Parse(Json(stage)).Config with { CompressionTraining = compression };

    /// <summary>TinyGpt (seed 11) under an engine for <paramref name="config"/>, and this rank's rows of the addition task's batches.</summary>
    internal static (TrainingEngine Engine, Func<(int[] Inputs, int[] Targets)> Next) Start(DeepSpeedConfig config, Distributed.ICommunicator communicator)
    {
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 11);
        var engine = TrainingEngine.Initialize(program, config, communicator);
        int rows = TinyGpt.SequenceLength, ranks = communicator.Size;
        var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, ranks, rows, seed: 9);
        var inputs = new int[ranks * rows];
        var targets = new int[inputs.Length];
        return (engine, () =>
        {
            sampler.NextBatch(inputs, targets);
            return (inputs.AsSpan(communicator.Rank * rows, rows).ToArray(), targets.AsSpan(communicator.Rank * rows, rows).ToArray());
        });
    }

    /// <summary>MoQ's bits after <paramref name="updates"/> updates, from DeepSpeed's rule: one bit per doubling period; 0: not yet quantizing.</summary>
    private static int ExpectedBits(long updates)
    {
        if (updates < QuantizeOffset + 1) return 0;
        long call = updates - QuantizeOffset, period = Period;
        int bits = StartBits;
        while (bits > TargetBits && call >= period)
        {
            bits--;
            period *= 2;
        }
        return bits;
    }

    /// <summary>The hand-written loop's compression of <paramref name="masters"/> for the forwards after <paramref name="updates"/> updates.</summary>
    private sealed class HandCompression(ParameterLayout layout)
    {
        private readonly Dictionary<string, byte[]> _rowMasks = new(), _sparseMasks = new();

        private IEnumerable<ParameterSlot> Weights(string pattern) =>
            layout.Slots.Where(s => s.Shape.Length == 2 && System.Text.RegularExpressions.Regex.IsMatch(s.Name[..^".weight".Length], pattern));

        public float[] Compress(float[] masters, long updates)
        {
            var working = (float[])masters.Clone();
            foreach (var slot in Weights("expand").Where(s => updates >= RowOffset && !_rowMasks.ContainsKey(s.Name)))
                _rowMasks[slot.Name] = MagnitudeMask.ForRows(working.AsSpan((int)slot.Offset, (int)slot.Length), slot.Shape[0], RowDense);
            foreach (var slot in Weights(@"blocks\.[01]\.contract").Where(s => updates >= SparseOffset && !_sparseMasks.ContainsKey(s.Name)))
                _sparseMasks[slot.Name] = MagnitudeMask.ForWeights(working.AsSpan((int)slot.Offset, (int)slot.Length), SparseDense);
            int bits = ExpectedBits(updates);
            foreach (var slot in Weights("expand|contract"))
            {
                var weight = working.AsSpan((int)slot.Offset, (int)slot.Length);
                if (bits > 0) WeightQuantizer.Quantize(weight, QuantizeGroups, bits, QuantizationType.Symmetric, QuantizationRounding.Nearest, 0);
                Mask(working, slot, zero: true);
            }
            return working;
        }

        /// <summary>Zeroes pruned entries of <paramref name="values"/> (weights, or their gradients) for <paramref name="slot"/>.</summary>
        public void Mask(float[] values, ParameterSlot slot, bool zero)
        {
            int columns = slot.Shape[1];
            if (_rowMasks.TryGetValue(slot.Name, out var rows))
            {
                var bias = layout.Slots.Single(s => s.Name == slot.Name.Replace(".weight", ".bias"));
                for (int r = 0; r < rows.Length; r++)
                {
                    if (rows[r] != 0) continue;
                    Array.Clear(values, (int)slot.Offset + r * columns, columns);
                    values[bias.Offset + r] = 0;
                }
            }
            if (_sparseMasks.TryGetValue(slot.Name, out var sparse))
            {
                for (int i = 0; i < sparse.Length; i++) values[slot.Offset + i] *= sparse[i];
            }
        }

        public void MaskGradients(float[] gradients)
        {
            foreach (var slot in Weights("expand|contract")) Mask(gradients, slot, zero: true);
        }

        public int PrunedRows => _rowMasks.Values.Sum(m => m.Count(b => b == 0));

        public int PrunedWeights => _sparseMasks.Values.Sum(m => m.Count(b => b == 0));
    }

    [TestMethod]
    public void EngineEqualsTheHandWrittenStraightThroughLoop()
    {
        var compressed = InProcessGroup.Run(1, communicator =>
        {
            var (engine, next) = Start(Config(0, Compression()), communicator);
            double first = double.NaN, last = 0;
            while (engine.GlobalStep < Updates)
            {
                var (inputs, targets) = next();
                last = engine.Forward(inputs, targets);
                if (double.IsNaN(first)) first = last;
                engine.Backward();
                engine.Step();
            }
            return (Masters: engine.ExportFullState().Master, Working: engine.Program.Parameters.ToArray(), first, last);
        }, TimeSpan.FromMinutes(2))[0];

        var byHand = InProcessGroup.Run(1, communicator =>
        {
            var (engine, next) = Start(Config(0, compression: null), communicator);
            var hand = new HandCompression(engine.Program.Layout);
            var program = engine.Program;
            float[] working = [];
            while (engine.GlobalStep < Updates)
            {
                var masters = program.Parameters.ToArray(); // fp32 at stage 0: the parameters are the masters
                working = hand.Compress(masters, engine.GlobalStep);
                working.CopyTo(program.Parameters);
                var (inputs, targets) = next();
                engine.Forward(inputs, targets);
                engine.Backward();
                masters.CopyTo(program.Parameters);
                var gradients = program.Gradients.ToArray();
                hand.MaskGradients(gradients);
                gradients.CopyTo(program.Gradients);
                engine.Step();
            }
            return (Masters: program.Parameters.ToArray(), Working: hand.Compress(program.Parameters.ToArray(), engine.GlobalStep), hand.PrunedRows, hand.PrunedWeights);
        }, TimeSpan.FromMinutes(2))[0];

        Console.WriteLine($"loss {compressed.first:F4} → {compressed.last:F4}; {byHand.PrunedRows} rows and {byHand.PrunedWeights} weights pruned; 4-bit weights at the end");
        Assert.IsTrue(compressed.last < compressed.first, "training with 4-bit, pruned weights still lowers the loss");
        Assert.AreEqual(4 * (512 - (int)Math.Ceiling(RowDense * 512)), byHand.PrunedRows, "row pruning of the four expand layers");
        Assert.AreEqual(2 * (65536 - (int)Math.Ceiling(SparseDense * 65536)), byHand.PrunedWeights, "sparse pruning of two contract layers");
        CollectionAssert.AreEqual(byHand.Masters, compressed.Masters, "the masters take the straight-through gradients of the compressed weights");
        CollectionAssert.AreEqual(byHand.Working, compressed.Working, "the working copy is the masters, compressed");
        Assert.IsTrue(compressed.Masters.Zip(compressed.Working).Count(p => p.First != p.Second) > 100_000, "the masters stay unquantized");
    }

    /// <summary>ZeRO-1 and 2 take masks and quantize from the gathered working copy: every rank the same, stochastic noise too.</summary>
    [TestMethod]
    public void ZeroOneAndTwoOnTwoRanksMatchZeroZero()
    {
        double[] Train(int stage) => InProcessGroup.Run(2, communicator =>
        {
            var (engine, next) = Start(Config(stage, Compression(QuantizationRounding.Stochastic, mixed: true)), communicator);
            while (engine.GlobalStep < 6)
            {
                var (inputs, targets) = next();
                engine.Forward(inputs, targets);
                engine.Backward();
                engine.Step();
            }
            return (Masters: engine.ExportFullState().Master, Working: engine.Program.Parameters.ToArray());
        }, TimeSpan.FromMinutes(2)) is var ranks && ranks[0].Working.SequenceEqual(ranks[1].Working)
            ? ranks[0].Masters.Select(v => (double)v).ToArray()
            : throw new AssertFailedException("the ranks' working copies differ");

        var whole = Train(0);
        CollectionAssert.AreEqual(whole, Train(1));

        // ZeRO-2 sums the gradients by bucketed reduce-scatter, in another order: the masters move by rounding, which a
        // weight sitting at a grid point's midpoint can turn into a level; still far below one step's movement.
        var slots = Train(2);
        double relative = TrainerRun.RelativeDifference(whole.Select(v => (float)v).ToArray(), slots.Select(v => (float)v).ToArray());
        Console.WriteLine($"ZeRO-2 against ZeRO-0 with compression: relative difference {relative:E2}");
        Assert.IsTrue(relative < 1e-4, $"ZeRO-2: relative difference {relative:E2}");
    }

    /// <summary>
    /// Weights imported after the engine started (a resume, an evaluation of a checkpoint trained without compression)
    /// get masks taken from them, not from the seed's weights the engine started with; a mask a checkpoint put back stays.
    /// </summary>
    [TestMethod]
    public void ImportedWeightsGetTheirOwnMasks()
    {
        var compression = Compression() with { SparsePruning = Compression().SparsePruning with { ScheduleOffset = 0 } };
        InProcessGroup.Run(1, communicator =>
        {
            var (engine, _) = Start(Config(0, compression), communicator);
            var layout = engine.Program.Layout;
            var contract = layout.Slots.Single(s => s.Name == "blocks.0.contract.weight");
            var seedMask = engine.Compression!.Masks[("blocks.0.contract", PruningKind.Sparse)];
            var kept = new byte[layout.Slots.Single(s => s.Name == "blocks.1.contract.weight").Length];
            kept[3] = 1;
            engine.Compression.RestoreMask("blocks.1.contract", PruningKind.Sparse, kept);

            var other = new float[layout.TotalElements];
            layout.Initialize(other, seed: 99);
            engine.ImportFullState(other, new float[other.Length], new float[other.Length], 0);

            var expected = MagnitudeMask.ForWeights(other.AsSpan((int)contract.Offset, (int)contract.Length), SparseDense);
            CollectionAssert.AreEqual(expected, engine.Compression.Masks[("blocks.0.contract", PruningKind.Sparse)], "taken from the imported weights");
            CollectionAssert.AreNotEqual(seedMask, expected);
            Assert.AreSame(kept, engine.Compression.Masks[("blocks.1.contract", PruningKind.Sparse)], "a restored mask stays");
            var working = engine.Program.Parameters.Slice((int)contract.Offset, (int)contract.Length).ToArray();
            Assert.IsTrue(working.Zip(expected).All(p => p.Second == 1 || p.First == 0), "the working copy is pruned by the new mask");
            return 0;
        }, TimeSpan.FromMinutes(1));
    }

    [TestMethod]
    public void RefusesWhatItCannotDo()
    {
        var stage3 = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(1, c => Start(Config(3, Compression()), c), TimeSpan.FromMinutes(1)));
        Assert.IsInstanceOfType<NotSupportedException>(stage3.InnerException);
        StringAssert.Contains(stage3.InnerException!.Message, "stage = 3");

        var typo = Compression() with { SparsePruning = Compression().SparsePruning with { Groups = [new PruningGroup(Group("sp1", "contrat"), 0.5)] } };
        var plan = CompressionPlan.For(TinyGpt.ParameterLayout, typo);
        Assert.AreEqual(1, plan.Problems.Count);
        StringAssert.Contains(plan.Problems[0].JsonPath, "different_groups.sp1.modules[0]");
        StringAssert.Contains(plan.Problems[0].Message, "blocks.N.contract (×4)", "the message lists what there is");

        var groups = Compression() with { WeightQuantization = Compression().WeightQuantization with { QuantizeGroups = 3 } };
        StringAssert.Contains(CompressionPlan.For(TinyGpt.ParameterLayout, groups).Problems[0].Message, "3 groups do not divide blocks.0.expand.weight's 65536 elements");
    }
}
