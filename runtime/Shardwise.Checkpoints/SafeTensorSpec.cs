using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Checkpoints;

/// <summary>
/// What a tensor will be before its bytes exist: name, dtype and shape. The writer needs every spec up front
/// because the JSON header (which holds all offsets) precedes the data in the file.
/// </summary>
public sealed class SafeTensorSpec
{
    public SafeTensorSpec(string name, SafeTensorDType dtype, params long[] shape)
        : this(name, dtype, (IReadOnlyList<long>)shape)
    {
    }

    public SafeTensorSpec(string name, SafeTensorDType dtype, IReadOnlyList<long> shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == SafeTensorsHeader.MetadataKey)
        {
            throw new ArgumentException($"'{SafeTensorsHeader.MetadataKey}' is reserved for the header's metadata map", nameof(name));
        }

        foreach (var dimension in shape)
        {
            if (dimension < 0)
            {
                throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] has a negative dimension", nameof(shape));
            }
        }

        if (!SafeTensorsHeader.IsWellFormedUtf16(name))
        {
            throw new ArgumentException($"tensor name '{name}' contains an unpaired surrogate and cannot be written as UTF-8", nameof(name));
        }

        Name = name;
        DType = dtype;
        Shape = shape.ToArray();
        ByteLength = SafeTensorsHeader.ByteLength(dtype, Shape)
            ?? throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] overflows a 64-bit byte count", nameof(shape));
    }

    public string Name { get; }

    public SafeTensorDType DType { get; }

    /// <summary>Row-major (C order) dimensions; an empty shape is a scalar with one element.</summary>
    public IReadOnlyList<long> Shape { get; }

    public long ElementCount => ByteLength / DType.ElementSize();

    public long ByteLength { get; }
}
