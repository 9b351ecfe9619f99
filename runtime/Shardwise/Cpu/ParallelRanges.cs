using System;
using System.Threading.Tasks;

namespace Shardwise.Cpu;

/// <summary>
/// Splits independent work items into a few contiguous chunks, one per core, and only when there is enough work
/// to repay the cost of waking threads. Chunk boundaries depend only on the sizes, so results are deterministic.
/// </summary>
internal static class ParallelRanges
{
    /// <summary>Roughly the number of multiply-adds below which a second thread costs more than it saves.</summary>
    private const long MinimumWorkPerChunk = 1 << 16;

    /// <summary>How many chunks <paramref name="items"/> items of <paramref name="workPerItem"/> each are split into.</summary>
    public static int ChunkCount(int items, long workPerItem)
    {
        long byWork = Math.Max(1, items * Math.Max(1, workPerItem) / MinimumWorkPerChunk);
        return (int)Math.Max(1, Math.Min(Math.Min(items, Environment.ProcessorCount), byWork));
    }

    /// <summary>Runs <c>body(chunk, start, end)</c> for each chunk; inline when there is one chunk.</summary>
    public static void Run(int items, int chunks, Action<int, int, int> body)
    {
        if (chunks <= 1)
        {
            body(0, 0, items);
            return;
        }

        Parallel.For(0, chunks, chunk => body(chunk, Start(items, chunks, chunk), Start(items, chunks, chunk + 1)));
    }

    private static int Start(int items, int chunks, int chunk) => (int)((long)items * chunk / chunks);
}
