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
    private const int RowWarpThreads = 256;      // layernorm and softmax: one warp per row, 8 rows per block
    private const int RowsPerWarpBlock = RowWarpThreads / 32;
    private const int ReduceThreads = 256;
    /// <summary>The stage-2 column sums over chunks (sw_column_sum_over_chunks): 32 columns × 32 chunk strides.</summary>
    private static readonly CudaDim3 ColumnSumBlock = new(32, 32);
    private const int SumThreads = 1024;
    private const int RowsPerPartialChunk = 32;  // LayerNorm and bias gradients: rows per stage-1 chunk
    private const int MaxPartialChunks = 256;

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
    private readonly DeviceScratch groupingScratch, partialScratch, scoreScratch, rowScratch, scalarScratch;
    private readonly int elementBytes;
    private bool disposed;
    private CudaOpsProfiler? profiler;
    private readonly bool fusedAttention;
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
            epilogueGemm = new CudaEpilogueGemm(gemm);
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
        scoreScratch = new DeviceScratch(context, allocations, "attention score gradients");
        rowScratch = new DeviceScratch(context, allocations, "cross-entropy per-row losses and softmax statistics");
        scalarScratch = new DeviceScratch(context, allocations, "loss scalar");
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
                                 rowScratch.Growths + scalarScratch.Growths;

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
    }

    public void SelectActivationWindow(int window)
    {
        if ((uint)window >= (uint)activationWindows.Length)
            throw new ArgumentOutOfRangeException(nameof(window), window, $"There are {activationWindows.Length} activation windows; call AllocateActivationWindows first.");
        arenas[(int)Ops.Arena.Activations] = activationWindows[window];
        indices = indexWindows[window];
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

    // ---- Linear and bias ------------------------------------------------------------------------------------------

    public void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong ya = Address(y, (long)rows * outDim, nameof(y));
        ulong? ba = bias is { } b ? Address(b, outDim, nameof(bias)) : null;
        if (rows == 0 || outDim == 0) return;
        // y = x · Wᵀ + bias in one cuBLASLt matmul with the BIAS epilogue; where cuBLASLt has no algorithm for it,
        // cuBLAS GemmEx and the bias as its own elementwise pass.
        if (ba is { } fused && epilogueGemm.TryLinear(xa, wa, fused, ya, rows, inDim, outDim)) return;
        gemm.Multiply(false, true, rows, outDim, inDim, 1f, xa, inDim, wa, inDim, 0f, ya, outDim);
        if (ba is { } biasAddress) LaunchAddBias(ya, biasAddress, rows, outDim);
    }

    public void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias,
        int rows, int inDim, int outDim, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong dya = Address(dy, (long)rows * outDim, nameof(dy));
        ulong? dxa = dx is { } d ? Address(d, (long)rows * inDim, nameof(dx)) : null;
        ulong dwa = Address(dWeight, (long)outDim * inDim, nameof(dWeight));
        ulong? dba = dBias is { } db ? Address(db, outDim, nameof(dBias)) : null;
        if (rows == 0) return;
        if (dxa is { } dxAddress)
            gemm.Multiply(false, false, rows, inDim, outDim, 1f, dya, outDim, wa, inDim, accumulate ? 1f : 0f, dxAddress, inDim);
        ParameterGradients(xa, dya, dwa, dba, rows, inDim, outDim);
    }

    /// <summary>
    /// pre = x · Wᵀ + bias and y = GeLU(pre) in one cuBLASLt matmul with the GELU_AUX_BIAS epilogue (pre is the aux
    /// output); where cuBLASLt cannot (no algorithm, or outDim not a multiple of 8), Linear then Gelu.
    /// </summary>
    public void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong pa = Address(preActivation, (long)rows * outDim, nameof(preActivation));
        ulong ya = Address(y, (long)rows * outDim, nameof(y));
        ulong ba = bias is { } b ? Address(b, outDim, nameof(bias)) : 0;
        if (rows == 0 || outDim == 0) return;
        if (epilogueGemm.TryLinearGelu(xa, wa, ba, pa, ya, rows, inDim, outDim)) return;
        if (ba == 0 || !epilogueGemm.TryLinear(xa, wa, ba, pa, rows, inDim, outDim))
        {
            gemm.Multiply(false, true, rows, outDim, inDim, 1f, xa, inDim, wa, inDim, 0f, pa, outDim);
            if (ba != 0) LaunchAddBias(pa, ba, rows, outDim);
        }

        LaunchGelu(pa, ya, (long)rows * outDim);
    }

    /// <summary>
    /// dPre = (dy · W) ⊙ GeLU′(pre) as one cuBLASLt matmul with the DGELU epilogue (x's gradient never stored), then the
    /// parameter gradients as <see cref="LinearBackward"/>; where cuBLASLt cannot, GemmEx into dPre and gelu_backward
    /// in place over it.
    /// </summary>
    public void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation,
        Slice dWeight, Slice? dBias, int rows, int inDim, int outDim)
    {
        Begin();
        ulong pa = Address(preActivation, (long)rows * inDim, nameof(preActivation));
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong dya = Address(dy, (long)rows * outDim, nameof(dy));
        ulong dpa = Address(dPreActivation, (long)rows * inDim, nameof(dPreActivation));
        ulong dwa = Address(dWeight, (long)outDim * inDim, nameof(dWeight));
        ulong? dba = dBias is { } db ? Address(db, outDim, nameof(dBias)) : null;
        if (rows == 0) return;
        if (!epilogueGemm.TryGeluInputGradient(dya, wa, pa, dpa, rows, inDim, outDim))
        {
            gemm.Multiply(false, false, rows, inDim, outDim, 1f, dya, outDim, wa, inDim, 0f, dpa, inDim);
            LaunchGeluBackward(pa, dpa, dpa, (long)rows * inDim, accumulate: false);
        }

        ParameterGradients(xa, dya, dwa, dba, rows, inDim, outDim);
    }

    /// <summary>
    /// dW += dyᵀ · x and dBias += Σ_rows dy. With a bias, one cuBLASLt matmul with the BGRADB epilogue computes both:
    /// the column sums ride on the GEMM that reads dy anyway, instead of the two-stage column-sum kernels reading dy
    /// once more. cuBLASLt writes the bias gradient (it has no beta), so it goes to fp32 scratch and is added into
    /// dBias by add_bias_backward_reduce over one chunk (one rounding, as the column-sum path's last stage); where
    /// cuBLASLt has no algorithm, GemmEx and the column-sum kernels.
    /// </summary>
    private void ParameterGradients(ulong x, ulong dy, ulong dWeight, ulong? dBias, int rows, int inDim, int outDim)
    {
        if (dBias is { } dBiasAddress)
        {
            ulong columnSums = partialScratch.Ensure((long)outDim * sizeof(float));
            if (epilogueGemm.TryWeightGradientWithBias(dy, x, dWeight, columnSums, rows, inDim, outDim, accumulate: true))
            {
                Kernel("add_bias_backward_reduce").Launch(Blocks(outDim, 32), ColumnSumBlock, 0, null,
                    columnSums, 1, dBiasAddress, outDim);
                return;
            }
        }

        gemm.Multiply(true, false, outDim, inDim, rows, 1f, dy, outDim, x, inDim, 1f, dWeight, inDim);
        if (dBias is { } address) LaunchBiasBackward(dy, address, rows, outDim);
    }

    public void AddBias(Slice y, Slice bias, int rows, int dim)
    {
        Begin();
        ulong ya = Address(y, (long)rows * dim, nameof(y)), ba = Address(bias, dim, nameof(bias));
        if (rows == 0 || dim == 0) return;
        LaunchAddBias(ya, ba, rows, dim);
    }

    public void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim)
    {
        Begin();
        ulong dya = Address(dy, (long)rows * dim, nameof(dy)), dba = Address(dBias, dim, nameof(dBias));
        if (rows == 0 || dim == 0) return;
        LaunchBiasBackward(dya, dba, rows, dim);
    }

    private void LaunchAddBias(ulong y, ulong bias, int rows, int dim)
    {
        long n = (long)rows * dim;
        Kernel("add_bias").Launch(kernels.ElementwiseBlocks(n), CudaKernelSet.ElementwiseThreads, 0, null,
            y, bias, (long)rows, dim);
    }

    /// <summary>dBias += Σ_rows dy in two fixed-order stages (no atomics): chunk partial sums, then their sum.</summary>
    private void LaunchBiasBackward(ulong dy, ulong dBias, int rows, int dim)
    {
        int chunks = PartialChunks(rows);
        ulong partials = partialScratch.Ensure((long)chunks * dim * sizeof(float));
        Kernel("add_bias_backward_partial").Launch(new CudaDim3((uint)Blocks(dim, ReduceThreads), (uint)chunks),
            ReduceThreads, 0, null, dy, partials, rows, dim);
        Kernel("add_bias_backward_reduce").Launch(Blocks(dim, 32), ColumnSumBlock, 0, null,
            partials, chunks, dBias, dim);
    }

    // ---- LayerNorm, GeLU, add ------------------------------------------------------------------------------------

    public void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * dim, nameof(x)), ga = Address(gamma, dim, nameof(gamma));
        ulong ba = Address(beta, dim, nameof(beta)), ya = Address(y, (long)rows * dim, nameof(y));
        ulong ma = StatisticsAddress(mean, rows, nameof(mean)), ra = StatisticsAddress(rstd, rows, nameof(rstd));
        if (rows == 0) return;
        // The fused residual LayerNorm with no second operand is a plain LayerNorm.
        Kernel("residual_layernorm_forward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            xa, KernelArgument.Null, KernelArgument.Null, ga, ba, ya, ma, ra, rows, dim);
    }

    public void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx,
        Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, (long)rows * dim, nameof(x)), ga = Address(gamma, dim, nameof(gamma));
        ulong ma = StatisticsAddress(mean, rows, nameof(mean)), ra = StatisticsAddress(rstd, rows, nameof(rstd));
        ulong dya = Address(dy, (long)rows * dim, nameof(dy)), dxa = Address(dx, (long)rows * dim, nameof(dx));
        ulong dga = Address(dGamma, dim, nameof(dGamma)), dba = Address(dBeta, dim, nameof(dBeta));
        if (rows == 0 || dim == 0) return;
        // Parameter gradients first: they read dy, which dx may overwrite when the program computes in place.
        int chunks = PartialChunks(rows);
        ulong partials = partialScratch.Ensure(2L * chunks * dim * sizeof(float));
        Kernel("layernorm_backward_dparams_partial").Launch(new CudaDim3((uint)Blocks(dim, 32), (uint)chunks),
            new CudaDim3(32, 8), 0, null, xa, ma, ra, dya, partials, rows, dim);
        Kernel("layernorm_backward_dparams_reduce").Launch(Blocks(dim, 32), ColumnSumBlock, 0, null,
            partials, chunks, dga, dba, dim);
        Kernel("layernorm_backward_dx").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            xa, ga, ma, ra, dya, dxa, rows, dim, accumulate ? 1 : 0);
    }

    public void Gelu(Slice x, Slice y, long count)
    {
        Begin();
        ulong xa = Address(x, count, nameof(x)), ya = Address(y, count, nameof(y));
        if (count == 0) return;
        LaunchGelu(xa, ya, count);
    }

    private void LaunchGelu(ulong x, ulong y, long count)
    {
        // bias_gelu_forward with no bias: y = GeLU(x) over count × 1 elements.
        Kernel("bias_gelu_forward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0,
            null, x, KernelArgument.Null, KernelArgument.Null, y, count, 1);
    }

    public void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, count, nameof(x)), dya = Address(dy, count, nameof(dy)), dxa = Address(dx, count, nameof(dx));
        if (count == 0) return;
        LaunchGeluBackward(xa, dya, dxa, count, accumulate);
    }

    /// <summary>dx (=|+=) dy · GeLU′(x); elementwise, so dx may be dy.</summary>
    private void LaunchGeluBackward(ulong x, ulong dy, ulong dx, long count, bool accumulate) =>
        Kernel("gelu_backward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            x, dy, dx, count, accumulate ? 1 : 0);

    public void Add(Slice a, Slice b, Slice y, long count)
    {
        Begin();
        ulong aa = Address(a, count, nameof(a)), ba = Address(b, count, nameof(b)), ya = Address(y, count, nameof(y));
        if (count == 0) return;
        Kernel("add").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            aa, ba, ya, count);
    }

    public void AddBackward(Slice dy, Slice dx, long count, bool accumulate)
    {
        Begin();
        ulong dya = Address(dy, count, nameof(dy)), dxa = Address(dx, count, nameof(dx));
        if (count == 0) return;
        Kernel("add_backward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            dya, dxa, count, accumulate ? 1 : 0);
    }

    // ---- attention ------------------------------------------------------------------------------------------------

    /// <summary>
    /// In fp16/bf16 with <see cref="CudaOpsOptions.FusedAttention"/>, where the shape allows (<see cref="UsesFlashAttention"/>), the fused flash kernels
    /// (CudaOps.FlashAttention.cs), which never form the probabilities; the buffer planned for them keeps the
    /// log-sum-exp and a copy of y for backward. Otherwise, per batch element, two strided-batched GEMMs over the heads
    /// (a head of q, k or v is the column block h·headDim of the [seq, 3·dim] rows, so the heads are headDim apart)
    /// and one softmax_causal_forward over all rows.
    /// </summary>
    public void Attention(Slice qkv, Slice y, Slice probabilities, int batch, int sequence, int heads, int dim)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong ya = Address(y, (long)batch * sequence * dim, nameof(y));
        ulong pa = Address(probabilities, (long)batch * heads * sequence * sequence, nameof(probabilities));
        if (batch == 0 || sequence == 0) return;
        if (FlashLayout(batch, sequence, heads, dim, pa) is { } flash)
        {
            // The fused kernel writes y into the probabilities buffer beside the log-sum-exp, where backward finds
            // both whatever the memory plan does with y meanwhile; y itself is a copy of it.
            ulong kept = pa + flash.KeptOutputOffset;
            if (!TryFlashAttention(qkva, kept, pa, batch, sequence, heads, dim))
                throw new InvalidOperationException("FlashLayout accepted a shape the flash kernels refuse.");
            CudaCheck.Driver(Interop.CuDriver.cuMemcpyDtoDAsync(ya, kept, (nuint)flash.OutputBytes, 0), "cuMemcpyDtoDAsync_v2");
            return;
        }

        int stride = 3 * dim;
        long square = (long)sequence * sequence;
        float scale = 1f / MathF.Sqrt(headDim);
        for (int b = 0; b < batch; b++)
        {
            ulong q = Element(qkva, (long)b * sequence * stride), k = Element(q, dim);
            // S_h = Q_h · K_hᵀ / √headDim, written where the probabilities go; the softmax then works in place. The
            // scale is the GEMM's alpha (applied in fp32 before the one rounding), so 16-bit scores are stored already
            // scaled, √headDim times further from fp16's overflow than unscaled ones.
            gemm.MultiplyBatched(false, true, sequence, sequence, headDim, scale, q, stride, headDim, k, stride, headDim,
                0f, Element(pa, b * heads * square), sequence, square, heads);
        }

        int rows = batch * heads * sequence;
        Kernel("softmax_causal_forward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            pa, pa, rows, sequence, 1f);
        for (int b = 0; b < batch; b++)
        {
            ulong v = Element(qkva, (long)b * sequence * stride + 2L * dim);
            // Y_h = P_h · V_h, into the head's columns of y.
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, Element(pa, b * heads * square), sequence,
                square, v, stride, headDim, 0f, Element(ya, (long)b * sequence * dim), dim, headDim, heads);
        }
    }

    /// <summary>
    /// dV = Pᵀ·dY; dP = dY·Vᵀ (into scratch); dS = softmax_causal_backward(P, dP) with 1/√headDim folded in;
    /// dQ = dS·K; dK = dSᵀ·Q — batched over heads, per batch element, as in <see cref="Attention"/>.
    /// </summary>
    public void AttentionBackward(Slice qkv, Slice probabilities, Slice dy, Slice dqkv,
        int batch, int sequence, int heads, int dim, bool accumulate)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong pa = Address(probabilities, (long)batch * heads * sequence * sequence, nameof(probabilities));
        ulong dya = Address(dy, (long)batch * sequence * dim, nameof(dy));
        ulong dqkva = Address(dqkv, 3L * batch * sequence * dim, nameof(dqkv));
        if (batch == 0 || sequence == 0) return;
        if (FlashLayout(batch, sequence, heads, dim, pa) is { } flash)
        {
            if (!TryFlashAttentionBackward(qkva, pa + flash.KeptOutputOffset, dya, pa, dqkva, batch, sequence, heads, dim, accumulate))
                throw new InvalidOperationException("FlashLayout accepted a shape the flash kernels refuse.");
            return;
        }

        int stride = 3 * dim;
        long square = (long)sequence * sequence;
        float beta = accumulate ? 1f : 0f;
        ulong scores = scoreScratch.Ensure((long)batch * heads * square * elementBytes);
        for (int b = 0; b < batch; b++)
        {
            long rowBase = (long)b * sequence * stride;
            ulong v = Element(qkva, rowBase + 2L * dim), dyb = Element(dya, (long)b * sequence * dim);
            ulong pb = Element(pa, b * heads * square), sb = Element(scores, b * heads * square);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, pb, sequence, square, dyb, dim, headDim,
                beta, Element(dqkva, rowBase + 2L * dim), stride, headDim, heads);
            gemm.MultiplyBatched(false, true, sequence, sequence, headDim, 1f, dyb, dim, headDim, v, stride, headDim,
                0f, sb, sequence, square, heads);
        }

        int rows = batch * heads * sequence;
        Kernel("softmax_causal_backward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            pa, scores, scores, rows, sequence, 1f / MathF.Sqrt(headDim));
        for (int b = 0; b < batch; b++)
        {
            long rowBase = (long)b * sequence * stride;
            ulong q = Element(qkva, rowBase), k = Element(q, dim), sb = Element(scores, b * heads * square);
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, sb, sequence, square, k, stride, headDim,
                beta, Element(dqkva, rowBase), stride, headDim, heads);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, sb, sequence, square, q, stride, headDim,
                beta, Element(dqkva, rowBase + dim), stride, headDim, heads);
        }
    }

    // ---- cross-entropy ----------------------------------------------------------------------------------------

    public float CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits));
        ulong ta = IndexAddress(targets, rows, nameof(targets));
        // The host copy of the index arena (LoadIndices keeps it current): no device transfer, no wait.
        CheckIds(HostIndices(targets, rows), vocabulary, "Target", "the vocabulary");
        savedSoftmax = null;
        if (rows == 0) return float.NaN; // the mean of nothing, as the CPU backend's 0/0
        // rowScratch: the per-row losses, then each row's (max, Σ exp) for a backward that follows at once.
        ulong losses = rowScratch.Ensure(3L * rows * sizeof(float));
        ulong statistics = losses + (ulong)((long)rows * sizeof(float));
        Kernel("crossentropy_forward").Launch(rows, CrossEntropyReadThreads, 0, null,
            la, ta, losses, statistics, rows, vocabulary);
        savedSoftmax = new SavedSoftmax(la, ta, rows, vocabulary, statistics, calls);
        ulong mean = scalarScratch.Ensure(sizeof(float));
        KernelNamed("sum_f32").Launch(1, SumThreads, 0, null, losses, rows, mean, 1f / rows);
        return ReadScalar();
    }

    public void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        float scale, bool accumulate)
    {
        Begin();
        ulong la = Address(logits, (long)rows * vocabulary, nameof(logits));
        ulong ta = IndexAddress(targets, rows, nameof(targets));
        ulong da = Address(dLogits, (long)rows * vocabulary, nameof(dLogits));
        CheckIds(HostIndices(targets, rows), vocabulary, "Target", "the vocabulary");
        ulong? statistics = TakeSavedSoftmax(la, ta, rows, vocabulary);
        if (rows == 0) return;
        Kernel("crossentropy_backward").Launch(rows, CrossEntropyThreads(vocabulary), 0, null,
            la, ta, statistics is { } s ? s : KernelArgument.Null, da, rows, vocabulary, scale / rows, accumulate ? 1 : 0);
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

    public float CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, int rows)
    {
        Begin();
        ulong ma = StatisticsAddress(rowMax, rows, nameof(rowMax)), sa = StatisticsAddress(rowSum, rows, nameof(rowSum));
        ulong tla = StatisticsAddress(targetLogit, rows, nameof(targetLogit));
        if (rows == 0) return float.NaN;
        ulong loss = scalarScratch.Ensure(sizeof(float));
        KernelNamed("crossentropy_loss_from_partials_f32").Launch(1, SumThreads, 0, null, ma, sa, tla, rows, loss);
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
        Kernel("crossentropy_range_backward").Launch(rows, CrossEntropyThreads(vocabulary), 0, null,
            la, ta, ma, sa, da, rows, vocabulary, first, scale / rows, accumulate ? 1 : 0);
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

    private static void CheckIds(ReadOnlySpan<int> ids, int limit, string what, string range)
    {
        for (int r = 0; r < ids.Length; r++)
        {
            if ((uint)ids[r] >= (uint)limit)
                throw new ArgumentOutOfRangeException(nameof(ids), $"{what} {ids[r]} at row {r} is outside {range} [0, {limit}).");
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
        foreach (DeviceScratch scratch in new[] { groupingScratch, partialScratch, scoreScratch, rowScratch, scalarScratch })
            scratch.Dispose();
        DisposeFusedOptimizerState(); // CudaOps.FusedAdam.cs
        profiler?.Dispose();
        epilogueGemm.Dispose();
        gemm.Dispose();
        kernels.Dispose();
        context.Dispose();
    }
}
