using System;
using System.Globalization;
using System.Runtime.InteropServices;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Offload;

/// <summary>
/// ZeRO-Infinity's parameter offload to NVMe (offload_param.device = "nvme", ZeRO-3): this rank's rounded pieces of
/// the partitioned parameters — the values every gather sends — live in a swap file under offload_param.nvme_path
/// instead of a host array. A gather reads the piece it sends (<see cref="Piece"/>) into one host buffer the size of the
/// largest piece; the optimizer step writes the rounded pieces back through the same buffer (<see cref="Write"/>). The
/// file holds them at the storage type's size: 2 bytes in fp16/bf16 (the pieces are rounded to it, so nothing is lost),
/// 4 in fp32.
/// </summary>
public sealed class SwappedParameterPieces : IOwnedPieces, IDisposable
{
    private const string ConfigPath = "$.zero_optimization.offload_param.nvme_path";

    private readonly SwapFile _file;
    private readonly SlotSharding _sharding;
    private readonly StorageType _storage;
    private readonly int _elementBytes;
    private readonly float[] _buffer;   // the piece handed out, or the rounded values being written
    private readonly byte[] _stored;    // the same elements as the file holds them

    private SwappedParameterPieces(SwapFile file, SlotSharding sharding, StorageType storage)
    {
        _file = file;
        _sharding = sharding;
        _storage = storage;
        _elementBytes = ElementBytes(storage);
        int elements = BufferElementsFor(sharding.LargestPieceLength, sharding.OwnedLength);
        _buffer = GC.AllocateUninitializedArray<float>(elements, pinned: true);
        _stored = GC.AllocateUninitializedArray<byte>(elements * _elementBytes, pinned: true);
    }

    private static int ElementBytes(StorageType storage) => storage == StorageType.Float32 ? sizeof(float) : sizeof(ushort);

    /// <summary>Pieces read from the swap so far (one per gathered slot: the traffic a step adds).</summary>
    public long PiecesRead { get; private set; }

    public long FileBytes => _file.Bytes;

    public long BufferBytes => _buffer.LongLength * sizeof(float) + _stored.LongLength;

    public string FilePath => _file.Path;

    /// <summary>The host buffer: the largest piece, at least one element.</summary>
    public static int BufferElementsFor(long largestPiece, long owned) => (int)Math.Max(1, Math.Min(largestPiece, Math.Max(owned, 1)));

    public static long FileBytesFor(long owned, StorageType storage) => owned * ElementBytes(storage);

    /// <summary>Host bytes of the buffers for a partition of <paramref name="owned"/> elements whose largest piece is <paramref name="largestPiece"/>.</summary>
    public static long BufferBytesFor(long largestPiece, long owned, StorageType storage) =>
        (long)BufferElementsFor(largestPiece, owned) * (sizeof(float) + ElementBytes(storage));

    /// <summary>Creates the swap file holding <paramref name="rounded"/> (this rank's rounded pieces, laid out as <paramref name="sharding"/> owns them).</summary>
    public static SwappedParameterPieces Create(OffloadConfig offload, SlotSharding sharding, ReadOnlySpan<float> rounded, StorageType storage, int rank)
    {
        if (offload.Device != OffloadDevice.Nvme || offload.NvmePath is null)
            throw new ArgumentException("the parameter swap needs offload_param.device = \"nvme\" and an nvme_path", nameof(offload));
        if (rounded.Length != sharding.OwnedLength)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{rounded.Length} rounded elements for a partition of {sharding.OwnedLength}"), nameof(rounded));
        var file = SwapFile.Create(offload.NvmePath, string.Create(CultureInfo.InvariantCulture, $"shardwise-parameters-rank{rank}"), FileBytesFor(rounded.Length, storage), ConfigPath);
        var pieces = new SwappedParameterPieces(file, sharding, storage);
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
        Read(_sharding.OwnedOffset(slot), piece);
        PiecesRead++;
        return piece;
    }

    /// <summary>Writes <paramref name="values"/> (already rounded to the storage type) at element <paramref name="start"/> of the partition.</summary>
    public void Write(long start, ReadOnlySpan<float> values)
    {
        int capacity = _buffer.Length;
        for (int at = 0; at < values.Length; at += capacity)
        {
            var chunk = values.Slice(at, Math.Min(capacity, values.Length - at));
            var bytes = _stored.AsSpan(0, chunk.Length * _elementBytes);
            if (_elementBytes == sizeof(float)) MemoryMarshal.AsBytes(chunk).CopyTo(bytes);
            else StorageConversion.Narrow(chunk, MemoryMarshal.Cast<byte, ushort>(bytes), _storage);
            _file.Write(bytes, (start + at) * _elementBytes);
        }
    }

    /// <summary>
    /// Rounds <paramref name="masters"/> (elements from <paramref name="start"/>) to the storage type and writes them,
    /// one buffer at a time.
    /// </summary>
    public void WriteRounded(long start, ReadOnlySpan<float> masters, StorageType storage)
    {
        for (int at = 0; at < masters.Length; at += _buffer.Length)
        {
            var chunk = masters.Slice(at, Math.Min(_buffer.Length, masters.Length - at));
            var rounded = _buffer.AsSpan(0, chunk.Length);
            StorageRounding.Round(chunk, rounded, storage);
            Write(start + at, rounded);
        }
    }

    /// <summary>Reads the whole partition (tests and diagnostics).</summary>
    public float[] ReadAll()
    {
        var all = new float[_sharding.OwnedLength];
        for (int at = 0; at < all.Length; at += _buffer.Length)
            Read(at, all.AsSpan(at, Math.Min(_buffer.Length, all.Length - at)));
        return all;
    }

    /// <summary>Reads elements from <paramref name="start"/> into <paramref name="destination"/> (at most a buffer's worth).</summary>
    private void Read(long start, Span<float> destination)
    {
        var bytes = _stored.AsSpan(0, destination.Length * _elementBytes);
        _file.Read(bytes, start * _elementBytes);
        if (_elementBytes == sizeof(float)) MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
        else StorageConversion.Widen(MemoryMarshal.Cast<byte, ushort>(bytes), destination, _storage);
    }

    public void Dispose() => _file.Dispose();
}
