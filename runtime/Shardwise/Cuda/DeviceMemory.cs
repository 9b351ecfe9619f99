using System;
using System.Runtime.InteropServices;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>
/// Device memory (cuMemAlloc / cuMemFree). Copies are bounds-checked in bytes; the owning context must be current on
/// the calling thread for copies (see <see cref="CudaContext.MakeCurrent"/>).
/// </summary>
public sealed unsafe class DeviceMemory : CudaContextBoundHandle
{
    /// <summary>For marshalling; use <see cref="Allocate"/>.</summary>
    public DeviceMemory()
    {
    }

    /// <summary>The size in bytes.</summary>
    public long Bytes { get; private set; }

    /// <summary>The device address (CUdeviceptr), for kernel arguments and library calls.</summary>
    public ulong Pointer => (ulong)Value;

    /// <summary>Where host ↔ device copies of this memory are counted (set by the owning backend), or null.</summary>
    internal HostDeviceTrafficCounter? Traffic { get; set; }

    /// <summary>Allocates <paramref name="bytes"/> (at least 1) in <paramref name="context"/>; contents are undefined.</summary>
    public static DeviceMemory Allocate(CudaContext context, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        using CudaContext.Scope scope = context.Push();
        ulong pointer;
        CudaCheck.Driver(CuDriver.cuMemAlloc(&pointer, (nuint)bytes), "cuMemAlloc_v2");
        var memory = new DeviceMemory { Bytes = bytes };
        memory.Bind(context, (nint)pointer);
        return memory;
    }

    /// <summary>Allocates room for <paramref name="count"/> elements of <typeparamref name="T"/>.</summary>
    public static DeviceMemory Allocate<T>(CudaContext context, long count) where T : unmanaged =>
        Allocate(context, count * sizeof(T));

    /// <summary>Sets every byte to zero (cuMemsetD8).</summary>
    public void Zero()
    {
        CudaCheck.Driver(CuDriver.cuMemsetD8(Pointer, 0, (nuint)Bytes), "cuMemsetD8_v2");
        GC.KeepAlive(this);
    }

    /// <summary>Sets <paramref name="bytes"/> bytes from <paramref name="byteOffset"/> to zero (cuMemsetD8).</summary>
    public void Zero(long byteOffset, long bytes)
    {
        CheckRange(byteOffset, bytes);
        if (bytes == 0) return;
        CudaCheck.Driver(CuDriver.cuMemsetD8(Pointer + (ulong)byteOffset, 0, (nuint)bytes), "cuMemsetD8_v2");
        GC.KeepAlive(this);
    }

    /// <summary>Copies host values into the memory at <paramref name="byteOffset"/> (cuMemcpyHtoD, synchronous).</summary>
    public void Upload<T>(ReadOnlySpan<T> source, long byteOffset = 0) where T : unmanaged
    {
        long bytes = (long)source.Length * sizeof(T);
        CheckRange(byteOffset, bytes);
        fixed (T* p = source)
            CudaCheck.Driver(CuDriver.cuMemcpyHtoD(Pointer + (ulong)byteOffset, p, (nuint)bytes), "cuMemcpyHtoD_v2");
        Traffic?.CountUp(bytes);
        GC.KeepAlive(this);
    }

    /// <summary>Copies the memory at <paramref name="byteOffset"/> into host values (cuMemcpyDtoH, synchronous).</summary>
    public void Download<T>(Span<T> destination, long byteOffset = 0) where T : unmanaged
    {
        long bytes = (long)destination.Length * sizeof(T);
        CheckRange(byteOffset, bytes);
        fixed (T* p = destination)
            CudaCheck.Driver(CuDriver.cuMemcpyDtoH(p, Pointer + (ulong)byteOffset, (nuint)bytes), "cuMemcpyDtoH_v2");
        Traffic?.CountDown(bytes);
        GC.KeepAlive(this);
    }

    /// <summary>Copies <paramref name="bytes"/> from another allocation (cuMemcpyDtoD, or its Async form on a stream).</summary>
    public void CopyFrom(DeviceMemory source, long bytes, long sourceOffset = 0, long destinationOffset = 0,
        CudaStream? stream = null)
    {
        source.CheckRange(sourceOffset, bytes);
        CheckRange(destinationOffset, bytes);
        ulong to = Pointer + (ulong)destinationOffset, from = source.Pointer + (ulong)sourceOffset;
        if (stream is null) CudaCheck.Driver(CuDriver.cuMemcpyDtoD(to, from, (nuint)bytes), "cuMemcpyDtoD_v2");
        else CudaCheck.Driver(CuDriver.cuMemcpyDtoDAsync(to, from, (nuint)bytes, stream.Value), "cuMemcpyDtoDAsync_v2");
        GC.KeepAlive(this);
        GC.KeepAlive(source);
        GC.KeepAlive(stream);
    }

    /// <summary>Queues a copy from pinned host memory on <paramref name="stream"/> (cuMemcpyHtoDAsync; null: the legacy default stream).</summary>
    public void UploadAsync(PinnedHostMemory source, long bytes, CudaStream? stream, long sourceOffset = 0,
        long destinationOffset = 0)
    {
        source.CheckRange(sourceOffset, bytes);
        CheckRange(destinationOffset, bytes);
        CudaCheck.Driver(CuDriver.cuMemcpyHtoDAsync(Pointer + (ulong)destinationOffset,
            (byte*)source.Address + sourceOffset, (nuint)bytes, stream?.Value ?? 0), "cuMemcpyHtoDAsync_v2");
        Traffic?.CountUp(bytes);
        GC.KeepAlive(this);
        GC.KeepAlive(source);
        GC.KeepAlive(stream);
    }

    /// <summary>Queues a copy into pinned host memory on <paramref name="stream"/> (cuMemcpyDtoHAsync; null: the legacy default stream).</summary>
    public void DownloadAsync(PinnedHostMemory destination, long bytes, CudaStream? stream, long sourceOffset = 0,
        long destinationOffset = 0)
    {
        CheckRange(sourceOffset, bytes);
        destination.CheckRange(destinationOffset, bytes);
        CudaCheck.Driver(CuDriver.cuMemcpyDtoHAsync((byte*)destination.Address + destinationOffset,
            Pointer + (ulong)sourceOffset, (nuint)bytes, stream?.Value ?? 0), "cuMemcpyDtoHAsync_v2");
        Traffic?.CountDown(bytes);
        GC.KeepAlive(this);
        GC.KeepAlive(destination);
        GC.KeepAlive(stream);
    }

    internal void CheckRange(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes),
                $"bytes [{offset}, {offset + bytes}) are outside the {Bytes}-byte allocation");
        }
    }

    protected override int Free(nint value) => CuDriver.cuMemFree((ulong)value);
}

/// <summary>Page-locked host memory (cuMemHostAlloc / cuMemFreeHost), the source or target of asynchronous copies.</summary>
public sealed unsafe class PinnedHostMemory : CudaContextBoundHandle
{
    /// <summary>For marshalling; use <see cref="Allocate"/>.</summary>
    public PinnedHostMemory()
    {
    }

    /// <summary>The size in bytes.</summary>
    public long Bytes { get; private set; }

    /// <summary>The host address.</summary>
    public nint Address => Value;

    /// <summary>Allocates <paramref name="bytes"/> of portable pinned memory in <paramref name="context"/>.</summary>
    public static PinnedHostMemory Allocate(CudaContext context, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        using CudaContext.Scope scope = context.Push();
        void* pointer;
        CudaCheck.Driver(CuDriver.cuMemHostAlloc(&pointer, (nuint)bytes, CuDriver.MemHostAllocPortable),
            "cuMemHostAlloc");
        var memory = new PinnedHostMemory { Bytes = bytes };
        memory.Bind(context, (nint)pointer);
        return memory;
    }

    /// <summary>The memory as elements of <typeparamref name="T"/> (valid until disposal).</summary>
    public Span<T> AsSpan<T>() where T : unmanaged => new((void*)Address, checked((int)(Bytes / sizeof(T))));

    internal void CheckRange(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes),
                $"bytes [{offset}, {offset + bytes}) are outside the {Bytes}-byte pinned allocation");
        }
    }

    protected override int Free(nint value) => CuDriver.cuMemFreeHost((void*)value);
}

/// <summary>A CUDA stream (cuStreamCreate / cuStreamSynchronize / cuStreamDestroy).</summary>
public sealed unsafe class CudaStream : CudaContextBoundHandle
{
    /// <summary>For marshalling; use <see cref="Create"/>.</summary>
    public CudaStream()
    {
    }

    /// <summary>The CUstream, for cuBLAS, cuBLASLt and NCCL calls.</summary>
    public nint NativeHandle => Value;

    /// <summary>Creates a stream; non-blocking by default (no implicit synchronisation with the legacy default stream).</summary>
    public static CudaStream Create(CudaContext context, bool nonBlocking = true)
    {
        using CudaContext.Scope scope = context.Push();
        nint stream;
        CudaCheck.Driver(CuDriver.cuStreamCreate(&stream, nonBlocking ? CuDriver.StreamNonBlocking : 0),
            "cuStreamCreate");
        var result = new CudaStream();
        result.Bind(context, stream);
        return result;
    }

    /// <summary>Waits until all work queued on the stream is done.</summary>
    public void Synchronize()
    {
        CudaCheck.Driver(CuDriver.cuStreamSynchronize(Value), "cuStreamSynchronize");
        GC.KeepAlive(this);
    }

    protected override int Free(nint value) => CuDriver.cuStreamDestroy(value);
}

/// <summary>A CUDA event, for ordering and timing (cuEventCreate / Record / Synchronize / ElapsedTime / Destroy).</summary>
public sealed unsafe class CudaEvent : CudaContextBoundHandle
{
    /// <summary>For marshalling; use <see cref="Create"/>.</summary>
    public CudaEvent()
    {
    }

    /// <summary>Creates an event; with <paramref name="timing"/> false it cannot be used with <see cref="ElapsedMilliseconds"/>.</summary>
    public static CudaEvent Create(CudaContext context, bool timing = true)
    {
        using CudaContext.Scope scope = context.Push();
        nint @event;
        CudaCheck.Driver(CuDriver.cuEventCreate(&@event, timing ? 0 : CuDriver.EventDisableTiming), "cuEventCreate");
        var result = new CudaEvent();
        result.Bind(context, @event);
        return result;
    }

    /// <summary>Records the event on <paramref name="stream"/> (the legacy default stream when null).</summary>
    public void Record(CudaStream? stream = null)
    {
        CudaCheck.Driver(CuDriver.cuEventRecord(Value, stream?.Value ?? 0), "cuEventRecord");
        GC.KeepAlive(this);
        GC.KeepAlive(stream);
    }

    /// <summary>Waits until the work before the event's record is done.</summary>
    public void Synchronize()
    {
        CudaCheck.Driver(CuDriver.cuEventSynchronize(Value), "cuEventSynchronize");
        GC.KeepAlive(this);
    }

    /// <summary>Whether the work before the event's record is done (cuEventQuery), without waiting.</summary>
    public bool IsComplete()
    {
        int status = CuDriver.cuEventQuery(Value);
        GC.KeepAlive(this);
        if (status == CuDriver.ErrorNotReady) return false;
        CudaCheck.Driver(status, "cuEventQuery");
        return true;
    }

    /// <summary>
    /// Work queued on <paramref name="stream"/> (the legacy default stream when null) after this call waits, on the
    /// device, for the work before the event's last record (cuStreamWaitEvent); the host does not wait.
    /// </summary>
    public void MakeStreamWait(CudaStream? stream)
    {
        CudaCheck.Driver(CuDriver.cuStreamWaitEvent(stream?.Value ?? 0, Value, 0), "cuStreamWaitEvent");
        GC.KeepAlive(this);
        GC.KeepAlive(stream);
    }

    /// <summary>Milliseconds between two recorded, completed events (cuEventElapsedTime).</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        float milliseconds;
        CudaCheck.Driver(CuDriver.cuEventElapsedTime(&milliseconds, start.Value, end.Value), "cuEventElapsedTime");
        GC.KeepAlive(start);
        GC.KeepAlive(end);
        return milliseconds;
    }

    protected override int Free(nint value) => CuDriver.cuEventDestroy(value);
}
