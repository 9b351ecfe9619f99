using System;
using System.Globalization;
using System.Linq;
using Shardwise.Distributed;
using Shardwise.Models.Tests;
using Shardwise.Plans;
using Shardwise.Training.Cli;

namespace Shardwise.Pipeline.Models;

/// <summary>
/// One rank of a test job over a generated partitioned model (PipelineGpt: p = 2; TensorGpt: t = 2; HybridGpt: p = 2 × t = 2):
/// <list type="bullet">
/// <item><c>equivalence MODEL [steps] [zero]</c>: its stage programs through PipelineEngine vs its whole program in one
/// process; every rank checks loss, gradient norm and gathered weights (relative &lt; 1e-5) and prints "equivalence ok";</item>
/// <item><c>cli MODEL ARGS…</c>: the trainer CLI (<c>TrainerCli.Run&lt;MODEL&gt;</c>), as a model's generated Main calls it.</item>
/// </list>
/// Exits 0 on success, 3 on a <see cref="CommunicationException"/>, 1 on another failure.
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "cli")
        {
            string[] rest = args.Skip(2).ToArray();
            return args[1] switch
            {
                nameof(TwoBlockGpt) => TrainerCli.Run<TwoBlockGpt>(rest),
                nameof(PipelineGpt) => TrainerCli.Run<PipelineGpt>(rest),
                nameof(TensorGpt) => TrainerCli.Run<TensorGpt>(rest),
                nameof(HybridGpt) => TrainerCli.Run<HybridGpt>(rest),
                nameof(DroppableHybridGpt) => TrainerCli.Run<DroppableHybridGpt>(rest),
                nameof(PartitionedCheckpointHybridGpt) => TrainerCli.Run<PartitionedCheckpointHybridGpt>(rest),
                nameof(Shardwise.Examples.ParallelGpt) => TrainerCli.Run<Shardwise.Examples.ParallelGpt>(rest),
                _ => Usage(),
            };
        }
        if (args.Length < 2 || args[0] != "equivalence") return Usage();
        int steps = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 20;
        int zero = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0;
        return args[1] switch
        {
            nameof(PipelineGpt) => Equivalence<PipelineGpt>(steps, zero),
            nameof(TensorGpt) => Equivalence<TensorGpt>(steps, zero),
            nameof(HybridGpt) => Equivalence<HybridGpt>(steps, zero),
            nameof(CheckpointedHybridGpt) => Equivalence<CheckpointedHybridGpt>(steps, zero, withoutCheckpointing: GeneratedTraining.Whole<HybridGpt>),
            nameof(HostCheckpointedHybridGpt) => Equivalence<HostCheckpointedHybridGpt>(steps, zero, withoutCheckpointing: GeneratedTraining.Whole<HybridGpt>),
            nameof(PartitionedCheckpointHybridGpt) => Equivalence<PartitionedCheckpointHybridGpt>(steps, zero, withoutCheckpointing: GeneratedTraining.Whole<HybridGpt>),
            _ => Usage(),
        };
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Shardwise.Pipeline.Models equivalence <PipelineGpt|TensorGpt|HybridGpt|CheckpointedHybridGpt|HostCheckpointedHybridGpt|PartitionedCheckpointHybridGpt> [steps] [zero] | cli <MODEL> [trainer arguments]");
        return 2;
    }

    /// <param name="withoutCheckpointing">For a model with [Checkpoint] layers: its twin without them, trained the same way in one process; the losses and weights must be the same.</param>
    private static int Equivalence<TModel>(int steps, int zero,
        Func<int, int, (double[] Losses, double[] Norms, float[] Weights)>? withoutCheckpointing = null) where TModel : IPartitionedModelDefinition
    {
        const int microBatches = 4;
        using ICommunicator world = Communicators.Create();
        Console.WriteLine($"models probe rank {world.Rank} of {world.Size} pid {Environment.ProcessId} ({world.GetType().Name})");
        try
        {
            long partsBytes = 0;
            var pipelined = GeneratedTraining.Pipelined<TModel>(world, steps, microBatches, zero, pipelineBytesSent: bytes => partsBytes = bytes);
            if (TModel.Partition.Tensor > 1 && TModel.Partition.Pipeline > 1)
            {
                // pipe_partitioned and grad_partitioned off: every tensor rank sends the whole boundary. The same training
                // (the parts are the same numbers), twice the bytes between the stages.
                long wholeBytes = 0;
                var unsplit = GeneratedTraining.Pipelined<TModel>(world, steps, microBatches, zero, boundariesInParts: false, pipelineBytesSent: bytes => wholeBytes = bytes);
                for (int step = 0; step < steps; step++)
                    if (unsplit.Losses[step] != pipelined.Losses[step])
                        throw new InvalidOperationException($"step {step}: loss {pipelined.Losses[step]:R} with the boundaries in parts, {unsplit.Losses[step]:R} whole");
                if (wholeBytes != TModel.Partition.Tensor * partsBytes)
                    throw new InvalidOperationException($"the stages sent {partsBytes:N0} bytes with the boundaries in parts and {wholeBytes:N0} whole; expected a {TModel.Partition.Tensor}× difference");
                Console.WriteLine($"models probe rank {world.Rank}: boundaries in parts sent {partsBytes:N0} bytes to the neighbouring stages, whole {wholeBytes:N0}");
            }
            int data = world.Size / (TModel.Partition.Pipeline * TModel.Partition.Tensor);
            var whole = GeneratedTraining.Whole<TModel>(steps, data * microBatches);
            for (int step = 0; step < steps; step++)
            {
                Check("loss", step, pipelined.Losses[step], whole.Losses[step]);
                Check("gradient norm", step, pipelined.Norms[step], whole.Norms[step]);
            }
            if (!whole.Norms.All(norm => norm > 0.25)) throw new InvalidOperationException("clipping at 0.25 should act on every step");
            if (whole.Losses[^1] > whole.Losses[0] - 0.1) throw new InvalidOperationException($"the model did not learn: {whole.Losses[0]} -> {whole.Losses[^1]}");
            if (withoutCheckpointing is not null)
            {
                var twin = withoutCheckpointing(steps, data * microBatches);
                for (int step = 0; step < steps; step++) Check("loss without checkpointing", step, pipelined.Losses[step], twin.Losses[step]);
                double apart = GeneratedTraining.RelativeDifference(pipelined.Weights, twin.Weights);
                if (apart >= 1e-5) throw new InvalidOperationException($"final weights differ from the model without checkpointing by {apart:E2} (relative)");
            }
            double weights = GeneratedTraining.RelativeDifference(pipelined.Weights, whole.Weights);
            if (weights >= 1e-5) throw new InvalidOperationException($"final weights differ from the whole program's by {weights:E2} (relative)");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"models probe rank {world.Rank}: {typeof(TModel).Name} equivalence ok, loss {whole.Losses[0]:F4} -> {whole.Losses[^1]:F4}, weights relative difference {weights:E2}"));
            return 0;
        }
        catch (CommunicationException error)
        {
            Console.Error.WriteLine($"models probe rank {world.Rank}: {error.Message}");
            return 3;
        }
        catch (Exception error)
        {
            Console.Error.WriteLine($"models probe rank {world.Rank}: {error}");
            return 1;
        }
    }

    private static void Check(string what, int step, double actual, double expected)
    {
        double relative = Math.Abs(actual - expected) / Math.Abs(expected);
        if (!(relative < 1e-5))
            throw new InvalidOperationException($"step {step}: {what} {actual:R}, the whole program {expected:R} (relative {relative:E2})");
    }
}
