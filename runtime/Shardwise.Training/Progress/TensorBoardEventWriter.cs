using System;
using System.Buffers.Binary;
using System.Globalization;
using System.IO;
using System.Numerics;
using System.Text;

namespace Shardwise.Training.Progress;

/// <summary>
/// A TensorBoard event file (<c>events.out.tfevents.SECONDS.HOST</c>) of scalar summaries, written without TensorFlow:
/// TFRecord framing (a little-endian u64 length, its masked CRC-32C, the bytes, their masked CRC-32C) around
/// <c>tensorflow.Event</c> protocol buffers, encoded by hand since only four fields are needed: wall_time (1, double),
/// step (2, int64), file_version (3, string) in the first record, and summary (5) holding one Summary.Value with
/// tag (1, string) and simple_value (2, float). Each write is flushed, so a killed run keeps every point it wrote.
/// </summary>
public sealed class TensorBoardEventWriter : IDisposable
{
    private readonly FileStream _file;

    private TensorBoardEventWriter(string path)
    {
        Path = path;
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
    }

    public string Path { get; }

    /// <summary>Creates a new event file in <paramref name="directory"/> (made if missing) and writes its version record.</summary>
    public static TensorBoardEventWriter Create(string directory, DateTimeOffset now)
    {
        Directory.CreateDirectory(directory);
        string name = string.Create(CultureInfo.InvariantCulture, $"events.out.tfevents.{now.ToUnixTimeSeconds()}.{Environment.MachineName}");
        // Two runs starting in the same second on one host: TensorBoard reads every file in the directory, so number them.
        string path = System.IO.Path.Combine(directory, name);
        for (int i = 1; File.Exists(path); i++) path = System.IO.Path.Combine(directory, name + "." + i.ToString(CultureInfo.InvariantCulture));
        var writer = new TensorBoardEventWriter(path);
        var version = new ProtoWriter();
        version.Double(1, now.ToUnixTimeMilliseconds() / 1000.0);
        version.String(3, "brain.Event:2");
        writer.WriteRecord(version.ToArray());
        return writer;
    }

    /// <summary>One scalar point: <paramref name="tag"/> at <paramref name="step"/> (the x axis).</summary>
    public void WriteScalar(string tag, long step, float value, DateTimeOffset wallTime)
    {
        var summaryValue = new ProtoWriter();
        summaryValue.String(1, tag);
        summaryValue.Float(2, value);
        var summary = new ProtoWriter();
        summary.Message(1, summaryValue.ToArray());
        var ev = new ProtoWriter();
        ev.Double(1, wallTime.ToUnixTimeMilliseconds() / 1000.0);
        ev.Int64(2, step);
        ev.Message(5, summary.ToArray());
        WriteRecord(ev.ToArray());
    }

    public void Dispose() => _file.Dispose();

    private void WriteRecord(byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        _file.Write(header);
        _file.Write(data);
        _file.Write(footer);
        _file.Flush();
    }

    /// <summary>CRC-32C (Castagnoli), as TFRecord uses it.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    /// <summary>TFRecord's masking, so that a CRC stored in data does not look like a CRC of it.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);
    }

    /// <summary>The few protocol-buffer encodings an Event needs.</summary>
    private sealed class ProtoWriter
    {
        private readonly MemoryStream _bytes = new();

        public void Double(int field, double value)
        {
            Tag(field, 1);
            Span<byte> raw = stackalloc byte[8];
            BinaryPrimitives.WriteDoubleLittleEndian(raw, value);
            _bytes.Write(raw);
        }

        public void Float(int field, float value)
        {
            Tag(field, 5);
            Span<byte> raw = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(raw, value);
            _bytes.Write(raw);
        }

        public void Int64(int field, long value)
        {
            Tag(field, 0);
            Varint(unchecked((ulong)value));
        }

        public void String(int field, string value) => Message(field, Encoding.UTF8.GetBytes(value));

        public void Message(int field, byte[] value)
        {
            Tag(field, 2);
            Varint((ulong)value.Length);
            _bytes.Write(value);
        }

        public byte[] ToArray() => _bytes.ToArray();

        private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                _bytes.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            _bytes.WriteByte((byte)value);
        }
    }
}
