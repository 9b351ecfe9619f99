using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// A program whose residual adds run inside the LayerNorm after them (<c>Ops.AddLayerNorm</c>) trains exactly as the
/// unfused Add then LayerNorm: SmallGpt (every residual add fused), CheckpointedSmallGpt (fused pairs re-run by the
/// recompute too) and <see cref="ResidualNormModel"/> give bit-identical losses, gradient norms and weights on the CPU
/// backend (which runs each fused call as the unfused sequence) and on <see cref="FusedReferenceOps"/> checking each
/// fused call as a one-pass kernel would need it: no output in an operand's memory, outputs poisoned with NaN before
/// the sequence runs. ResidualNormModel is the case that needs the activation planner to keep the Add's operands live
/// until the norm's step: without that its norm output is planned into the Linear output's memory (checked by hand).
/// </summary>
[TestClass]
public sealed class FusedResidualNormTrainingTests
{
    private const int Updates = 6;

    private static string Config(bool bf16) => $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 3e-3, "weight_decay": 0.1 } },
          "bf16": { "enabled": {{(bf16 ? "true" : "false")}} } }
        """;

    private sealed record Trace(List<float> Losses, List<double> Norms, float[] Weights);

    private static Trace Train<TModel>(ITensorOps<float> ops, bool bf16) where TModel : ILanguageModelDefinition
    {
        var config = DeepSpeedConfig.Parse(Config(bf16)).Config;
        var program = TModel.Compile(ops, config.Resolve(1).MicroBatchPerGpu);
        TModel.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config);
        var sampler = new AdditionTask().CreateDataset(2000, seed: 5)
            .CreateSampler(DataSplit.Train, engine.Batch.MicroBatchPerGpu, TModel.SequenceLength, seed: 7);
        var inputs = new int[engine.Batch.MicroBatchPerGpu * TModel.SequenceLength];
        var targets = new int[inputs.Length];
        List<float> losses = [];
        List<double> norms = [];
        while (engine.GlobalStep < Updates)
        {
            sampler.NextBatch(inputs, targets);
            losses.Add(engine.Forward(inputs, targets));
            engine.Backward();
            if (engine.Step() == StepOutcome.Updated) norms.Add(engine.LastGradientNorm);
        }
        return new Trace(losses, norms, engine.ExportFullState().Master);
    }

    [TestMethod]
    [DataRow(nameof(SmallGpt), false)]
    [DataRow(nameof(SmallGpt), true)]
    [DataRow(nameof(CheckpointedSmallGpt), false)]
    [DataRow(nameof(ResidualNormModel), false)]
    public void FusedProgramTrainsBitForBitAsTheUnfusedSequence(string model, bool bf16)
    {
        Trace Run(ITensorOps<float> ops) => model switch
        {
            nameof(SmallGpt) => Train<SmallGpt>(ops, bf16),
            nameof(CheckpointedSmallGpt) => Train<CheckpointedSmallGpt>(ops, bf16),
            _ => Train<ResidualNormModel>(ops, bf16),
        };
        var reference = Run(new CpuOps<float>());
        var ops = new FusedReferenceOps(checkAddLayerNorm: true);
        var fused = Run(ops);
        string what = $"{model}, {(bf16 ? "bf16" : "fp32")}";

        // SmallGpt: the embedding sum and both residual adds of its two blocks, per forward. Checkpointed: each block's
        // inner pair (forward and recompute) and the last block's output with the final norm; the block boundaries stay.
        int perMicroBatch = model == nameof(ResidualNormModel) ? 1 : 5;
        Assert.AreEqual(perMicroBatch * fused.Losses.Count, ops.AddLayerNormCalls, $"{what}: fused calls");
        CollectionAssert.AreEqual(Bits(reference.Losses), Bits(fused.Losses), $"{what}: losses");
        CollectionAssert.AreEqual(Bits(reference.Norms), Bits(fused.Norms), $"{what}: gradient norms");
        CollectionAssert.AreEqual(Bits(reference.Weights), Bits(fused.Weights), $"{what}: master weights");
        Assert.AreEqual(Updates, fused.Norms.Count, $"{what}: every step updates");
        Assert.IsTrue(fused.Losses.All(float.IsFinite), $"{what}: no NaN reached a loss");
    }

    private static int[] Bits(IEnumerable<float> values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static long[] Bits(IEnumerable<double> values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();
}

/// <summary>
/// One residual add whose second operand (the Linear's output) nothing reads after the add, not even a backward: the
/// unfused program may put the norm's output in its memory, the fused call reads it at the norm's step.
/// </summary>
[Model]
public partial class ResidualNormModel
{
    // Wider than the vocabulary, so the logits are not the largest buffer and the norm's output is placed before
    // them, at the lowest offset free over its life.
    [Layer] private readonly Embedding tokens = new(SmallGpt.Vocabulary, 128);
    [Layer] private readonly Linear mix = new(128, 128);
    [Layer] private readonly LayerNorm norm = new(128);

    [Forward]
    public Tensor Forward([Tokens(SmallGpt.Context)] Tensor ids, [Tokens(SmallGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids);
        var sum = x + mix.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(norm.Forward(sum)), targets);
    }
}
