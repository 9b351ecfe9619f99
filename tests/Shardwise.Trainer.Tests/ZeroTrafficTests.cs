using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Bytes each rank moves per optimizer step match ZeRO's accounting: 2Ψ(N−1)/N elements for stages 0–2 (a ring
/// all-reduce, or a reduce-scatter of gradients plus an all-gather of parameters) and 3Ψ(N−1)/N for stage 3
/// (parameters gathered for forward and again for backward), within 2%. By design stages ≥ 1
/// add two one-element all-reduces (the overflow flag and the gradient norm's sum of squares); a ring moves
/// ⌊(N−1)/N⌋ = 0 whole elements for them, so they vanish from the count. Elements here are float32 (the CPU backend
/// communicates fp32); on a GPU they would be 16-bit.
/// </summary>
[TestClass]
public sealed class ZeroTrafficTests
{
    [TestMethod]
    [DataRow(0, 2)]
    [DataRow(1, 2)]
    [DataRow(2, 2)]
    [DataRow(0, 4)]
    [DataRow(1, 4)]
    [DataRow(2, 4)]
    [DataRow(3, 2)]
    [DataRow(3, 4)]
    public void BytesPerStepMatchTheFormula(int stage, int ranks)
    {
        var traffic = InProcessGroup.Run(ranks, communicator =>
        {
            var config = DeepSpeedConfig.Parse($$"""
                { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
                  "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 0 } }
                """).Config;
            return OneStep(config, communicator);
        }, TimeSpan.FromMinutes(1));

        foreach (var (sent, received, padded, _, _) in traffic)
        {
            // Ψ: the layout, padded to equal partitions from stage 1 on (stage 2 pads each slot; the padding travels too).
            long psi = padded;
            Assert.IsTrue(psi >= TinyGpt.ParameterLayout.TotalElements && psi < 1.01 * TinyGpt.ParameterLayout.TotalElements);
            // ZeRO-3 gathers every slot twice (forward and backward) besides reducing its gradient: 3Ψ(N−1)/N.
            double factor = stage == 3 ? 3.0 : 2.0;
            double expected = factor * psi * (ranks - 1) / ranks * sizeof(float);
            Console.WriteLine($"stage {stage}, {ranks} ranks: sent {sent:N0} B, received {received:N0} B, {factor}Ψ(N−1)/N = {expected:N0} B");
            Assert.IsTrue(Math.Abs(sent - expected) <= 0.02 * expected, $"sent {sent:N0} B vs {factor}Ψ(N−1)/N = {expected:N0} B");
            Assert.IsTrue(Math.Abs(received - expected) <= 0.02 * expected, $"received {received:N0} B vs {expected:N0} B");
        }
    }

    /// <summary>
    /// The bytes this rank sends and receives in one step of TinyGpt (micro-batch 1, the config's micro-batches per
    /// step) over all ranks, the padded layout Ψ its collectives move, and the bytes it sent within its hpZ group and
    /// between the groups (0 without hpZ).
    /// </summary>
    internal static (long Sent, long Received, long Padded, long GroupSent, long AcrossSent) OneStep(DeepSpeedConfig config, ICommunicator communicator)
    {
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 1);
        var engine = TrainingEngine.Initialize(program, config, communicator);
        var sampler = new AdditionTask().CreateDataset(500, seed: 2).CreateSampler(DataSplit.Train, 1, TinyGpt.SequenceLength, seed: (ulong)communicator.Rank);
        var inputs = new int[TinyGpt.SequenceLength];
        var targets = new int[inputs.Length];
        sampler.NextBatch(inputs, targets);
        communicator.Traffic.Reset();
        engine.HpzGroupTraffic?.Reset();
        engine.AcrossNodesTraffic?.Reset();
        StepOutcome outcome;
        do
        {
            engine.Forward(inputs, targets);
            engine.Backward();
            outcome = engine.Step();
        } while (outcome == StepOutcome.Accumulated);
        return (communicator.Traffic.TotalSent, communicator.Traffic.TotalReceived, engine.CommunicatedElements, engine.HpzGroupTraffic?.TotalSent ?? 0,
            engine.AcrossNodesTraffic?.TotalSent ?? 0);
    }
}
