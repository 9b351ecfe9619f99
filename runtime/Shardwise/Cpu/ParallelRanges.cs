using System;

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

    /// <summary>
    /// Runs <c>work.Run(chunk, start, end)</c> for each chunk, on the shared <see cref="WorkerPool"/>; inline when
    /// there is one chunk. Allocates nothing.
    /// </summary>
    public static void Run(int items, int chunks, IChunkWork work)
    {
        if (chunks <= 1)
        {
            work.Run(0, 0, items);
            return;
        }

        WorkerPool.Shared.Run(work, items, chunks);
    }

    /// <summary>Runs chunk <paramref name="chunk"/> of <paramref name="items"/> split into <paramref name="chunks"/>.</summary>
    public static void RunChunk(IChunkWork work, int items, int chunks, int chunk) =>
        work.Run(chunk, Start(items, chunks, chunk), Start(items, chunks, chunk + 1));

    private static int Start(int items, int chunks, int chunk) => (int)((long)items * chunk / chunks);
}
