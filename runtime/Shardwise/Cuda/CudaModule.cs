using System;
using System.Text;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>Launch dimensions, as CUDA's dim3.</summary>
public readonly record struct CudaDim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator CudaDim3(int x) => new(checked((uint)x));
}

/// <summary>
/// One kernel argument as cuLaunchKernel takes it: its bytes (little-endian, zero-extended to 8) and its size. Every
/// kernels-cu entry point takes pointers, int, long long and float, which all convert implicitly.
/// </summary>
public readonly record struct KernelArgument(ulong Bits, uint Size)
{
    /// <summary>A null pointer.</summary>
    public static readonly KernelArgument Null = new(0, 8);

    public static implicit operator KernelArgument(int value) => new((uint)value, 4);

    public static implicit operator KernelArgument(uint value) => new(value, 4);

    public static implicit operator KernelArgument(long value) => new((ulong)value, 8);

    public static implicit operator KernelArgument(float value) => new(BitConverter.SingleToUInt32Bits(value), 4);

    /// <summary>A device pointer (CUdeviceptr).</summary>
    public static implicit operator KernelArgument(ulong devicePointer) => new(devicePointer, 8);

    /// <summary>The allocation's device address, or a null pointer.</summary>
    public static implicit operator KernelArgument(DeviceMemory? memory) =>
        memory is null ? Null : new(memory.Pointer, 8);
}

/// <summary>A module loaded from PTX (cuModuleLoadData / cuModuleUnload); the driver JIT-compiles it for the device.</summary>
public sealed unsafe class CudaModule : CudaContextBoundHandle
{
    /// <summary>For marshalling; use <see cref="Load"/>.</summary>
    public CudaModule()
    {
    }

    /// <summary>Loads PTX text into <paramref name="context"/>.</summary>
    public static CudaModule Load(CudaContext context, string ptx)
    {
        byte[] image = Encoding.UTF8.GetBytes(ptx + "\0");
        using CudaContext.Scope scope = context.Push();
        nint module;
        fixed (byte* p = image) CudaCheck.Driver(CuDriver.cuModuleLoadData(&module, p), "cuModuleLoadData");
        var result = new CudaModule();
        result.Bind(context, module);
        return result;
    }

    /// <summary>The extern "C" entry point <paramref name="name"/> (cuModuleGetFunction).</summary>
    public CudaFunction GetFunction(string name)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(name + "\0");
        nint function;
        fixed (byte* p = utf8)
            CudaCheck.Driver(CuDriver.cuModuleGetFunction(&function, Value, p), $"cuModuleGetFunction({name})");
        return new CudaFunction(this, name, function);
    }

    protected override int Free(nint value) => CuDriver.cuModuleUnload(value);
}

/// <summary>A kernel in a loaded <see cref="CudaModule"/>; valid while the module is.</summary>
public sealed unsafe class CudaFunction
{
    private readonly CudaModule module;
    private readonly nint function;

    internal CudaFunction(CudaModule module, string name, nint function)
    {
        this.module = module;
        this.function = function;
        Name = name;
    }

    public string Name { get; }

    /// <summary>
    /// Lets launches of this kernel take up to <paramref name="bytes"/> of dynamic shared memory
    /// (cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES): above 48 KiB a launch fails without this opt-in. The
    /// device's own limit is <c>MAX_SHARED_MEMORY_PER_BLOCK_OPTIN</c> (227 KiB on sm_90).
    /// </summary>
    public void AllowDynamicSharedMemory(int bytes)
    {
        ObjectDisposedException.ThrowIf(module.IsClosed, module);
        const int MaxDynamicSharedSizeBytes = 8; // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        CudaCheck.Driver(CuDriver.cuFuncSetAttribute(function, MaxDynamicSharedSizeBytes, bytes),
            $"cuFuncSetAttribute({Name}, MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes})");
    }

    /// <summary>
    /// Queues the kernel on <paramref name="stream"/> (the legacy default stream when null) with cuLaunchKernel. The
    /// module's context must be current on the calling thread.
    /// </summary>
    public void Launch(CudaDim3 grid, CudaDim3 block, uint sharedBytes, CudaStream? stream,
        params ReadOnlySpan<KernelArgument> arguments)
    {
        ObjectDisposedException.ThrowIf(module.IsClosed, module);
        ulong* values = stackalloc ulong[Math.Max(1, arguments.Length)];
        void** pointers = stackalloc void*[Math.Max(1, arguments.Length)];
        for (int i = 0; i < arguments.Length; i++)
        {
            values[i] = arguments[i].Bits;
            pointers[i] = &values[i];
        }

        CudaCheck.Driver(CuDriver.cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
            sharedBytes, stream?.NativeHandle ?? 0, pointers, null), $"cuLaunchKernel({Name})");
        GC.KeepAlive(module);
        GC.KeepAlive(stream);
    }
}
