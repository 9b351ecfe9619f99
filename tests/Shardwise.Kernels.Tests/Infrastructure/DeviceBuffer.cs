using System;
using System.Runtime.InteropServices;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>
/// Unmanaged memory standing in for a device allocation: elements of a storage type (fp32, fp16 or bf16 bits), or
/// 32-bit ints. Converted from and to float through the runtime's Precision conversions (round to nearest even).
/// </summary>
public sealed unsafe class DeviceBuffer : IDisposable
{
    private DeviceBuffer(long count, int elementBytes, StorageType storage)
    {
        Count = count;
        ElementBytes = elementBytes;
        Storage = storage;
        // At least one byte, so that empty buffers still have a distinct non-null address.
        Pointer = (nint)NativeMemory.AllocZeroed((nuint)Math.Max(1, count * elementBytes));
    }

    public nint Pointer { get; private set; }

    public long Count { get; }

    public int ElementBytes { get; }

    public StorageType Storage { get; }

    public static DeviceBuffer Zeroed(long count, StorageType storage) => new(count, storage.BytesPerElement(), storage);

    public static DeviceBuffer From(ReadOnlySpan<float> values, StorageType storage)
    {
        DeviceBuffer buffer = Zeroed(values.Length, storage);
        buffer.Write(values);
        return buffer;
    }

    /// <summary>32-bit ints (ids, targets, flags); their Storage is irrelevant and reads as Float32.</summary>
    public static DeviceBuffer FromInts(ReadOnlySpan<int> values)
    {
        var buffer = new DeviceBuffer(values.Length, sizeof(int), StorageType.Float32);
        values.CopyTo(new Span<int>((void*)buffer.Pointer, values.Length));
        return buffer;
    }

    /// <summary>Bytes (masks, layouts); their Storage is irrelevant and reads as Float32.</summary>
    public static DeviceBuffer FromBytes(ReadOnlySpan<byte> values)
    {
        var buffer = new DeviceBuffer(values.Length, sizeof(byte), StorageType.Float32);
        values.CopyTo(new Span<byte>((void*)buffer.Pointer, values.Length));
        return buffer;
    }

    public static DeviceBuffer ZeroedInts(long count) => new(count, sizeof(int), StorageType.Float32);

    public void Write(ReadOnlySpan<float> values)
    {
        if (values.Length != Count) throw new ArgumentException($"{values.Length} values for a buffer of {Count}");
        switch (Storage)
        {
            case StorageType.Float32:
                values.CopyTo(new Span<float>((void*)Pointer, values.Length));
                break;
            case StorageType.Float16:
                Float16Conversion.ToHalf(values, new Span<Half>((void*)Pointer, values.Length));
                break;
            default:
                BFloat16Conversion.ToBFloat16(values, new Span<ushort>((void*)Pointer, values.Length));
                break;
        }
    }

    public float[] ToFloats()
    {
        var values = new float[Count];
        switch (Storage)
        {
            case StorageType.Float32:
                new ReadOnlySpan<float>((void*)Pointer, values.Length).CopyTo(values);
                break;
            case StorageType.Float16:
                Float16Conversion.ToSingle(new ReadOnlySpan<Half>((void*)Pointer, values.Length), values);
                break;
            default:
                BFloat16Conversion.ToSingle(new ReadOnlySpan<ushort>((void*)Pointer, values.Length), values);
                break;
        }

        return values;
    }

    public int[] ToInts() => new ReadOnlySpan<int>((void*)Pointer, (int)Count).ToArray();

    public ushort[] ToBits() => new ReadOnlySpan<ushort>((void*)Pointer, (int)Count).ToArray();

    public void Dispose()
    {
        if (Pointer == 0) return;
        NativeMemory.Free((void*)Pointer);
        Pointer = 0;
    }
}
