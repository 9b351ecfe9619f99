using System;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>
/// Picks the fastest of cuBLASLt's candidate algorithms for one matmul by running each on the real operands
/// (<see cref="CudaOpsOptions.GemmTuning"/>). cuBLASLt's heuristic ranks its candidates by a model; the first is not
/// always the fastest for the skinny products of a transformer (k = 768 against 16,384 rows), which is why PyTorch's
/// max-autotune and TransformerEngine time them. Each candidate runs once untimed, then
/// <see cref="TimedRuns"/> times between two events on the legacy stream; the smallest total wins, the first
/// candidate on a tie. A candidate cuBLASLt refuses to run is skipped.
/// <para>
/// Runs happen once per plan (the first call of a shape), during the first step. A product that adds into C
/// (beta ≠ 0) must not add more than once: C is copied to a scratch allocation first and copied back before every
/// run and after the last, so the caller's own call starts from the original C. The scratch is freed at once (it
/// is the size of C: 77 MB for GPT-2's tied-embedding gradient, the largest accumulating product), so the steady
/// state allocates nothing. Timing-based choices can differ between runs and machines; the products stay fp32
/// accumulations rounded once, but the order of their partial sums follows the algorithm.
/// </para>
/// </summary>
internal sealed class CudaGemmTuner : IDisposable
{
    /// <summary>Candidates asked of cuBLASLt's heuristic per plan.</summary>
    public const int Candidates = 8;

    /// <summary>Timed runs per candidate, after one untimed run.</summary>
    public const int TimedRuns = 3;

    private readonly CudaContext context;
    private readonly DeviceAllocationCounter allocations;
    private readonly CudaEvent start, stop;

    public CudaGemmTuner(CudaContext context, DeviceAllocationCounter allocations)
    {
        this.context = context;
        this.allocations = allocations;
        start = CudaEvent.Create(context);
        stop = CudaEvent.Create(context);
    }

    /// <summary>Plans tuned so far, for tests and the trainer's report.</summary>
    public int Tuned { get; private set; }

    /// <summary>
    /// The index of the fastest of <paramref name="count"/> candidates; <paramref name="run"/>(i) queues candidate i
    /// on the legacy stream and throws <see cref="CudaException"/> where cuBLASLt refuses it. <paramref name="output"/>
    /// and <paramref name="outputBytes"/>: C, kept intact across the runs where <paramref name="accumulates"/>.
    /// Returns 0 when no candidate ran (the caller's own call then reports cuBLASLt's error).
    /// </summary>
    public int Fastest(int count, Action<int> run, ulong output, long outputBytes, bool accumulates)
    {
        if (count <= 1) return 0;
        Tuned++;
        using DeviceMemory? saved = accumulates ? allocations.Allocate(context, outputBytes) : null;
        if (saved is not null) Copy(saved.Pointer, output, outputBytes);
        int best = 0;
        double bestMilliseconds = double.PositiveInfinity;
        for (int i = 0; i < count; i++)
        {
            double? milliseconds = Time(i, run, saved, output, outputBytes);
            if (milliseconds < bestMilliseconds)
            {
                best = i;
                bestMilliseconds = milliseconds.Value;
            }
        }

        if (saved is not null) Copy(output, saved.Pointer, outputBytes);
        context.Synchronize(); // the scratch is freed when this returns: nothing may still read it
        return best;
    }

    private double? Time(int candidate, Action<int> run, DeviceMemory? saved, ulong output, long outputBytes)
    {
        double total = 0;
        try
        {
            for (int r = 0; r <= TimedRuns; r++)
            {
                if (saved is not null) Copy(output, saved.Pointer, outputBytes);
                if (r > 0) start.Record();
                run(candidate);
                if (r == 0) continue; // the untimed run: first-use costs of the kernel stay out of the comparison
                stop.Record();
                stop.Synchronize();
                total += CudaEvent.ElapsedMilliseconds(start, stop);
            }
        }
        catch (CudaException)
        {
            context.Synchronize();
            return null;
        }

        return total;
    }

    private static void Copy(ulong to, ulong from, long bytes) =>
        CudaCheck.Driver(CuDriver.cuMemcpyDtoD(to, from, (nuint)bytes), "cuMemcpyDtoD_v2");

    public void Dispose()
    {
        start.Dispose();
        stop.Dispose();
    }
}
