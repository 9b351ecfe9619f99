using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Tests.Shared;

/// <summary>
/// An independent reader of TensorBoard event files for tests (also compiled into the trainer tests): TFRecord framing
/// checked with a bitwise CRC-32C, Event / Summary protocol buffers decoded field by field.
/// </summary>
internal static class TensorBoardFiles
{
    /// <summary>CRC-32C bit by bit (reflected polynomial 0x82F63B78).</summary>
    public static uint BitwiseCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    private static uint Mask(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);

    /// <summary>(field number, wire type, value) of a protocol buffer: varints as ulong, fixed as raw bytes, length-delimited as bytes.</summary>
    private static List<(int Field, int Wire, object Value)> Decode(ReadOnlySpan<byte> data)
    {
        var fields = new List<(int, int, object)>();
        int at = 0;
        ulong Varint(ReadOnlySpan<byte> d)
        {
            ulong value = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = d[at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
        }
        while (at < data.Length)
        {
            ulong key = Varint(data);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: fields.Add((field, wire, Varint(data))); break;
                case 1: fields.Add((field, wire, data.Slice(at, 8).ToArray())); at += 8; break;
                case 5: fields.Add((field, wire, data.Slice(at, 4).ToArray())); at += 4; break;
                case 2:
                    int length = (int)Varint(data);
                    fields.Add((field, wire, data.Slice(at, length).ToArray()));
                    at += length;
                    break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
        return fields;
    }

    /// <summary>Every record's payload, each framing CRC checked.</summary>
    public static List<byte[]> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var records = new List<byte[]>();
        for (int at = 0; at < bytes.Length;)
        {
            var lengthBytes = bytes.AsSpan(at, 8);
            Assert.AreEqual(Mask(BitwiseCrc32C(lengthBytes)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)), "length CRC");
            int length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes));
            var data = bytes.AsSpan(at + 12, length);
            Assert.AreEqual(Mask(BitwiseCrc32C(data)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + length)), "data CRC");
            records.Add(data.ToArray());
            at += 12 + length + 4;
        }
        return records;
    }

    /// <summary>The scalars of an event file: (tag, step, value), after checking the version record.</summary>
    public static List<(string Tag, long Step, float Value)> ReadScalars(string path)
    {
        var records = ReadRecords(path);
        var version = Decode(records[0]);
        Assert.AreEqual(1, version[0].Field);
        Assert.AreEqual("brain.Event:2", Encoding.UTF8.GetString((byte[])version.Single(f => f.Field == 3).Value));
        var scalars = new List<(string, long, float)>();
        foreach (var record in records.Skip(1))
        {
            var ev = Decode(record);
            Assert.IsTrue(BinaryPrimitives.ReadDoubleLittleEndian((byte[])ev.Single(f => f.Field == 1).Value) > 1.6e9, "wall_time in seconds since 1970");
            long step = (long)(ulong)ev.Single(f => f.Field == 2).Value;
            var summary = Decode((byte[])ev.Single(f => f.Field == 5).Value);
            var value = Decode((byte[])summary.Single(f => f.Field == 1).Value);
            string tag = Encoding.UTF8.GetString((byte[])value.Single(f => f.Field == 1).Value);
            var simple = value.Single(f => f.Field == 2);
            Assert.AreEqual(5, simple.Wire, "simple_value is a float");
            scalars.Add((tag, step, BinaryPrimitives.ReadSingleLittleEndian((byte[])simple.Value)));
        }
        return scalars;
    }

}
