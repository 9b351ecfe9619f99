using System;
using Shardwise.Distributed;

namespace Shardwise.PipelineBench;

/// <summary>
/// The pipeline bubble benchmark (issue #5). <c>mpirun -np P dotnet Shardwise.PipelineBench.dll --stages P
/// --micro-batches M --micro-batch B --steps N</c> trains the P-stage twin of the benchmark GPT with 1F1B, one rank per
/// stage, and rank 0 prints one row: ms/step, each stage's idle fraction next to (p − 1)/(m + p − 1), tokens/s. With
/// <c>--baseline</c>, rank 0 first trains the whole program alone on the same global batch while the other ranks wait
/// in a barrier (they poll, then yield and sleep, so the baseline keeps a core to itself), and prints that row too:
/// the speed-up is measured side by side, in one job. <c>--stages 1</c> (one process) prints the baseline alone.
/// Exits 0, 2 on a bad command line, 3 on a communication failure, 1 on another failure.
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        using ICommunicator world = Communicators.Create();
        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args, world.Size);
        }
        catch (ArgumentException error)
        {
            if (world.Rank == 0) Console.Error.WriteLine($"{error.Message}\n{BenchOptions.Usage}");
            return 2;
        }

        try
        {
            var table = new ResultTable(Console.Out);
            if (world.Rank == 0 && !options.RowsOnly) table.WriteHeader(options, world.Size);
            BenchRow? baseline = null;
            if (options.Stages == 1 || options.Baseline)
            {
                if (world.Rank == 0)
                {
                    baseline = BaselineRun.Run(options);
                    table.WriteRow(baseline, baseline);
                }
                world.Barrier();
            }
            if (options.Stages == 1) return 0;

            BenchRow row = options.Stages == 2
                ? PipelinedRun<TwoStageGpt>.Run(world, options)
                : PipelinedRun<FourStageGpt>.Run(world, options);
            if (world.Rank == 0) table.WriteRow(row, baseline);
            return 0;
        }
        catch (CommunicationException error)
        {
            Console.Error.WriteLine($"pipeline bench rank {world.Rank}: {error.Message}");
            return 3;
        }
        catch (Exception error)
        {
            Console.Error.WriteLine($"pipeline bench rank {world.Rank}: {error}");
            return 1;
        }
    }
}
