using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>
/// A ZeRO checkpoint's state: one <c>zero_partition.rank-R-of-N.safetensors</c> per writing rank, each holding that
/// rank's partition as <c>master</c>, <c>exp_avg</c>, <c>exp_avg_sq</c>. Which layout ranges a file holds is the pure
/// partition function (<see cref="PartitionSegments"/>) of its metadata, so a layout range is read from the files
/// that hold its pieces, whatever the reading run's rank count. Files are opened when first needed and a bounded
/// number stay open, since a rank of a large run may touch a few of thousands.
/// </summary>
internal sealed class PartitionStateFiles : CheckpointStateReader
{
    private const int MaxOpenFiles = 64;

    /// <summary>A range of the layout held by one writer: its file, and where the range starts in that file's partition.</summary>
    private readonly record struct Piece(long LayoutOffset, long Length, int Writer, long OwnedOffset);

    private readonly string[] _files;       // by writing rank
    private readonly Piece[] _pieces;       // sorted by layout offset
    private readonly Dictionary<int, SafeTensorsReader> _open = new();
    private readonly Queue<int> _openOrder = new();

    private PartitionStateFiles(ParameterLayout layout, long adamStep, string[] files, Piece[] pieces) : base(layout, adamStep)
    {
        _files = files;
        _pieces = pieces;
    }

    public static PartitionStateFiles OpenFiles(string checkpoint, ParameterLayout layout)
    {
        var found = Directory.GetFiles(checkpoint, "zero_partition.rank-*.safetensors");
        if (found.Length == 0)
            throw new InvalidDataException($"{checkpoint}: neither {TrainingCheckpoint.ModelFile} nor zero_partition.rank-*.safetensors files; not a Shardwise checkpoint");

        string[]? byRank = null;
        long adamStep = 0;
        var pieces = new List<Piece>();
        foreach (var file in found.Order(StringComparer.Ordinal))
        {
            using var reader = SafeTensorsReader.Open(file);
            int rank = checked((int)MetadataNumber(reader, "rank")), ranks = checked((int)MetadataNumber(reader, "ranks"));
            if (!Enum.TryParse<PartitionScheme>(reader.Metadata.GetValueOrDefault("scheme"), out var scheme))
                throw new InvalidDataException($"{file}: metadata 'scheme' is '{reader.Metadata.GetValueOrDefault("scheme")}', not Flat or Slots");
            byRank ??= new string[ranks];
            if (ranks != byRank.Length) throw new InvalidDataException($"{file}: written by {ranks} ranks, other partition files by {byRank.Length}");
            if (rank < 0 || rank >= ranks) throw new InvalidDataException($"{file}: rank {rank} of {ranks}");
            if (byRank[rank] is { } twin) throw new InvalidDataException($"{file}: rank {rank} was also written as {twin}");
            byRank[rank] = file;
            adamStep = MetadataNumber(reader, "adam_step");

            long owned = 0;
            foreach (var (layoutOffset, ownedOffset, length) in PartitionSegments.For(layout, ranks, scheme, rank))
            {
                pieces.Add(new Piece(layoutOffset, length, rank, ownedOffset));
                owned = Math.Max(owned, ownedOffset + length);
            }
            foreach (var name in new[] { "master", "exp_avg", "exp_avg_sq" })
            {
                if (!reader.Contains(name)) throw new InvalidDataException($"{file}: tensor '{name}' is missing");
                var info = reader.GetInfo(name);
                if (info.DType != SafeTensorDType.F32 || info.ElementCount != owned)
                    throw new InvalidDataException($"{file}: tensor '{name}' has {info.ElementCount} {info.DType.HeaderName()} elements; rank {rank} of {ranks} owns {owned} float32 elements of this model's layout (written by a different model?)");
            }
        }
        int missing = Array.IndexOf(byRank!, null);
        if (missing >= 0)
            throw new InvalidDataException($"{checkpoint}: {found.Length} partition files for a run of {byRank!.Length} ranks (rank {missing}'s is missing); the checkpoint is incomplete");
        return new PartitionStateFiles(layout, adamStep, byRank!, pieces.OrderBy(p => p.LayoutOffset).ToArray());
    }

    public override void Read(CheckpointStateTensor tensor, long layoutOffset, Span<float> into)
    {
        into.Clear();
        string name = tensor switch
        {
            CheckpointStateTensor.Master => "master",
            CheckpointStateTensor.ExpAvg => "exp_avg",
            _ => "exp_avg_sq",
        };
        long end = layoutOffset + into.Length;
        for (int i = FirstEndingAfter(layoutOffset, _pieces.Length, k => _pieces[k].LayoutOffset + _pieces[k].Length); i < _pieces.Length; i++)
        {
            var piece = _pieces[i];
            if (piece.LayoutOffset >= end) break;
            long from = Math.Max(layoutOffset, piece.LayoutOffset), to = Math.Min(end, piece.LayoutOffset + piece.Length);
            Reader(piece.Writer).ReadPart(name, piece.OwnedOffset + (from - piece.LayoutOffset), into.Slice((int)(from - layoutOffset), (int)(to - from)));
        }
    }

    protected override void Dispose(bool disposing)
    {
        foreach (var reader in _open.Values) reader.Dispose();
        _open.Clear();
    }

    private SafeTensorsReader Reader(int writer)
    {
        if (_open.TryGetValue(writer, out var reader)) return reader;
        if (_open.Count == MaxOpenFiles)
        {
            int oldest = _openOrder.Dequeue();
            _open[oldest].Dispose();
            _open.Remove(oldest);
        }
        reader = SafeTensorsReader.Open(_files[writer]);
        _open.Add(writer, reader);
        _openOrder.Enqueue(writer);
        return reader;
    }

    private static long MetadataNumber(SafeTensorsReader reader, string key) =>
        reader.Metadata.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value)
            ? value
            : throw new InvalidDataException($"{reader.FilePath}: metadata '{key}' is {(text is null ? "missing" : $"'{text}', not a number")}");
}
