using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// The GPU backend: <see cref="ITensorOps{T}"/> on one CUDA device, storing fp32, fp16 or bf16
/// (<see cref="CudaOpsOptions.Storage"/>) and computing in fp32, with cuBLAS for the matrix
/// products and the kernels-cu kernels for everything else (the table in docs/cuda.md maps each op to its kernel or
/// GEMM). Semantics and argument conventions are those of the interface, and the CPU backend is the reference.
/// <para>
/// Memory: the parameter, gradient and activation arenas (one activation and one index arena per window after
/// <see cref="AllocateActivationWindows"/>) live in device memory, allocated once by <see cref="Allocate"/>; the
/// operations allocate nothing except scratch that grows to the largest shape seen (counted in
/// <see cref="DeviceAllocations"/>). When memory moves between host and device:
/// <list type="bullet">
/// <item><see cref="Load"/>, <see cref="Store"/> and <see cref="LoadIndices"/> copy their slice, synchronously;</item>
/// <item><see cref="View"/> returns a host mirror of the arena: it copies device → host, and the next operation
/// copies the whole mirror back host → device (the caller may have written it), so a view is valid until the next
/// operation. Zeroing a whole arena discards pending mirror changes instead of uploading them;</item>
/// <item><see cref="CrossEntropy"/> and <see cref="CrossEntropyFromPartials"/> return the loss, one float copied back
/// (which waits for the queued work);</item>
/// <item>the embedding gradient uploads a row grouping built on the host from the host copy of the index arena
/// (kept current by <see cref="LoadIndices"/> and <see cref="Positions"/>, which is also where ids and targets are
/// validated, as the CPU backend does).</item>
/// </list>
/// Everything is queued on the legacy default stream, so operations run in call order without events. Use an
/// instance from one thread at a time; it makes its context current on whichever thread calls it.
/// </para>
/// <para>
/// 16-bit storage: every arena holds 2-byte elements on the device, every op runs the kernels' <c>_f16</c>/<c>_bf16</c>
/// entry points (fp32 arithmetic, one rounding per stored result) and the GEMMs take CUDA_R_16F/16BF operands with
/// fp32 accumulation (<see cref="CudaGemm"/>). The host side stays float: Load, Store, View and the upload of a viewed
/// mirror round to nearest even exactly as <see cref="StorageRounding"/> (fp16 overflow → ∞), and widen exactly.
/// Per-row statistics the kernels keep in fp32 (LayerNorm mean/rstd, the vocabulary-parallel cross-entropy's
/// max/sum/target logit) live in activation slices like everything else, written unconverted: one value spans
/// <see cref="StatisticSlots"/> elements (two 16-bit ones), and the generator plans LayerNorm's at two elements per
/// value, so the activation arena has the 16-bit size. It cannot be viewed element by element; its fp32 statistics
/// are read and written with <see cref="StoreStatistics"/>/<see cref="LoadStatistics"/>.
/// </para>
/// </summary>
public sealed partial class CudaOps : ITensorOps<float>, IDisposable
{
    private const int EmbeddingThreads = 128;
    private const int RowWarpThreads = 256;      // layernorm and softmax: one warp per row, 8 rows per block (the fused
                                                 // LayerNorm backward's SW_LN_FUSED_THREADS too)
    private const int RowsPerWarpBlock = RowWarpThreads / 32;
    private const int ReduceThreads = 256;
    /// <summary>The stage-2 column sums over chunks (sw_column_sum_over_chunks): 32 columns × 32 chunk strides.</summary>
    private static readonly CudaDim3 ColumnSumBlock = new(32, 32);
    private const int SumThreads = 1024;
    private const int RowsPerPartialChunk = 32;  // LayerNorm and bias gradients: rows per stage-1 chunk
    private const int MaxPartialChunks = 256;
    private const int MaxLayerNormVectors = 4;  // residual_layernorm_forward_v1 … _v4, layernorm_backward_fused_v1 … _v4

    private readonly CudaContext context;
    private readonly DeviceAllocationCounter allocations = new();
    private readonly CudaKernelSet kernels;
    private readonly CudaGemm gemm;
    private readonly CudaEpilogueGemm epilogueGemm;
    private readonly DeviceArena?[] arenas = new DeviceArena?[3];
    private DeviceIndexArena? indices;
    private DeviceArena[] activationWindows = [];
    private DeviceIndexArena[] indexWindows = [];
    private readonly EmbeddingRowGrouping grouping = new();
    private readonly EmbeddingGroupingCache groupingCache = new();
    private readonly DeviceScratch groupingScratch, partialScratch, scoreScratch, rowScratch, scalarScratch, onesScratch;
    private readonly int elementBytes;
    private bool disposed;
    private CudaOpsProfiler? profiler;
    private readonly bool fusedAttention;
    private readonly bool flashDqFromStoredScores; // decided once: the option, else the environment
    private readonly bool fusedCrossEntropy; // CrossEntropyWithGradient as one kernel, or the pair (the option, else the environment)
    private readonly bool biasGradientByProduct; // likewise
    private string currentOperation = "";
    /// <summary>Calls into the backend (counted in <see cref="EnsureCurrent"/>, which every public operation calls).</summary>
    private long calls;
    private SavedSoftmax? savedSoftmax;

    /// <summary>
    /// Creates the backend on a device: retains its primary context, compiles (or takes from the PTX cache) and loads
    /// the kernels, creates the cuBLAS handle and its workspace. Throws <see cref="InvalidOperationException"/> with
    /// <see cref="CudaRuntime.TryInitialize"/>'s message when there is no usable GPU.
    /// </summary>
    public CudaOps(CudaOpsOptions? options = null)
    {
        options ??= new CudaOpsOptions();
        context = CudaContext.Primary(options.DeviceOrdinal);
        try
        {
            kernels = new CudaKernelSet(context, new KernelCompiler(options.KernelCacheDirectory));
            gemm = new CudaGemm(context, allocations, options.AllowTf32, options.Storage);
            epilogueGemm = new CudaEpilogueGemm(gemm, options.UsesGemmTuning ? new CudaGemmTuner(context, allocations) : null);
        }
        catch
        {
            gemm?.Dispose();
            kernels?.Dispose();
            context.Dispose();
            throw;
        }

        Device = context.Device;
        Options = options;
        fusedAttention = options.UsesFusedAttention;
        flashDqFromStoredScores = options.UsesFlashDqFromStoredScores;
        fusedCrossEntropy = options.UsesFusedCrossEntropy;
        biasGradientByProduct = options.UsesBiasGradientByProduct;
        elementBytes = options.Storage.BytesPerElement();
        StorageSuffix = options.Storage switch
        {
            StorageType.Float32 => "f32",
            StorageType.Float16 => "f16",
            StorageType.BFloat16 => "bf16",
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Storage, "Unknown storage type."),
        };
        groupingScratch = new DeviceScratch(context, allocations, "embedding row grouping");
        partialScratch = new DeviceScratch(context, allocations, "LayerNorm and bias partial sums");
        scoreScratch = new DeviceScratch(context, allocations, "attention: probabilities and score gradients (GEMM path), row dots and dSᵀ tiles (flash)");
        rowScratch = new DeviceScratch(context, allocations, "cross-entropy per-row losses and softmax statistics");
        scalarScratch = new DeviceScratch(context, allocations, "loss scalar");
        onesScratch = new DeviceScratch(context, allocations, "ones (the bias-gradient product's right operand)");
    }

    public CudaDevice Device { get; }

    public CudaOpsOptions Options { get; }

    /// <summary>The element type of the arenas on the device.</summary>
    public StorageType Storage => Options.Storage;

    /// <summary>The kernels' entry-point suffix for <see cref="Storage"/>: <c>f32</c>, <c>f16</c> or <c>bf16</c>.</summary>
    internal string StorageSuffix { get; }

    /// <summary>Bytes of one stored element (4 or 2).</summary>
    internal int ElementBytes => elementBytes;

    /// <summary>Device bytes of each arena (the activation arena counts its fp32 statistics room), for memory reports.</summary>
    public long ArenaBytes(Arena arena) => arenas[ArenaIndex(arena)]?.Bytes ?? 0;

    /// <summary>Device allocations made so far (arenas, windows, workspace, scratch growth).</summary>
    public int DeviceAllocations => allocations.Count;

    /// <summary>Bytes of every device allocation made so far.</summary>
    public long DeviceBytesAllocated => allocations.Bytes;

    /// <summary>How many times any scratch buffer grew.</summary>
    public int ScratchGrowths => groupingScratch.Growths + partialScratch.Growths + scoreScratch.Growths +
                                 rowScratch.Growths + scalarScratch.Growths + onesScratch.Growths;

    /// <summary>Waits until all queued work has finished.</summary>
    public void Synchronize()
    {
        EnsureCurrent();
        context.Synchronize();
    }

    // ---- arenas ------------------------------------------------------------------------------------------------

    public void Allocate(Arena arena, long elements)
    {
        EnsureCurrent();
        int index = ArenaIndex(arena);
        DeviceArena? old = arenas[index];
        // The activation arena also holds the fp32 per-row statistics, two 16-bit elements each (planned so).
        arenas[index] = DeviceArena.Allocate(context, elements, Storage, holdsStatistics: arena == Ops.Arena.Activations, allocations);
        if (old is not null && Array.IndexOf(activationWindows, old) < 0) old.Dispose();
    }

    public void AllocateIndices(long elements)
    {
        EnsureCurrent();
        DeviceIndexArena? old = indices;
        indices = DeviceIndexArena.Allocate(context, elements, allocations);
        grouping.Reserve((int)elements);
        groupingScratch.Ensure(EmbeddingGroupingCache.Entries * (3 * elements + 1) * sizeof(int));
        groupingCache.Reset((int)(3 * elements + 1));
        if (old is not null && Array.IndexOf(indexWindows, old) < 0) old.Dispose();
    }

    public void AllocateActivationWindows(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        EnsureCurrent();
        DeviceArena activations = Arena(Ops.Arena.Activations);
        DeviceIndexArena index = Indices();
        foreach (DeviceArena window in activationWindows) if (window != activations) window.Dispose();
        foreach (DeviceIndexArena window in indexWindows) if (window != index) window.Dispose();
        activationWindows = new DeviceArena[count];
        indexWindows = new DeviceIndexArena[count];
        activationWindows[0] = activations;
        indexWindows[0] = index;
        for (int w = 1; w < count; w++)
        {
            activationWindows[w] = activations.AllocateSibling(context, allocations);
            indexWindows[w] = DeviceIndexArena.Allocate(context, index.Length, allocations);
        }
        AllocateHostWindows(count); // CudaOps.HostActivations.cs
    }

    public void SelectActivationWindow(int window)
    {
        if ((uint)window >= (uint)activationWindows.Length)
            throw new ArgumentOutOfRangeException(nameof(window), window, $"There are {activationWindows.Length} activation windows; call AllocateActivationWindows first.");
        arenas[(int)Ops.Arena.Activations] = activationWindows[window];
        indices = indexWindows[window];
        if (window < hostWindows.Length) hostActivations = hostWindows[window];
    }

    /// <summary>
    /// The arena's host mirror, copied (and in 16-bit storage widened) from the device now; valid and writable until
    /// the next operation, which uploads it rounded to the storage type. In 16-bit storage the activation arena has no
    /// element-for-element mirror and throws <see cref="NotSupportedException"/> (see the class comment).
    /// </summary>
    public Span<float> View(Arena arena)
    {
        EnsureCurrent();
        return Arena(arena).View(arena.ToString());
    }

    public void LoadIndices(ReadOnlySpan<int> source, IndexSlice destination)
    {
        RequireSameLength(source.Length, destination.Length, nameof(LoadIndices));
        Begin();
        IndexAddress(destination, destination.Length, nameof(destination));
        Indices().Load(source, destination.Offset);
    }

    public void Load(ReadOnlySpan<float> source, Slice destination)
        => ArenaToLoad(source.Length, destination, nameof(Load)).Upload(source, destination.Offset);

    public void Store(Slice source, Span<float> destination)
        => ArenaToStore(source, destination.Length, nameof(Store)).Download(destination, source.Offset);

    /// <summary>
    /// Copies fp32 per-row statistics (what <see cref="LayerNorm"/>'s mean and rstd, or the cross-entropy partials, hold)
    /// into an activation slice, unrounded: <see cref="StatisticSlots"/> elements per value, so the slice is that many
    /// times as long as <paramref name="source"/> (in fp32 storage this is <see cref="Load"/>).
    /// </summary>
    public void LoadStatistics(ReadOnlySpan<float> source, Slice destination)
        => ArenaToLoad(source.Length * StatisticSlots, destination, nameof(LoadStatistics)).UploadFloat32(source, destination.Offset);

    /// <summary>Reads fp32 per-row statistics from an activation slice (see <see cref="LoadStatistics"/>).</summary>
    public void StoreStatistics(Slice source, Span<float> destination)
        => ArenaToStore(source, destination.Length * StatisticSlots, nameof(StoreStatistics)).DownloadFloat32(destination, source.Offset);

    /// <summary>
    /// Elements of the activation arena one fp32 per-row statistic spans: 1 in fp32 storage, 2 in fp16/bf16. The
    /// generator plans LayerNorm's mean and rstd at two elements per value, which fits either.
    /// </summary>
    public int StatisticSlots => sizeof(float) / elementBytes;

    // The checks every host-to-device copy makes; a copy over a whole arena makes pending mirror changes moot.
    private DeviceArena ArenaToLoad(int sourceLength, Slice destination, string call)
    {
        RequireSameLength(sourceLength, destination.Length, call);
        EnsureCurrent();
        CheckSlice(destination, destination.Length, nameof(destination));
        DeviceArena arena = Arena(destination.Arena);
        if (destination.Offset == 0 && destination.Length == arena.Length) arena.DiscardHostChanges();
        return arena;
    }

    private DeviceArena ArenaToStore(Slice source, int destinationLength, string call)
    {
        RequireSameLength(destinationLength, source.Length, call);
        EnsureCurrent();
        CheckSlice(source, source.Length, nameof(source));
        return Arena(source.Arena);
    }

    public void Zero(Slice destination)
    {
        EnsureCurrent();
        CheckSlice(destination, destination.Length, nameof(destination));
        Arena(destination.Arena).Zero(destination.Offset, destination.Length);
    }

    // ---- indices and embeddings ---------------------------------------------------------------------------------

    public void Positions(IndexSlice output, int batch, int sequence)
    {
        Begin();
        long count = (long)batch * sequence;
        ulong address = IndexAddress(output, count, nameof(output));
        if (count == 0) return;
        KernelNamed("positions_i32").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            address, batch, sequence);
        Span<int> host = Indices().Host.AsSpan((int)output.Offset, (int)count);
        for (int i = 0; i < host.Length; i++) host[i] = i % sequence;
    }

    public void Embedding(IndexSlice ids, Slice table, Slice output, int rows, int dim)
    {
        Begin();
        ulong idAddress = IndexAddress(ids, rows, nameof(ids));
        int vocabulary = dim == 0 ? 0 : (int)(table.Length / dim);
        CheckIds(HostIndices(ids, rows), vocabulary, "Token id", "the embedding table's vocabulary");
        ulong tableAddress = Address(table, table.Length, nameof(table));
        ulong outputAddress = Address(output, (long)rows * dim, nameof(output));
        if (rows == 0 || dim == 0) return;
        Kernel("embedding_forward").Launch(rows, EmbeddingThreads, 0, null, idAddress, tableAddress,
            outputAddress, rows, dim, vocabulary);
    }

    public void EmbeddingBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim)
    {
        Begin();
        IndexAddress(ids, rows, nameof(ids));
        int vocabulary = dim == 0 ? 0 : (int)(dTable.Length / dim);
        ReadOnlySpan<int> hostIds = HostIndices(ids, rows);
        CheckIds(hostIds, vocabulary, "Token id", "the embedding table's vocabulary");
        ulong dOutputAddress = Address(dOutput, (long)rows * dim, nameof(dOutput));
        ulong dTableAddress = Address(dTable, dTable.Length, nameof(dTable));
        if (rows == 0 || dim == 0) return;
        (ulong order, ulong starts, ulong segmentIds, int segments) = UploadGrouping(hostIds);
        Kernel("embedding_backward").Launch(segments, EmbeddingThreads, 0, null, order, starts,
            segmentIds, segments, dOutputAddress, dTableAddress, dim);
    }

    public void EmbeddingRange(IndexSlice ids, Slice table, Slice output, int rows, int dim, int first, int count)
    {
        Begin();
        ulong idAddress = IndexAddress(ids, rows, nameof(ids));
        ulong tableAddress = Address(table, (long)count * dim, nameof(table));
        ulong outputAddress = Address(output, (long)rows * dim, nameof(output));
        if (rows == 0 || dim == 0) return;
        Kernel("embedding_range_forward").Launch(rows, EmbeddingThreads, 0, null, idAddress, tableAddress,
            outputAddress, rows, dim, first, count);
    }

    public void EmbeddingRangeBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim, int first, int count)
    {
        Begin();
        IndexAddress(ids, rows, nameof(ids));
        ulong dOutputAddress = Address(dOutput, (long)rows * dim, nameof(dOutput));
        ulong dTableAddress = Address(dTable, (long)count * dim, nameof(dTable));
        if (rows == 0 || dim == 0) return;
        (ulong order, ulong starts, ulong segmentIds, int segments) = UploadGrouping(HostIndices(ids, rows));
        Kernel("embedding_range_backward").Launch(segments, EmbeddingThreads, 0, null, order, starts,
            segmentIds, segments, dOutputAddress, dTableAddress, dim, first, count);
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    /// <summary>Every operation starts here: the context current on this thread, and viewed arenas back on the device.</summary>
    private void Begin([CallerMemberName] string operation = "")
    {
        EnsureCurrent();
        foreach (DeviceArena? arena in arenas) arena?.EnsureDevice();
        currentOperation = operation;
        profiler?.Mark(operation);
    }

    /// <summary>
    /// Starts timing every operation on the device (<see cref="CudaOpsProfiler"/>); <see cref="StopProfiling"/> returns the
    /// times. Costs one event record per operation.
    /// </summary>
    public void StartProfiling()
    {
        EnsureCurrent();
        profiler?.Dispose();
        profiler = new CudaOpsProfiler(context);
        gemm.Trace = shape => profiler?.Mark(currentOperation + CudaOpsProfiler.Separator + shape);
        epilogueGemm.Trace = gemm.Trace;
    }

    /// <summary>Waits for the device and returns the device time per operation since <see cref="StartProfiling"/>.</summary>
    public IReadOnlyList<OperationTime> StopProfiling()
    {
        if (profiler is null) throw new InvalidOperationException("StopProfiling without StartProfiling.");
        EnsureCurrent();
        try { return profiler.Collect(); }
        finally { profiler.Dispose(); profiler = null; gemm.Trace = null; epilogueGemm.Trace = null; }
    }

    /// <summary>
    /// Makes the context current on the calling thread. Always set (cuCtxSetCurrent is cheap), because other code on
    /// the thread may have made another context current since the last operation.
    /// </summary>
    private void EnsureCurrent()
    {
        calls++;
        ObjectDisposedException.ThrowIf(disposed, this);
        context.MakeCurrent();
    }

    private float ReadScalar()
    {
        Span<float> value = stackalloc float[1];
        scalarScratch.Memory.Download(value); // synchronous: waits for the kernels queued before it
        return value[0];
    }

    /// <summary>Uploads the row grouping of <paramref name="ids"/> and returns the addresses of its three parts.</summary>
    /// <summary>
    /// The device row grouping of <paramref name="ids"/> for embedding_backward: from <see cref="groupingCache"/> when
    /// the same ids were grouped lately (position ids, every step), else built on the host and uploaded.
    /// </summary>
    private (ulong Order, ulong Starts, ulong Ids, int Segments) UploadGrouping(ReadOnlySpan<int> ids)
    {
        int regionInts = 3 * ids.Length + 1;
        int growths = groupingScratch.Growths;
        ulong buffer = groupingScratch.Ensure((long)EmbeddingGroupingCache.Entries * Math.Max(regionInts, groupingCache.RegionInts) * sizeof(int));
        if (groupingScratch.Growths != growths || regionInts > groupingCache.RegionInts)
            groupingCache.Reset(Math.Max(regionInts, groupingCache.RegionInts));

        if (!groupingCache.TryFind(ids, out int region, out EmbeddingGroupingCache.Layout layout))
        {
            grouping.Build(ids);
            region = groupingCache.Store(ids, grouping);
            layout = new EmbeddingGroupingCache.Layout(grouping.Segments, grouping.StartsOffset, grouping.IdsOffset);
            groupingScratch.Memory.Upload<int>(grouping.Packed.AsSpan(0, grouping.Length),
                (long)region * groupingCache.RegionInts * sizeof(int));
        }

        ulong address = buffer + (ulong)((long)region * groupingCache.RegionInts * sizeof(int));
        return (address, address + (ulong)(layout.StartsOffset * sizeof(int)), address + (ulong)(layout.IdsOffset * sizeof(int)),
            layout.Segments);
    }

    /// <summary>Id lists whose embedding-gradient grouping was found on the device, and ones grouped and uploaded.</summary>
    public (long Hits, long Misses) EmbeddingGroupings => (groupingCache.Hits, groupingCache.Misses);

    /// <summary>
    /// The backend's working memory that no plan counts, by purpose: cuBLAS's workspace and each scratch buffer at its
    /// size so far (the flash attention's dSᵀ tiles, up to <see cref="CudaOpsOptions.FlashStoredScoresMaxBytes"/>,
    /// are the largest at GPT-2's shape). For the trainer's and the benchmark's memory report.
    /// </summary>
    public string DescribeWorkingMemory()
    {
        var parts = new List<string> { $"cuBLAS workspace {Mebibytes(CublasWorkspaceBytes)}" };
        foreach (DeviceScratch? scratch in new[] { scoreScratch, partialScratch, rowScratch, groupingScratch, onesScratch, scalarScratch, wireScratch, quantizedInputScratch })
            if (scratch is { Bytes: > 0 }) parts.Add($"{scratch.Purpose} {Mebibytes(scratch.Bytes)}");
        return string.Join("; ", parts);

        static string Mebibytes(long bytes) =>
            (bytes / 1048576.0).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB";
    }

    /// <summary>The cuBLAS/cuBLASLt workspace every CudaOps allocates (sized for Hopper), outside any plan.</summary>
    public const long CublasWorkspaceBytes = CudaGemm.WorkspaceBytes;

    /// <summary>Bytes of the attention scratch so far (see <see cref="DescribeWorkingMemory"/>).</summary>
    public long AttentionScratchBytes => scoreScratch.Bytes;

    /// <summary>
    /// GEMM shapes whose cuBLASLt algorithm was picked by timing its candidates (<see cref="CudaOpsOptions.GemmTuning"/>;
    /// 0 without it, or where cuBLASLt offered one candidate only).
    /// </summary>
    public int TunedGemmPlans => epilogueGemm.TunedPlans;

    /// <summary>Row chunks of the two-stage column sums: about 32 rows each, at most 256 chunks.</summary>
    private static int PartialChunks(int rows) => Math.Clamp((rows + RowsPerPartialChunk - 1) / RowsPerPartialChunk, 1, MaxPartialChunks);

    /// <summary>
    /// Threads per row of the cross-entropy kernels that write a row (the backward passes): a multiple of 32 near the
    /// vocabulary, 128 to 512. On the H200 at GPT-2's shape (16384 × 50304 bf16) the backward given the forward's
    /// statistics took 0.80 ms with 512 threads, 0.82 ms with 256 and 0.83 ms with 128 (bench/kernels).
    /// </summary>
    private static int CrossEntropyThreads(int vocabulary) => vocabulary >= 4096 ? 512 : vocabulary >= 1024 ? 256 : 128;

    /// <summary>
    /// Threads per row of the cross-entropy passes that only read a row (forward, row max, partial sums): at GPT-2's
    /// shape on the H200 the forward took 0.38 ms with 128 threads, 0.40 with 256 and 0.47 with 512 (a smaller block
    /// spends less time in its closing block reduction, and more blocks share each multiprocessor).
    /// </summary>
    private const int CrossEntropyReadThreads = 128;

    private static int Blocks(long count, int per) => (int)Math.Max(1, (count + per - 1) / per);

    /// <summary>The address of element <paramref name="offset"/> of a tensor (or scratch) in the storage type.</summary>
    private ulong Element(ulong address, long offset) => address + (ulong)(offset * elementBytes);

    /// <summary>The dynamic shared memory limit this backend has raised each kernel to (above 48 KiB).</summary>
    private readonly Dictionary<string, uint> sharedMemoryOptIn = [];

    /// <summary>
    /// A kernel for this storage, its dynamic shared memory limit raised first where a launch needs more than the
    /// default 48 KiB (the d128 flash kernels: about 69 KiB; the staged cross-entropy: a row of logits), and again
    /// whenever a launch needs more than the kernel was last raised to (another vocabulary).
    /// </summary>
    private CudaFunction SharedMemoryKernel(string name, uint sharedBytes)
    {
        CudaFunction function = Kernel(name);
        if (sharedBytes > 48 * 1024 && (!sharedMemoryOptIn.TryGetValue(function.Name, out uint raised) || raised < sharedBytes))
        {
            function.AllowDynamicSharedMemory((int)sharedBytes);
            sharedMemoryOptIn[function.Name] = sharedBytes;
        }
        return function;
    }

    /// <summary>The entry point of a storage-templated kernel for this backend's storage: <c>name_f32</c>, <c>_f16</c> or <c>_bf16</c>.</summary>
    private CudaFunction Kernel(string name) => KernelNamed($"{name}_{StorageSuffix}");

    /// <summary>A kernel by its entry point; when profiling, marks its launch (which follows at once) inside the operation.</summary>
    private CudaFunction KernelNamed(string entryPoint)
    {
        profiler?.Mark(currentOperation + CudaOpsProfiler.Separator + entryPoint);
        return kernels[entryPoint];
    }

    private static int HeadDim(int dim, int heads)
    {
        if (heads <= 0 || dim % heads != 0) throw new ArgumentException($"Attention dim {dim} is not divisible into {heads} heads.");
        return dim / heads;
    }

    private static void RequireSameLength(long span, long slice, string operation)
    {
        if (span != slice) throw new ArgumentException($"{operation}: the span has {span} elements but the slice has {slice}.");
    }

    /// <summary>Every id in [0, limit), or equal to <paramref name="allowed"/> where one is given (the loss's ignore index).</summary>
    private static void CheckIds(ReadOnlySpan<int> ids, int limit, string what, string range, int? allowed = null)
    {
        for (int r = 0; r < ids.Length; r++)
        {
            if ((uint)ids[r] >= (uint)limit && ids[r] != allowed)
                throw new ArgumentOutOfRangeException(nameof(ids), $"{what} {ids[r]} at row {r} is outside {range} [0, {limit})" +
                    (allowed is { } value ? $" (and is not the ignore index {value})." : "."));
        }
    }

    private static int ArenaIndex(Arena arena) =>
        arena is Ops.Arena.Parameters or Ops.Arena.Gradients or Ops.Arena.Activations
            ? (int)arena
            : throw new ArgumentOutOfRangeException(nameof(arena), arena, "Unknown arena.");

    private DeviceArena Arena(Arena arena) =>
        arenas[ArenaIndex(arena)] ?? throw new InvalidOperationException($"The {arena} arena was never allocated.");

    private DeviceIndexArena Indices() => indices ?? throw new InvalidOperationException("The index arena was never allocated.");

    private ReadOnlySpan<int> HostIndices(IndexSlice slice, long count) => Indices().Host.AsSpan((int)slice.Offset, (int)count);

    private void CheckSlice(Slice slice, long needed, string name, [CallerMemberName] string operation = "")
    {
        if (needed < 0) throw new ArgumentOutOfRangeException(name, $"{operation}: negative size {needed} for {name}.");
        if (slice.Length < needed)
            throw new ArgumentException($"{operation}: {name} {slice} is shorter than the {needed} elements needed.", name);
        long length = Arena(slice.Arena).Length;
        if (slice.Offset < 0 || slice.Offset + slice.Length > length)
            throw new ArgumentOutOfRangeException(name, $"{operation}: {name} {slice} lies outside the {slice.Arena} arena of {length} elements.");
    }

    /// <summary>The device address of a slice, after the same checks as the CPU backend's.</summary>
    private ulong Address(Slice slice, long needed, string name, [CallerMemberName] string operation = "")
    {
        CheckSlice(slice, needed, name, operation);
        DeviceArena arena = Arena(slice.Arena);
        return arena.Length == 0 ? 0 : arena.Address(slice.Offset);
    }

    /// <summary>
    /// The device address of an fp32 statistics slice of <paramref name="values"/> values: it must span
    /// <see cref="StatisticSlots"/> elements per value and start on a 4-byte boundary.
    /// </summary>
    private ulong StatisticsAddress(Slice slice, long values, string name, [CallerMemberName] string operation = "")
    {
        if (slice.Length < values * StatisticSlots)
        {
            throw new ArgumentException($"{operation}: fp32 statistics {name} {slice} are too short for {values} values: in " +
                $"{Storage} storage each takes {StatisticSlots} elements (the generator plans them so), {values * StatisticSlots} in all.", name);
        }

        ulong address = Address(slice, values * StatisticSlots, name, operation);
        if (address % sizeof(float) != 0)
            throw new ArgumentException($"{operation}: fp32 statistics {name} {slice} do not start on a 4-byte boundary.", name);
        return address;
    }

    private ulong IndexAddress(IndexSlice slice, long needed, string name, [CallerMemberName] string operation = "")
    {
        if (needed < 0) throw new ArgumentOutOfRangeException(name, $"{operation}: negative size {needed} for {name}.");
        if (slice.Length < needed)
            throw new ArgumentException($"{operation}: {name} {slice} is shorter than the {needed} indices needed.", name);
        DeviceIndexArena index = Indices();
        if (slice.Offset < 0 || slice.Offset + slice.Length > index.Length)
            throw new ArgumentOutOfRangeException(name, $"{operation}: {name} {slice} lies outside the index arena of {index.Length} elements.");
        return index.Length == 0 ? 0 : index.Address(slice.Offset);
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        var seen = new HashSet<IDisposable>(ReferenceEqualityComparer.Instance);
        foreach (IDisposable? owned in new IDisposable?[] { arenas[0], arenas[1], arenas[2], indices })
            if (owned is not null && seen.Add(owned)) owned.Dispose();
        foreach (DeviceArena window in activationWindows) if (seen.Add(window)) window.Dispose();
        foreach (DeviceIndexArena window in indexWindows) if (seen.Add(window)) window.Dispose();
        foreach (DeviceScratch scratch in new[] { groupingScratch, partialScratch, scoreScratch, rowScratch, scalarScratch, onesScratch })
            scratch.Dispose();
        wireScratch?.Dispose();         // CudaOps.GradientWire.cs
        quantizedInputScratch?.Dispose(); // CudaOps.ActivationQuantization.cs
        DisposeFusedOptimizerState(); // CudaOps.FusedAdam.cs
        DisposeSparseLayouts();       // CudaOps.SparseAttention.cs
        collectiveOrder?.Dispose();     // CudaOps.DeviceGradients.cs
        DisposeHostActivations();       // CudaOps.HostActivations.cs
        DisposeCopyStream();
        profiler?.Dispose();
        epilogueGemm.Dispose();
        gemm.Dispose();
        kernels.Dispose();
        context.Dispose();
    }
}
