using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Shardwise.Checkpoints;

/// <summary>
/// Streams a safetensors file to disk. All tensor specs are given up front so the header (which holds every
/// offset) is written first; each tensor's bytes then go straight from the caller's span to its place in the
/// file with positional writes, so nothing is buffered and tensors may be written in any order. The output is
/// byte-identical to Python's <c>safetensors.numpy.save_file</c> for the same tensors and metadata.
/// <code>
/// using var file = SafeTensorsWriter.Create(path, specs, metadata);
/// file.Write("layers.0.weight", weights);   // once per spec, any order
/// file.Complete();                          // checks all were written, fsyncs
/// </code>
/// Disposing without <see cref="Complete"/> deletes the partial file.
/// </summary>
public sealed class SafeTensorsWriter : IDisposable
{
    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, int> _index;
    private readonly bool[] _written;
    private readonly long[] _partBytes; // what WritePart wrote of each tensor so far
    private readonly long _dataStart;
    private bool _completed;
    private bool _disposed;

    private SafeTensorsWriter(string path, SafeFileHandle file, SafeTensorInfo[] layout, long dataStart)
    {
        FilePath = path;
        _file = file;
        Layout = layout;
        _dataStart = dataStart;
        _written = new bool[layout.Length];
        _partBytes = new long[layout.Length];
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < layout.Length; i++)
        {
            _index.Add(layout[i].Name, i);
        }
    }

    public string FilePath { get; }

    internal bool IsCompleted => _completed;

    /// <summary>Where each tensor lands, in file order (dtype descending, then name, like the reference writer).</summary>
    public IReadOnlyList<SafeTensorInfo> Layout { get; }

    /// <summary>Creates (or truncates) <paramref name="path"/> and writes the header.</summary>
    /// <param name="metadata">Free-form string pairs stored under <c>__metadata__</c>; null or empty writes none.</param>
    public static SafeTensorsWriter Create(string path, IEnumerable<SafeTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        RequireLittleEndian();
        var specs = tensors.ToArray();
        var duplicate = specs.GroupBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"{path}: tensor '{duplicate.Key}' is declared twice", nameof(tensors));
        }

        if (metadata is not null)
        {
            foreach (var (key, value) in metadata)
            {
                if (value is null || !SafeTensorsHeader.IsWellFormedUtf16(key) || !SafeTensorsHeader.IsWellFormedUtf16(value))
                {
                    throw new ArgumentException($"{path}: metadata entry '{key}' is null or not valid UTF-16", nameof(metadata));
                }
            }
        }

        var layout = SafeTensorsHeader.PlanLayout(specs);
        var header = SafeTensorsHeader.Serialize(layout, metadata);
        if (header.Length > SafeTensorsHeader.MaxHeaderBytes)
        {
            throw new ArgumentException($"{path}: header would be {header.Length} bytes; readers refuse more than {SafeTensorsHeader.MaxHeaderBytes}", nameof(tensors));
        }

        var dataStart = 8L + header.Length;
        var total = dataStart + (layout.Length == 0 ? 0 : layout[^1].DataEnd);

        // Preallocating reserves the space now, so a full disk fails here rather than half way through.
        var file = File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.None, preallocationSize: total);
        try
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            RandomAccess.Write(file, prefix, 0);
            RandomAccess.Write(file, header, 8);
            // Make the file its final length even if the last tensor is empty.
            RandomAccess.SetLength(file, total);
            return new SafeTensorsWriter(path, file, layout, dataStart);
        }
        catch
        {
            file.Dispose();
            File.Delete(path);
            throw;
        }
    }

    public void Write(string name, ReadOnlySpan<byte> data) => WriteBytes(name, data, null);

    public void Write(string name, ReadOnlySpan<float> data) => WriteBytes(name, MemoryMarshal.AsBytes(data), SafeTensorDType.F32);

    public void Write(string name, ReadOnlySpan<double> data) => WriteBytes(name, MemoryMarshal.AsBytes(data), SafeTensorDType.F64);

    public void Write(string name, ReadOnlySpan<Half> data) => WriteBytes(name, MemoryMarshal.AsBytes(data), SafeTensorDType.F16);

    /// <summary>bfloat16 values as their raw 16-bit patterns (the upper half of the float32 bits).</summary>
    public void WriteBFloat16(string name, ReadOnlySpan<ushort> bits) => WriteBytes(name, MemoryMarshal.AsBytes(bits), SafeTensorDType.BF16);

    public void Write(string name, ReadOnlySpan<int> data) => WriteBytes(name, MemoryMarshal.AsBytes(data), SafeTensorDType.I32);

    public void Write(string name, ReadOnlySpan<long> data) => WriteBytes(name, MemoryMarshal.AsBytes(data), SafeTensorDType.I64);

    /// <summary>
    /// Writes <paramref name="data"/> into float32 tensor <paramref name="name"/> from element
    /// <paramref name="elementOffset"/> on, so that a tensor too large to hold in memory can be written in pieces. The
    /// pieces of one tensor must not overlap; it counts as written once they add up to its size.
    /// </summary>
    public void WritePart(string name, long elementOffset, ReadOnlySpan<float> data)
    {
        ObjectDisposedException.ThrowIf(_disposed || _completed, this);
        if (!_index.TryGetValue(name, out var i))
        {
            throw new SafeTensorsFormatException(FilePath, name, "was not declared when the writer was created");
        }

        var tensor = Layout[i];
        if (tensor.DType != SafeTensorDType.F32)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"declared as {tensor.DType.HeaderName()} but written as {SafeTensorDType.F32.HeaderName()}");
        }

        long begin = elementOffset * sizeof(float), bytes = (long)data.Length * sizeof(float);
        if (elementOffset < 0 || begin + bytes > tensor.ByteLength || _written[i] || _partBytes[i] + bytes > tensor.ByteLength)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"a piece of {data.Length} elements at {elementOffset} does not fit what is left of its {tensor.ByteLength / sizeof(float)} elements");
        }

        RandomAccess.Write(_file, MemoryMarshal.AsBytes(data), _dataStart + tensor.DataBegin + begin);
        _partBytes[i] += bytes;
        _written[i] = _partBytes[i] == tensor.ByteLength;
    }

    /// <summary>Checks every declared tensor was written, then fsyncs and closes the file.</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            return;
        }

        var missing = Layout.Where((_, i) => !_written[i]).Select(t => t.Name).ToArray();
        if (missing.Length > 0)
        {
            throw new InvalidOperationException($"{FilePath}: tensors never written: {string.Join(", ", missing.Select(n => $"'{n}'"))}");
        }

        RandomAccess.FlushToDisk(_file);
        _file.Dispose();
        _completed = true;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _file.Dispose();
        if (!_completed)
        {
            // A file with a valid header but holes where tensors should be must never be mistaken for data.
            File.Delete(FilePath);
        }
    }

    /// <summary>Test seam for a simulated crash: close the handle but leave the partial file, as a dead process would.</summary>
    internal void ReleaseHandleOnly()
    {
        _disposed = true;
        _file.Dispose();
    }

    /// <param name="typedAs">The dtype implied by a typed overload, or null for raw bytes (any dtype).</param>
    private void WriteBytes(string name, ReadOnlySpan<byte> data, SafeTensorDType? typedAs)
    {
        ObjectDisposedException.ThrowIf(_disposed || _completed, this);
        if (!_index.TryGetValue(name, out var i))
        {
            throw new SafeTensorsFormatException(FilePath, name, "was not declared when the writer was created");
        }

        var tensor = Layout[i];
        if (typedAs is { } dtype && dtype != tensor.DType)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"declared as {tensor.DType.HeaderName()} but written as {dtype.HeaderName()}");
        }

        if (data.Length != tensor.ByteLength)
        {
            throw new SafeTensorsFormatException(FilePath, name, $"{tensor.DType.HeaderName()} x shape [{string.Join(", ", tensor.Shape)}] needs {tensor.ByteLength} bytes but {data.Length} were given");
        }

        if (_written[i] || _partBytes[i] > 0)
        {
            throw new SafeTensorsFormatException(FilePath, name, "written twice");
        }

        RandomAccess.Write(_file, data, _dataStart + tensor.DataBegin);
        _written[i] = true;
    }

    internal static void RequireLittleEndian()
    {
        // safetensors data is little-endian and we copy spans verbatim; a big-endian host would need byte swaps.
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors I/O here assumes a little-endian host");
        }
    }
}
