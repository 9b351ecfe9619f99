using System;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace Shardwise.Cpu;

/// <summary>
/// A few persistent background threads ("shardwise-cpu-N") that run the chunks of one <see cref="IChunkWork"/>
/// together with the calling thread, without allocating per run. One process-wide pool serves every
/// <see cref="CpuOps{T}"/>: it runs one loop at a time, and a caller that finds it busy (another instance on
/// another thread, or a loop started from inside a chunk) runs all its chunks itself. Which thread runs a chunk
/// never changes its result, since chunk boundaries depend only on the sizes.
/// </summary>
internal sealed class WorkerPool
{
    private readonly int workers;
    private readonly SemaphoreSlim wake = new(0);
    private readonly CountdownEvent finished = new(0);

    // 1 while a caller owns the pool; the job fields below are only written by that caller, before waking workers.
    private int busy;
    private IChunkWork? work;
    private int items;
    private int chunks;
    private int nextChunk;
    private Exception? failure;

    private WorkerPool(int workers)
    {
        this.workers = workers;
        for (int i = 0; i < workers; i++)
        {
            new Thread(WorkerLoop) { IsBackground = true, Name = $"shardwise-cpu-{i + 1}" }.Start();
        }
    }

    /// <summary>The process-wide pool, with one thread per core beyond the caller's; started on first use.</summary>
    public static WorkerPool Shared => Holder.Instance;

    /// <summary>
    /// Runs <c>work.Run(chunk, start, end)</c> for every chunk of <paramref name="items"/> split into
    /// <paramref name="chunks"/>, and returns when all are done; the first exception thrown by any chunk is
    /// rethrown here after the others finish.
    /// </summary>
    public void Run(IChunkWork work, int items, int chunks)
    {
        if (Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            // Another op holds the pool; running every chunk here gives the same result, only later.
            for (int chunk = 0; chunk < chunks; chunk++) ParallelRanges.RunChunk(work, items, chunks, chunk);
            return;
        }

        Exception? thrown;
        try
        {
            this.work = work;
            this.items = items;
            this.chunks = chunks;
            nextChunk = 0;
            failure = null;
            int helpers = Math.Min(workers, chunks - 1);
            finished.Reset(helpers);
            if (helpers > 0) wake.Release(helpers);
            RunChunks();
            finished.Wait();
            thrown = failure;
        }
        finally
        {
            // Dropping the job keeps the pool from holding a finished op's arenas alive.
            this.work = null;
            failure = null;
            Volatile.Write(ref busy, 0);
        }

        if (thrown is not null) ExceptionDispatchInfo.Throw(thrown);
    }

    /// <summary>Claims and runs chunks of the current job until none is left.</summary>
    private void RunChunks()
    {
        IChunkWork job = work!;
        int chunk;
        while ((chunk = Interlocked.Increment(ref nextChunk) - 1) < chunks)
        {
            try
            {
                ParallelRanges.RunChunk(job, items, chunks, chunk);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
            }
        }
    }

    private void WorkerLoop()
    {
        while (true)
        {
            wake.Wait();
            RunChunks();
            finished.Signal();
        }
    }

    // A nested type so the threads start on first use of the pool, not when the CPU backend is first touched.
    private static class Holder
    {
        public static readonly WorkerPool Instance = new(Math.Max(0, Environment.ProcessorCount - 1));
    }
}
