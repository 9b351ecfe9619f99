using System;
using System.Globalization;
using System.Runtime.InteropServices;
using Shardwise.Training.Config;

namespace Shardwise.Training.Offload;

/// <summary>
/// ZeRO-Infinity's optimizer offload to NVMe: this rank's fp32 master weights and Adam moments (12 bytes per element of
/// its partition) live in a swap file under offload_optimizer.nvme_path instead of host memory. Host memory holds only
/// <c>buffer_count</c> chunk buffers; the step streams the state through them chunk by chunk (<see cref="Begin"/>).
/// <para>
/// A chunk is sub_group_size elements (DeepSpeed's optimizer-step granularity), at most <see cref="MaxChunkElements"/>
/// so that the default sub_group_size (10⁹) does not ask for gigabytes of buffers, and a multiple of
/// <see cref="ChunkAlignment"/> so that chunk boundaries fall on the vectorised Adam kernel's vector boundaries, as in one
/// call over the whole partition. (Its scalar tail does the same arithmetic today, so the swapped step equals the
/// in-memory step bit for bit either way; the alignment keeps that true should the vector path ever fuse differently.)
/// In the file, chunk c holds its
/// masters, then its first moments, then its second moments, so that one read and one write move a chunk.
/// </para>
/// <para>
/// pipeline_read reads the next chunk while the current one is updated; pipeline_write lets a chunk's write-back run
/// while the next one is updated. Both need two buffers or more; the result is the same with or without them.
/// </para>
/// </summary>
public sealed class SwappedOptimizerState : IDisposable
{
    /// <summary>The largest chunk: 4 Mi elements, 48 MiB per buffer.</summary>
    public const int MaxChunkElements = 1 << 22;

    /// <summary>Chunks start at multiples of 64 elements (a whole number of 512-bit vectors).</summary>
    public const int ChunkAlignment = 64;

    private const int StatesPerElement = 3; // master, exp_avg, exp_avg_sq
    private const string ConfigPath = "$.zero_optimization.offload_optimizer.nvme_path";

    private readonly SwapFile _file;
    private readonly byte[][] _buffers;
    private readonly System.Threading.Tasks.Task?[] _pending; // per buffer: its write-back or its read-ahead, not yet waited for

    private SwappedOptimizerState(SwapFile file, long length, int chunkElements, int buffers, bool pipelineRead, bool pipelineWrite)
    {
        _file = file;
        Length = length;
        ChunkElements = chunkElements;
        Chunks = length == 0 ? 0 : checked((int)((length + chunkElements - 1) / chunkElements));
        _buffers = new byte[buffers][];
        for (int i = 0; i < buffers; i++) _buffers[i] = GC.AllocateUninitializedArray<byte>(chunkElements * StatesPerElement * sizeof(float), pinned: true);
        _pending = new System.Threading.Tasks.Task?[buffers];
        PipelineRead = pipelineRead && buffers > 1;
        PipelineWrite = pipelineWrite && buffers > 1;
    }

    /// <summary>Elements of the partition (masters; each moment has as many).</summary>
    public long Length { get; }

    public int ChunkElements { get; }

    public int Chunks { get; }

    public int BufferCount => _buffers.Length;

    public bool PipelineRead { get; }

    public bool PipelineWrite { get; }

    /// <summary>Where the swap file was made (unlinked at once on Unix).</summary>
    public string FilePath => _file.Path;

    public long FileBytes => _file.Bytes;

    /// <summary>Host bytes of the chunk buffers.</summary>
    public long BufferBytes => (long)_buffers.Length * ChunkElements * StatesPerElement * sizeof(float);

    /// <summary>The chunk length for a partition of <paramref name="length"/> elements and a sub_group_size.</summary>
    public static int ChunkElementsFor(long length, long subGroupSize)
    {
        long chunk = Math.Min(Math.Min(subGroupSize, MaxChunkElements), Math.Max(length, 1));
        if (chunk < length) chunk = Math.Max(ChunkAlignment, chunk / ChunkAlignment * ChunkAlignment);
        return (int)chunk;
    }

    /// <summary>Bytes of the swap file for a partition of <paramref name="length"/> elements.</summary>
    public static long FileBytesFor(long length) => length * StatesPerElement * sizeof(float);

    /// <summary>Host bytes of the buffers the swap takes for a partition (what the memory plan predicts).</summary>
    public static long BufferBytesFor(OffloadConfig offload, long subGroupSize, long length)
    {
        int chunk = ChunkElementsFor(length, subGroupSize);
        long chunks = length == 0 ? 0 : (length + chunk - 1) / chunk;
        return Math.Max(1, Math.Min(offload.BufferCount, chunks)) * chunk * StatesPerElement * (long)sizeof(float);
    }

    /// <summary>
    /// Creates the swap file for this rank's partition and writes the initial state: <paramref name="masters"/>, zero
    /// moments. Throws <see cref="OffloadException"/> naming nvme_path when the directory is unusable or too small.
    /// </summary>
    public static SwappedOptimizerState Create(OffloadConfig offload, long subGroupSize, ReadOnlySpan<float> masters, int rank)
    {
        if (offload.Device != OffloadDevice.Nvme || offload.NvmePath is null)
            throw new ArgumentException("the optimizer swap needs offload_optimizer.device = \"nvme\" and an nvme_path", nameof(offload));
        long length = masters.Length;
        int chunk = ChunkElementsFor(length, subGroupSize);
        long chunks = length == 0 ? 0 : (length + chunk - 1) / chunk;
        int buffers = (int)Math.Max(1, Math.Min(offload.BufferCount, chunks));
        var file = SwapFile.Create(offload.NvmePath, string.Create(CultureInfo.InvariantCulture, $"shardwise-optimizer-rank{rank}"), FileBytesFor(length), ConfigPath);
        var state = new SwappedOptimizerState(file, length, chunk, buffers, offload.PipelineRead, offload.PipelineWrite);
        try
        {
            state.WriteAll(masters, default, default);
        }
        catch
        {
            state.Dispose();
            throw;
        }
        return state;
    }

    /// <summary>Starts a pass over the chunks in order; see <see cref="SwapPass.Next"/>.</summary>
    public SwapPass Begin(SwapPassMode mode) => new(this, mode);

    /// <summary>Reads the whole state into new arrays (for checkpoints: this is the only time it is all in host memory).</summary>
    public (float[] Master, float[] ExpAvg, float[] ExpAvgSq) ReadAll()
    {
        var (master, expAvg, expAvgSq) = (new float[Length], new float[Length], new float[Length]);
        using var pass = Begin(SwapPassMode.Read);
        while (pass.Next(out long start, out var m, out var a, out var s))
        {
            m.CopyTo(master.AsSpan((int)start));
            a.CopyTo(expAvg.AsSpan((int)start));
            s.CopyTo(expAvgSq.AsSpan((int)start));
        }
        return (master, expAvg, expAvgSq);
    }

    /// <summary>Reads the masters only into <paramref name="master"/>.</summary>
    public void ReadMasters(Span<float> master)
    {
        CheckLength(master.Length);
        using var pass = Begin(SwapPassMode.Read);
        while (pass.Next(out long start, out var m, out _, out _)) m.CopyTo(master[(int)start..]);
    }

    /// <summary>Replaces the masters, keeping the moments.</summary>
    public void WriteMasters(ReadOnlySpan<float> master)
    {
        CheckLength(master.Length);
        using var pass = Begin(SwapPassMode.Update);
        while (pass.Next(out long start, out var m, out _, out _)) master.Slice((int)start, m.Length).CopyTo(m);
    }

    /// <summary>Replaces the whole state; empty moment spans stand for zeros.</summary>
    public void WriteAll(ReadOnlySpan<float> master, ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        CheckLength(master.Length);
        if (!expAvg.IsEmpty) CheckLength(expAvg.Length);
        if (!expAvgSq.IsEmpty) CheckLength(expAvgSq.Length);
        using var pass = Begin(SwapPassMode.Overwrite);
        while (pass.Next(out long start, out var m, out var a, out var s))
        {
            master.Slice((int)start, m.Length).CopyTo(m);
            if (expAvg.IsEmpty) a.Clear(); else expAvg.Slice((int)start, a.Length).CopyTo(a);
            if (expAvgSq.IsEmpty) s.Clear(); else expAvgSq.Slice((int)start, s.Length).CopyTo(s);
        }
    }

    private void CheckLength(int length)
    {
        if (length != Length)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"the swapped optimizer state holds {Length} elements, not {length}"));
    }

    internal int ChunkLength(int chunk) => (int)Math.Min(ChunkElements, Length - (long)chunk * ChunkElements);

    internal long ChunkStart(int chunk) => (long)chunk * ChunkElements;

    private long ChunkOffset(int chunk) => ChunkStart(chunk) * StatesPerElement * sizeof(float);

    internal byte[] BufferOf(int chunk) => _buffers[chunk % _buffers.Length];

    private Memory<byte> ChunkBytes(int chunk) => BufferOf(chunk).AsMemory(0, ChunkLength(chunk) * StatesPerElement * sizeof(float));

    /// <summary>Waits for the I/O still running on <paramref name="chunk"/>'s buffer (its previous user's write, or its read-ahead).</summary>
    internal void WaitForBuffer(int chunk)
    {
        int b = chunk % _buffers.Length;
        var pending = _pending[b];
        _pending[b] = null;
        pending?.GetAwaiter().GetResult();
    }

    internal void ReadChunk(int chunk) => _file.Read(ChunkBytes(chunk).Span, ChunkOffset(chunk));

    internal void StartReadChunk(int chunk)
    {
        WaitForBuffer(chunk);
        _pending[chunk % _buffers.Length] = _file.ReadAsync(ChunkBytes(chunk), ChunkOffset(chunk));
    }

    internal void WriteChunk(int chunk, bool inBackground)
    {
        if (inBackground) _pending[chunk % _buffers.Length] = _file.WriteAsync(ChunkBytes(chunk), ChunkOffset(chunk));
        else _file.Write(ChunkBytes(chunk).Span, ChunkOffset(chunk));
    }

    /// <summary>Waits for every read-ahead and write-back; rethrows the first failure.</summary>
    internal void Drain()
    {
        Exception? first = null;
        for (int b = 0; b < _pending.Length; b++)
        {
            try
            {
                _pending[b]?.GetAwaiter().GetResult();
            }
            catch (Exception error)
            {
                first ??= error;
            }
            _pending[b] = null;
        }
        if (first is not null) throw new System.IO.IOException($"optimizer swap file \"{FilePath}\": {first.Message}", first);
    }

    /// <summary>A chunk buffer seen as its three fp32 states.</summary>
    internal void Spans(int chunk, out Span<float> master, out Span<float> expAvg, out Span<float> expAvgSq)
    {
        int length = ChunkLength(chunk);
        var floats = MemoryMarshal.Cast<byte, float>(BufferOf(chunk).AsSpan());
        master = floats[..length];
        expAvg = floats.Slice(length, length);
        expAvgSq = floats.Slice(2 * length, length);
    }

    public void Dispose()
    {
        try
        {
            Drain();
        }
        catch (System.IO.IOException)
        {
            // The file is going away; a failed write-back has nothing left to corrupt.
        }
        _file.Dispose();
    }
}
