using System;
using System.Runtime.InteropServices;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>
/// A CUDA context (CUcontext): the device's primary context (retained; shared with cuBLAS, cuBLASLt and NCCL, which
/// use the CUDA runtime) or a context of its own (cuCtxCreate). Driver operations act on the context current on the
/// calling thread: call <see cref="MakeCurrent"/> on every thread that uses it. Resources created from it keep it
/// alive and make it current while they release themselves, so disposal order and the finalizer thread are safe.
/// </summary>
public sealed unsafe class CudaContext : SafeHandle
{
    private int device;

    /// <summary>For marshalling; use <see cref="Primary"/> or <see cref="Create"/>.</summary>
    public CudaContext() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>True for the device's primary context (released with cuDevicePrimaryCtxRelease).</summary>
    public bool IsPrimary { get; private set; }

    /// <summary>The ordinal of the context's device.</summary>
    public int DeviceOrdinal { get; private set; }

    /// <summary>Retains device <paramref name="ordinal"/>'s primary context and makes it current on this thread.</summary>
    public static CudaContext Primary(int ordinal = 0)
    {
        CudaRuntime.EnsureInitialized();
        int dev;
        CudaCheck.Driver(CuDriver.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
        nint context;
        CudaCheck.Driver(CuDriver.cuDevicePrimaryCtxRetain(&context, dev), "cuDevicePrimaryCtxRetain");
        var result = new CudaContext { device = dev, IsPrimary = true, DeviceOrdinal = ordinal };
        result.SetHandle(context);
        result.MakeCurrent();
        return result;
    }

    /// <summary>Creates a context of its own on device <paramref name="ordinal"/> (cuCtxCreate; it becomes current).</summary>
    public static CudaContext Create(int ordinal = 0, uint flags = 0)
    {
        CudaRuntime.EnsureInitialized();
        int dev;
        CudaCheck.Driver(CuDriver.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
        nint context;
        CudaCheck.Driver(CuDriver.cuCtxCreate(&context, flags, dev), "cuCtxCreate_v2");
        var result = new CudaContext { device = dev, IsPrimary = false, DeviceOrdinal = ordinal };
        result.SetHandle(context);
        return result;
    }

    /// <summary>The context's device.</summary>
    public CudaDevice Device => CudaDevice.Get(DeviceOrdinal);

    /// <summary>Makes this context current on the calling thread (cuCtxSetCurrent).</summary>
    public void MakeCurrent()
    {
        CudaCheck.Driver(CuDriver.cuCtxSetCurrent(Handle), "cuCtxSetCurrent");
        GC.KeepAlive(this);
    }

    /// <summary>Waits for all work in the context (cuCtxSynchronize; the context must be current).</summary>
    public void Synchronize() => CudaCheck.Driver(CuDriver.cuCtxSynchronize(), "cuCtxSynchronize");

    /// <summary>Pushes this context on the calling thread until the returned scope is disposed.</summary>
    public Scope Push()
    {
        CudaCheck.Driver(CuDriver.cuCtxPushCurrent(Handle), "cuCtxPushCurrent_v2");
        return new Scope(this);
    }

    internal nint Handle => IsClosed ? throw new ObjectDisposedException(nameof(CudaContext)) : handle;

    protected override bool ReleaseHandle() =>
        (IsPrimary ? CuDriver.cuDevicePrimaryCtxRelease(device) : CuDriver.cuCtxDestroy(handle)) == 0;

    /// <summary>Pops the context pushed by <see cref="Push"/>.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly CudaContext? context;

        internal Scope(CudaContext context) => this.context = context;

        public void Dispose()
        {
            if (context is null) return;
            nint popped;
            CudaCheck.Driver(CuDriver.cuCtxPopCurrent(&popped), "cuCtxPopCurrent_v2");
            GC.KeepAlive(context);
        }
    }
}

/// <summary>
/// A driver resource that belongs to a <see cref="CudaContext"/>: it holds a reference on the context, and releases
/// itself with that context pushed, so it can be disposed (or finalised) on any thread.
/// </summary>
public abstract unsafe class CudaContextBoundHandle : SafeHandle
{
    protected CudaContextBoundHandle() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>The owning context.</summary>
    public CudaContext? Context { get; private set; }

    /// <summary>Takes ownership of <paramref name="value"/>, created in <paramref name="context"/>.</summary>
    internal void Bind(CudaContext context, nint value)
    {
        bool added = false;
        context.DangerousAddRef(ref added);
        Context = context;
        SetHandle(value);
    }

    internal nint Value => IsClosed ? throw new ObjectDisposedException(GetType().Name) : handle;

    protected sealed override bool ReleaseHandle()
    {
        CudaContext? owner = Context;
        bool pushed = owner is not null && CuDriver.cuCtxPushCurrent(owner.DangerousGetHandle()) == 0;
        try
        {
            return Free(handle) == 0;
        }
        finally
        {
            if (pushed)
            {
                nint popped;
                CuDriver.cuCtxPopCurrent(&popped);
            }

            owner?.DangerousRelease();
        }
    }

    /// <summary>Frees the native resource; returns the CUresult.</summary>
    protected abstract int Free(nint value);
}
