using System;
using System.Globalization;
using Shardwise.Distributed;

namespace Shardwise.Pipeline.Probe;

/// <summary>
/// One rank of a pipeline test job: <c>mpirun -np W dotnet Shardwise.Pipeline.Probe.dll &lt;mode&gt; p t [steps]</c>.
/// <c>train</c> trains the chain model through the pipeline and compares it, on every rank, with the one-process run
/// (relative &lt; 1e-5); <c>kill</c> does the same but world rank <c>W − 1</c> SIGKILLs itself at step 2, and the others
/// must exit naming it. Exits 0 on success, 3 on a <see cref="CommunicationException"/>, 1 otherwise.
/// </summary>
internal static class Program
{
    /// <summary>A directory where a rank that fails with a <see cref="CommunicationException"/> writes its message.</summary>
    public const string ReportsVariable = "SHARDWISE_PROBE_REPORTS";

    public static int Main(string[] args)
    {
        if (args.Length < 3 || args[0] is not ("train" or "kill"))
        {
            Console.Error.WriteLine("usage: Shardwise.Pipeline.Probe <train|kill> <pipeline> <tensor> [steps]");
            return 2;
        }
        int pipeline = int.Parse(args[1], CultureInfo.InvariantCulture), tensor = int.Parse(args[2], CultureInfo.InvariantCulture);
        int steps = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 20;
        const int microBatches = 4;
        using ICommunicator world = Communicators.Create();
        Console.WriteLine($"pipeline probe rank {world.Rank} of {world.Size} pid {Environment.ProcessId} ({world.GetType().Name})");
        try
        {
            var model = new ChainModel();
            Action<int, Training.Pipeline.PipelineEngine>? kill = args[0] == "kill"
                ? (step, _) =>
                {
                    if (step != 2 || world.Rank != world.Size - 1) return;
                    Console.WriteLine($"pipeline probe rank {world.Rank}: killing itself (SIGKILL) at step 2");
                    Console.Out.Flush();
                    System.Diagnostics.Process.GetCurrentProcess().Kill();
                    System.Threading.Thread.Sleep(System.Threading.Timeout.Infinite);
                }
                : null;
            ChainResult result = ChainTraining.Pipelined(world, model, pipeline, tensor, steps, microBatches, beforeStep: kill);
            int data = world.Size / (pipeline * tensor);
            ChainResult reference = ChainTraining.Reference(model, steps, data * microBatches);
            for (int step = 0; step < steps; step++)
            {
                double relative = Math.Abs(result.Losses[step] - reference.Losses[step]) / Math.Abs(reference.Losses[step]);
                if (relative >= 1e-5)
                    throw new InvalidOperationException($"step {step}: loss {result.Losses[step]:R} but one process got {reference.Losses[step]:R}");
            }
            double weights = ChainTraining.RelativeDifference(result.Weights, reference.Weights);
            if (weights >= 1e-5) throw new InvalidOperationException($"final weights differ from one process by {weights:E2} (relative)");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"pipeline probe rank {world.Rank}: train ok, loss {result.Losses[0]:F4} -> {result.Losses[^1]:F4}, weights relative difference {weights:E2}"));
            return 0;
        }
        catch (CommunicationException error)
        {
            Console.Error.WriteLine($"pipeline probe rank {world.Rank}: {error.Message}");
            // mpirun interleaves the ranks' output, even within a line; a file per rank keeps each message whole.
            if (Environment.GetEnvironmentVariable(ReportsVariable) is { Length: > 0 } reports)
                System.IO.File.WriteAllText(System.IO.Path.Combine(reports, $"rank-{world.Rank}.txt"), error.Message);
            return 3;
        }
        catch (Exception error)
        {
            Console.Error.WriteLine($"pipeline probe rank {world.Rank}: {error}");
            return 1;
        }
    }
}
