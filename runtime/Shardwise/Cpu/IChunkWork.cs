namespace Shardwise.Cpu;

/// <summary>
/// One parallel loop body, run once per chunk of a contiguous range of work items. Implementations are cached
/// objects whose fields (arenas, offsets, sizes) are set before each run, so a parallel op allocates nothing.
/// </summary>
internal interface IChunkWork
{
    /// <summary>Runs items <c>[start, end)</c>, which form chunk number <paramref name="chunk"/>.</summary>
    void Run(int chunk, int start, int end);
}
