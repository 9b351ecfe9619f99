using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>Cross-entropy, whole and vocabulary-parallel (crossentropy.cu, crossentropy_parallel.cu), with the row statistics a forward keeps for the backward that follows it.</summary>
public sealed partial class CudaOps
{
    // ---- cross-entropy ----------------------------------------------------------------------------------------

    public float CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits));
        ulong ta = IndexAddress(targets, rows, nameof(targets));
        int divisor = CheckedTargets(targets, rows, vocabulary);
        savedSoftmax = null;
        if (rows == 0) return float.NaN; // the mean of nothing, as the CPU backend's 0/0
        // rowScratch: the per-row losses, then each row's (max, Σ exp) for a backward that follows at once.
        ulong losses = rowScratch.Ensure(3L * rows * sizeof(float));
        ulong statistics = losses + (ulong)((long)rows * sizeof(float));
        Kernel("crossentropy_forward").Launch(rows, CrossEntropyReadThreads, 0, null,
            la, ta, losses, statistics, rows, vocabulary);
        savedSoftmax = new SavedSoftmax(la, ta, rows, vocabulary, statistics, calls);
        return MeanLoss(losses, rows, divisor);
    }

    /// <summary>
    /// The mean of the per-row losses in <paramref name="losses"/> over <paramref name="divisor"/> counted rows
    /// (sum_f32 with 1/divisor; an ignored row's loss is 0), read back.
    /// </summary>
    private float MeanLoss(ulong losses, int rows, int divisor)
    {
        ulong mean = scalarScratch.Ensure(sizeof(float));
        KernelNamed("sum_f32").Launch(1, SumThreads, 0, null, losses, rows, mean, 1f / divisor);
        return ReadScalar();
    }

    /// <summary>
    /// Checks the targets against the vocabulary on the host copy of the index arena (LoadIndices keeps it current:
    /// no device transfer, no wait), letting the ignore index through, and returns the mean's divisor
    /// (<see cref="Shardwise.Cpu.CrossEntropyKernels.MeanDivisor"/>), which the kernels are given already applied.
    /// </summary>
    private int CheckedTargets(IndexSlice targets, int rows, int vocabulary)
    {
        ReadOnlySpan<int> host = HostIndices(targets, rows);
        CheckIds(host, vocabulary, "Target", "the vocabulary", allowed: Shardwise.Cpu.CrossEntropyKernels.IgnoreIndex);
        return Shardwise.Cpu.CrossEntropyKernels.MeanDivisor(host);
    }

    public void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        float scale, bool accumulate)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits));
        ulong ta = IndexAddress(targets, rows, nameof(targets));
        ulong da = Address(dLogits, (long)rows * vocabulary, nameof(dLogits));
        int divisor = CheckedTargets(targets, rows, vocabulary);
        ulong? statistics = TakeSavedSoftmax(la, ta, rows, vocabulary);
        if (rows == 0) return;
        Kernel("crossentropy_backward").Launch(rows, CrossEntropyThreads(vocabulary), 0, null,
            la, ta, statistics is { } s ? s : KernelArgument.Null, da, rows, vocabulary, scale / divisor, accumulate ? 1 : 0);
    }

    /// <summary>
    /// crossentropy_forward_backward: the loss and dLogits in one launch that reads each row once from global memory,
    /// keeping it in shared memory for the gradient pass where a row fits the device's opt-in limit (GPT-2's 50304
    /// bf16 logits: 98 KiB); <see cref="CrossEntropy"/> then <see cref="CrossEntropyBackward"/> read it twice. Its
    /// block reduction has the backward's block size, not the forward's, so the loss can differ from
    /// <see cref="CrossEntropy"/>'s in the last bits.
    /// </summary>
    public float CrossEntropyWithGradient(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        float scale, bool accumulate)
    {
        if (!fusedCrossEntropy)
        {
            float loss = CrossEntropy(logits, targets, rows, vocabulary);
            CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, scale, accumulate);
            return loss;
        }
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits));
        ulong ta = IndexAddress(targets, rows, nameof(targets));
        ulong da = Address(dLogits, (long)rows * vocabulary, nameof(dLogits));
        int divisor = CheckedTargets(targets, rows, vocabulary);
        savedSoftmax = null;
        if (rows == 0) return float.NaN;
        ulong losses = rowScratch.Ensure((long)rows * sizeof(float));
        uint staged = StagedCrossEntropyBytes(vocabulary);
        // The backward's block (512 threads at a 50K vocabulary). Staged, shared memory allows two blocks per H100
        // multiprocessor (98 KiB rows of 228 KiB). 1024 threads would fill it, but the kernel has no launch bound that
        // caps its registers at 64, so such a launch could fail: bench/kernels times 1024 where nvcc reports them.
        int threads = CrossEntropyThreads(vocabulary);
        SharedMemoryKernel("crossentropy_forward_backward", staged).Launch(rows, threads, staged,
            null, la, ta, losses, da, rows, vocabulary, scale / divisor, accumulate ? 1 : 0, staged > 0 ? 1 : 0);
        return MeanLoss(losses, rows, divisor);
    }

    /// <summary>
    /// The dynamic shared memory crossentropy_forward_backward keeps a row in (the row and 16 bytes to give it the
    /// row's alignment), or 0 where that and the kernel's 1 KiB of static shared memory exceed
    /// the device's opt-in limit: the gradient pass then reads the row again from global memory.
    /// </summary>
    public uint StagedCrossEntropyBytes(int vocabulary)
    {
        long bytes = (long)vocabulary * ElementBytes + 16;
        return bytes + 1024 <= Device.MaxSharedMemoryPerBlockOptIn ? (uint)bytes : 0;
    }

    /// <summary>
    /// The per-row (max, Σ exp) that <see cref="CrossEntropy"/> left in rowScratch, when the backward may use them: it
    /// is the very next call into this backend (<see cref="calls"/>: no operation, load, view or window change came
    /// between that could have changed the logits, the targets or the scratch) and it has the same logits, targets
    /// and shape. Then crossentropy_backward reads the logits once instead of twice. Used at most once: an in-place
    /// backward overwrites the logits.
    /// </summary>
    private ulong? TakeSavedSoftmax(ulong logits, ulong targets, int rows, int vocabulary)
    {
        SavedSoftmax? saved = savedSoftmax;
        savedSoftmax = null;
        bool usable = saved is { } s && s.Call + 1 == calls && s.Logits == logits && s.Targets == targets &&
                      s.Rows == rows && s.Vocabulary == vocabulary;
        if (usable) SoftmaxStatisticsReused++;
        return usable ? saved!.Value.Statistics : null;
    }

    /// <summary>What <see cref="TakeSavedSoftmax"/> checks: the forward's arguments, its statistics' address, and its call number.</summary>
    private readonly record struct SavedSoftmax(ulong Logits, ulong Targets, int Rows, int Vocabulary, ulong Statistics, long Call);

    /// <summary>
    /// How many CrossEntropyBackward calls used the preceding CrossEntropy's row statistics (one read of the logits
    /// instead of two); for tests and profiles.
    /// </summary>
    public long SoftmaxStatisticsReused { get; private set; }

    public void CrossEntropyRowMax(Slice logits, Slice rowMax, int rows, int vocabulary)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits)), ma = StatisticsAddress(rowMax, rows, nameof(rowMax));
        if (rows == 0) return;
        Kernel("crossentropy_row_max").Launch(rows, CrossEntropyReadThreads, 0, null, la, ma, rows, vocabulary);
    }

    public void CrossEntropyPartials(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice targetLogit,
        int rows, int vocabulary, int first)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits)), ta = IndexAddress(targets, rows, nameof(targets));
        ulong ma = StatisticsAddress(rowMax, rows, nameof(rowMax)), sa = StatisticsAddress(rowSum, rows, nameof(rowSum));
        ulong tla = StatisticsAddress(targetLogit, rows, nameof(targetLogit));
        if (rows == 0) return;
        Kernel("crossentropy_partials").Launch(rows, CrossEntropyReadThreads, 0, null,
            la, ta, ma, sa, tla, rows, vocabulary, first);
    }

    public float CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, IndexSlice targets, int rows)
    {
        Begin();
        ulong ma = StatisticsAddress(rowMax, rows, nameof(rowMax)), sa = StatisticsAddress(rowSum, rows, nameof(rowSum));
        ulong tla = StatisticsAddress(targetLogit, rows, nameof(targetLogit)), ta = IndexAddress(targets, rows, nameof(targets));
        if (rows == 0) return float.NaN;
        int divisor = Shardwise.Cpu.CrossEntropyKernels.MeanDivisor(HostIndices(targets, rows));
        ulong loss = scalarScratch.Ensure(sizeof(float));
        KernelNamed("crossentropy_loss_from_partials_f32").Launch(1, SumThreads, 0, null, ma, sa, tla, ta, rows, 1f / divisor, loss);
        return ReadScalar();
    }

    public void CrossEntropyRangeBackward(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice dLogits,
        int rows, int vocabulary, int first, float scale, bool accumulate)
    {
        Begin();
        long n = (long)rows * vocabulary;
        ulong la = Address(logits, n, nameof(logits)), ta = IndexAddress(targets, rows, nameof(targets));
        ulong ma = StatisticsAddress(rowMax, rows, nameof(rowMax)), sa = StatisticsAddress(rowSum, rows, nameof(rowSum));
        ulong da = Address(dLogits, n, nameof(dLogits));
        if (n == 0) return;
        int divisor = Shardwise.Cpu.CrossEntropyKernels.MeanDivisor(HostIndices(targets, rows));
        Kernel("crossentropy_range_backward").Launch(rows, CrossEntropyThreads(vocabulary), 0, null,
            la, ta, ma, sa, da, rows, vocabulary, first, scale / divisor, accumulate ? 1 : 0);
    }
}
