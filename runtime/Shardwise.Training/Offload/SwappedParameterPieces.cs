using System;
using System.Globalization;
using System.Runtime.InteropServices;
using Shardwise.Training.Config;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Offload;

/// <summary>
/// ZeRO-Infinity's parameter offload to NVMe (offload_param.device = "nvme", ZeRO-3): this rank's rounded pieces of
/// the partitioned parameters — the values every gather sends — live in a swap file under offload_param.nvme_path
/// instead of a host array. A gather reads the piece it sends (<see cref="Piece"/>) into one host buffer the size of the
/// largest piece; the optimizer step writes the rounded pieces back through the same buffer (<see cref="Write"/>). The
/// values are stored as fp32 (they are 16-bit values in mixed precision, so exact either way).
/// </summary>
public sealed class SwappedParameterPieces : IOwnedPieces, IDisposable
{
    private const string ConfigPath = "$.zero_optimization.offload_param.nvme_path";

    private readonly SwapFile _file;
    private readonly SlotSharding _sharding;
    private readonly float[] _buffer;

    private SwappedParameterPieces(SwapFile file, SlotSharding sharding)
    {
        _file = file;
        _sharding = sharding;
        _buffer = GC.AllocateUninitializedArray<float>(BufferElementsFor(sharding.LargestPieceLength, sharding.OwnedLength), pinned: true);
    }

    /// <summary>Pieces read from the swap so far (one per gathered slot: the traffic a step adds).</summary>
    public long PiecesRead { get; private set; }

    public long FileBytes => _file.Bytes;

    public long BufferBytes => _buffer.LongLength * sizeof(float);

    public string FilePath => _file.Path;

    /// <summary>The host buffer: the largest piece, at least one element.</summary>
    public static int BufferElementsFor(long largestPiece, long owned) => (int)Math.Max(1, Math.Min(largestPiece, Math.Max(owned, 1)));

    public static long FileBytesFor(long owned) => owned * sizeof(float);

    /// <summary>Creates the swap file holding <paramref name="rounded"/> (this rank's rounded pieces, laid out as <paramref name="sharding"/> owns them).</summary>
    public static SwappedParameterPieces Create(OffloadConfig offload, SlotSharding sharding, ReadOnlySpan<float> rounded, int rank)
    {
        if (offload.Device != OffloadDevice.Nvme || offload.NvmePath is null)
            throw new ArgumentException("the parameter swap needs offload_param.device = \"nvme\" and an nvme_path", nameof(offload));
        if (rounded.Length != sharding.OwnedLength)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{rounded.Length} rounded elements for a partition of {sharding.OwnedLength}"), nameof(rounded));
        var file = SwapFile.Create(offload.NvmePath, string.Create(CultureInfo.InvariantCulture, $"shardwise-parameters-rank{rank}"), FileBytesFor(rounded.Length), ConfigPath);
        var pieces = new SwappedParameterPieces(file, sharding);
        try
        {
            pieces.Write(0, rounded);
        }
        catch
        {
            pieces.Dispose();
            throw;
        }
        return pieces;
    }

    public ReadOnlySpan<float> Piece(int slot)
    {
        int length = (int)_sharding.OwnedPieceLength(slot);
        var piece = _buffer.AsSpan(0, length);
        _file.Read(MemoryMarshal.AsBytes(piece), _sharding.OwnedOffset(slot) * sizeof(float));
        PiecesRead++;
        return piece;
    }

    /// <summary>Writes <paramref name="values"/> at element <paramref name="start"/> of the partition.</summary>
    public void Write(long start, ReadOnlySpan<float> values) => _file.Write(MemoryMarshal.AsBytes(values), start * sizeof(float));

    /// <summary>
    /// Rounds <paramref name="masters"/> (elements from <paramref name="start"/>) to the storage type and writes them,
    /// one buffer at a time.
    /// </summary>
    public void WriteRounded(long start, ReadOnlySpan<float> masters, Shardwise.Precision.StorageType storage)
    {
        for (int at = 0; at < masters.Length; at += _buffer.Length)
        {
            var chunk = masters.Slice(at, Math.Min(_buffer.Length, masters.Length - at));
            var rounded = _buffer.AsSpan(0, chunk.Length);
            Shardwise.Precision.StorageRounding.Round(chunk, rounded, storage);
            Write(start + at, rounded);
        }
    }

    /// <summary>Reads the whole partition (tests and diagnostics).</summary>
    public float[] ReadAll()
    {
        var all = new float[_sharding.OwnedLength];
        _file.Read(MemoryMarshal.AsBytes(all.AsSpan()), 0);
        return all;
    }

    public void Dispose() => _file.Dispose();
}
