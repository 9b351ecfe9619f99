using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shardwise.Checkpoints;

/// <summary>
/// Opens a safetensors file, validates its whole header against the file size on open, and reads tensors
/// into caller-provided spans with positional reads (thread-safe; no seek state, no full-file buffer).
/// </summary>
public sealed class SafeTensorsReader : IDisposable
{
    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly long _dataStart;

    private SafeTensorsReader(string path, SafeFileHandle file, SafeTensorsHeaderParser.Result header, long dataStart)
    {
        FilePath = path;
        _file = file;
        _dataStart = dataStart;
        Tensors = header.Tensors;
        Metadata = header.Metadata;
        _byName = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string FilePath { get; }

    /// <summary>Every tensor, in data (offset) order.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>The <c>__metadata__</c> map; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <exception cref="SafeTensorsFormatException">The file is truncated, or its header is malformed or inconsistent.</exception>
    public static SafeTensorsReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeTensorsWriter.RequireLittleEndian();
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var length = RandomAccess.GetLength(file);
            if (length < 8)
            {
                throw new SafeTensorsFormatException(path, null, $"file is {length} bytes, too short to hold the 8-byte header length");
            }

            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(file, prefix, 0, path, null);
            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > SafeTensorsHeader.MaxHeaderBytes)
            {
                throw new SafeTensorsFormatException(path, null, $"header length {headerLength} exceeds the {SafeTensorsHeader.MaxHeaderBytes}-byte limit (corrupt length prefix?)");
            }

            if ((long)headerLength > length - 8)
            {
                throw new SafeTensorsFormatException(path, null, $"header length {headerLength} exceeds the {length - 8} bytes after the length prefix (truncated?)");
            }

            var header = new byte[headerLength];
            ReadExactly(file, header, 8, path, null);
            var dataStart = 8 + (long)headerLength;
            var parsed = SafeTensorsHeaderParser.Parse(header, length - dataStart, path);
            return new SafeTensorsReader(path, file, parsed, dataStart);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafeTensorInfo GetInfo(string name) =>
        _byName.TryGetValue(name, out var info)
            ? info
            : throw new SafeTensorsFormatException(FilePath, name, "not found in the file");

    /// <summary>Raw little-endian bytes of any dtype; <paramref name="destination"/> must be exactly the tensor's size.</summary>
    public void Read(string name, Span<byte> destination) => ReadBytes(name, destination, null);

    public void Read(string name, Span<float> destination) => ReadBytes(name, MemoryMarshal.AsBytes(destination), SafeTensorDType.F32);

    public void Read(string name, Span<double> destination) => ReadBytes(name, MemoryMarshal.AsBytes(destination), SafeTensorDType.F64);

    public void Read(string name, Span<Half> destination) => ReadBytes(name, MemoryMarshal.AsBytes(destination), SafeTensorDType.F16);

    /// <summary>bfloat16 tensor as raw 16-bit patterns.</summary>
    public void ReadBFloat16(string name, Span<ushort> bits) => ReadBytes(name, MemoryMarshal.AsBytes(bits), SafeTensorDType.BF16);

    public void Read(string name, Span<int> destination) => ReadBytes(name, MemoryMarshal.AsBytes(destination), SafeTensorDType.I32);

    public void Read(string name, Span<long> destination) => ReadBytes(name, MemoryMarshal.AsBytes(destination), SafeTensorDType.I64);

    /// <summary>
    /// Reads float32 elements [<paramref name="elementOffset"/>, + destination.Length) of a tensor: the read side of
    /// <see cref="SafeTensorsWriter.WritePart"/>, so a rank can load its own slice of a state too large to hold whole.
    /// </summary>
    public void ReadPart(string name, long elementOffset, Span<float> destination)
    {
        var tensor = GetInfo(name);
        if (tensor.DType != SafeTensorDType.F32)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"is {tensor.DType.HeaderName()}, cannot be read as {SafeTensorDType.F32.HeaderName()}");
        }

        if (elementOffset < 0 || elementOffset + destination.Length > tensor.ElementCount)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"holds {tensor.ElementCount} elements; elements [{elementOffset}, {elementOffset + destination.Length}) are not all inside it");
        }

        ReadExactly(_file, MemoryMarshal.AsBytes(destination), _dataStart + tensor.DataBegin + elementOffset * sizeof(float), FilePath, name);
    }

    /// <summary>Convenience for small tensors (state scalars, tests): the tensor's raw bytes in a new array.</summary>
    public byte[] ReadAllBytes(string name)
    {
        var bytes = new byte[GetInfo(name).ByteLength];
        Read(name, bytes);
        return bytes;
    }

    public void Dispose() => _file.Dispose();

    private void ReadBytes(string name, Span<byte> destination, SafeTensorDType? typedAs)
    {
        var tensor = GetInfo(name);
        if (typedAs is { } dtype && dtype != tensor.DType)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"is {tensor.DType.HeaderName()}, cannot be read as {dtype.HeaderName()}");
        }

        if (destination.Length != tensor.ByteLength)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"holds {tensor.ByteLength} bytes ({tensor.ElementCount} x {tensor.DType.HeaderName()}) but the destination has {destination.Length}");
        }

        ReadExactly(_file, destination, _dataStart + tensor.DataBegin, FilePath, name);
    }

    /// <summary>RandomAccess.Read may return short counts; loop, and treat end-of-file as truncation.</summary>
    private static void ReadExactly(SafeFileHandle file, Span<byte> destination, long offset, string path, string? tensor)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(file, destination, offset);
            if (read == 0)
            {
                throw new SafeTensorsFormatException(path, tensor, $"file ended at byte {offset} (truncated after it was opened?)");
            }

            destination = destination[read..];
            offset += read;
        }
    }
}
