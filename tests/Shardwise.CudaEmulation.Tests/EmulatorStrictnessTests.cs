using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// The emulated device is strict where a GPU punishes host bugs, and the runtime surfaces each failure as a
/// <see cref="CudaException"/> carrying the driver's (or cuBLAS's) own name and text for the status. Kernels that
/// misbehave run in a context of their own, so the sticky error they cause stays there.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed unsafe class EmulatorStrictnessTests
{
    private string cache = "";

    [TestInitialize]
    public void CreateCache() => cache = Directory.CreateTempSubdirectory("shardwise-kernel-cache-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(cache, recursive: true);

    private static void RequireDevice()
    {
        if (!CudaRuntime.TryInitialize(out string reason)) GpuSupport.Unavailable($"no emulated device: {reason}");
    }

    /// <summary>An entry point of the emulated libcuda.so.1 (the same loaded copy the runtime uses).</summary>
    private static nint DriverExport(string name)
    {
        nint library = NativeLibrary.Load(Path.Combine(EmulatedDevice.LibraryDirectory, "libcuda.so.1"));
        return NativeLibrary.GetExport(library, name);
    }

    [TestMethod]
    public void ACopyPastTheEndOfAnAllocationIsInvalidValue()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        using var memory = DeviceMemory.Allocate<float>(context, 100);
        float[] values = new TestData(31).NonZero(101);
        // DeviceMemory checks its own bounds; the raw driver call below is what a wrong offset in host code does.
        var copy = (delegate* unmanaged<ulong, void*, nuint, int>)DriverExport("cuMemcpyHtoD_v2");
        int status;
        fixed (float* source = values) status = copy(memory.Pointer, source, (nuint)(values.Length * sizeof(float)));
        var e = Assert.ThrowsExactly<CudaException>(() => CudaCheck.Driver(status, "cuMemcpyHtoD_v2"));
        Assert.AreEqual(1, e.Status);
        StringAssert.Contains(e.Message, "CUDA_ERROR_INVALID_VALUE: invalid argument");

        // One element inside the allocation is fine, and the device still works (the error is not sticky).
        fixed (float* source = values) status = copy(memory.Pointer + 4, source, 99 * sizeof(float));
        Assert.AreEqual(0, status);
        var back = new float[100];
        memory.Download<float>(back);
        CollectionAssert.AreEqual(values.Take(99).ToArray(), back.Skip(1).ToArray());
    }

    [TestMethod]
    public void AKernelWritingPastItsOutputIsAnIllegalAddressThatSticksToItsContext()
    {
        RequireDevice();
        const int rows = 3, dim = 40;
        float[] x = new TestData(32).NonZero(rows * dim), bias = new TestData(33).NonZero(dim);
        using (CudaContext own = CudaContext.Create())
        {
            using CudaModule module = new KernelCompiler(cache).Load(own, "gelu.cu");
            CudaFunction gelu = module.GetFunction("bias_gelu_forward_f32");
            // Freeing these in the poisoned context fails (700, ignored by Dispose); destroying the context, once
            // they let go of it, frees their memory as a GPU does.
            using var dx = DeviceMemory.Allocate<float>(own, x.Length);
            using var dBias = DeviceMemory.Allocate<float>(own, dim);
            using var pre = DeviceMemory.Allocate<float>(own, x.Length);
            using var y = DeviceMemory.Allocate<float>(own, x.Length - 1); // one element short: the kernel overruns it
            dx.Upload<float>(x);
            dBias.Upload<float>(bias);
            var e = Assert.ThrowsExactly<CudaException>(() =>
                gelu.Launch(1, 256, 0, null, dx, dBias, pre, y, (long)rows, dim));
            Assert.AreEqual(700, e.Status);
            StringAssert.Contains(e.Message, "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered");
            // Sticky, as on a GPU: every later call in this context fails the same way.
            var later = Assert.ThrowsExactly<CudaException>(own.Synchronize);
            Assert.AreEqual(700, later.Status);
        }

        // Another context is unaffected.
        using CudaContext primary = CudaContext.Primary();
        using var fine = DeviceMemory.Allocate<float>(primary, 8);
        fine.Upload<float>(x.AsSpan(0, 8));
        primary.Synchronize();
    }

    [TestMethod]
    public void ALaunchOf2048ThreadsPerBlockIsInvalidValue()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        using CudaModule module = new KernelCompiler(cache).Load(context, "gelu.cu");
        CudaFunction gelu = module.GetFunction("bias_gelu_forward_f32");
        using var buffer = DeviceMemory.Allocate<float>(context, 64);
        var e = Assert.ThrowsExactly<CudaException>(() =>
            gelu.Launch(1, 2048, 0, null, buffer, buffer, buffer, buffer, 1L, 64));
        Assert.AreEqual(1, e.Status);
        StringAssert.Contains(e.Message, "cuLaunchKernel");
        StringAssert.Contains(e.Message, "CUDA_ERROR_INVALID_VALUE: invalid argument");
        var shared = Assert.ThrowsExactly<CudaException>(() =>
            gelu.Launch(1, 64, 48 * 1024 + 1, null, buffer, buffer, buffer, buffer, 1L, 64));
        Assert.AreEqual(1, shared.Status);
        context.Synchronize(); // not sticky: a refused launch never ran
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetNativeVariable(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int UnsetNativeVariable(string name);

    [TestMethod]
    public void AnAllocationOverTheEmulatedMemorySizeIsOutOfMemory()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        // The driver reads the variable from the native environment (Environment.SetEnvironmentVariable does not
        // reach it on Linux), at every allocation.
        Assert.AreEqual(0, SetNativeVariable("SHARDWISE_EMULATED_DEVICE_MEMORY", "64M", 1));
        try
        {
            var e = Assert.ThrowsExactly<CudaException>(() => DeviceMemory.Allocate(context, 65L << 20));
            Assert.AreEqual(2, e.Status);
            StringAssert.StartsWith(e.Message,
                "cuMemAlloc_v2 failed: CUDA driver status 2 (CUDA_ERROR_OUT_OF_MEMORY: out of memory)");
            using var fits = DeviceMemory.Allocate(context, 1L << 20);
            Assert.AreEqual(1L << 20, fits.Bytes);
        }
        finally
        {
            UnsetNativeVariable("SHARDWISE_EMULATED_DEVICE_MEMORY");
        }
    }

    [TestMethod]
    public void ADeviceNewerThanNvrtcGetsPtxOfTheNewestArchitectureNvrtcKnows()
    {
        RequireDevice();
        // sm_120 (Blackwell): the installed NVRTC (11.8: compute_90 at most) cannot target it, but the driver
        // JIT-compiles older PTX for it. The runtime used to ask NVRTC for compute_120 and fail to build any kernel.
        Assert.AreEqual(0, SetNativeVariable("SHARDWISE_EMULATED_COMPUTE_CAPABILITY", "12.0", 1));
        try
        {
            using CudaContext context = CudaContext.Primary();
            Assert.AreEqual(120, context.Device.ComputeCapability);
            int architecture = KernelCompiler.ArchitectureFor(120);
            Assert.IsTrue(architecture < 120 && Nvrtc.SupportedArchitectures().Contains(architecture), $"{architecture}");
            using CudaModule module = new KernelCompiler(cache).Load(context, "gelu.cu");
            Assert.AreEqual("bias_gelu_forward_f32", module.GetFunction("bias_gelu_forward_f32").Name);
            using CudaOps ops = GpuSupport.RequireCudaOps(cache); // compiles and loads every module CudaOps uses
        }
        finally
        {
            UnsetNativeVariable("SHARDWISE_EMULATED_COMPUTE_CAPABILITY");
        }
    }

    [TestMethod]
    public void ACopyOnAThreadWithoutACurrentContextIsInvalidContext()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        using var memory = DeviceMemory.Allocate<float>(context, 16); // Allocate pushes its context itself
        float[] values = new TestData(34).NonZero(16);
        CudaException? failure = null;
        var thread = new System.Threading.Thread(() =>
        {
            try
            {
                memory.Upload<float>(values); // copies act on the calling thread's current context: none here
            }
            catch (CudaException e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        Assert.IsNotNull(failure, "a copy without a current context succeeded");
        Assert.AreEqual(201, failure.Status);
        StringAssert.Contains(failure.Message, "CUDA_ERROR_INVALID_CONTEXT: invalid device context");
    }

    [TestMethod]
    public void AsyncCopiesCompleteAtTheSynchronisationSoAPinnedBufferReusedTooEarlyShows()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        using var stream = CudaStream.Create(context);
        using var pinned = PinnedHostMemory.Allocate(context, 64 * sizeof(float));
        using var device = DeviceMemory.Allocate<float>(context, 64);
        var data = new TestData(35);
        float[] first = data.NonZero(64), second = data.NonZero(64);

        // Host bug: the pinned source is overwritten before the stream is synchronised. On a GPU the device may get
        // either buffer; here it always gets the late one, so the bug fails a test instead of passing by luck.
        first.CopyTo(pinned.AsSpan<float>());
        device.UploadAsync(pinned, 64 * sizeof(float), stream);
        second.CopyTo(pinned.AsSpan<float>());
        stream.Synchronize();
        var back = new float[64];
        device.Download<float>(back);
        CollectionAssert.AreEqual(second, back);

        // A download into pinned memory lands at the synchronisation, not before.
        device.Upload<float>(first);
        pinned.AsSpan<float>().Clear();
        device.DownloadAsync(pinned, 64 * sizeof(float), stream);
        Assert.IsTrue(pinned.AsSpan<float>().ToArray().All(v => v == 0f),
            "the async download completed before the sync");
        stream.Synchronize();
        CollectionAssert.AreEqual(first, pinned.AsSpan<float>().ToArray());
    }

    /// <summary>
    /// On a GPU a collective on NCCL's own (non-blocking) stream runs beside the legacy stream's kernels. The emulator
    /// runs everything at the call, so it checks the order instead (tests/cuda-emulator/stream_order.hpp): a collective
    /// not ordered after the kernel that wrote its buffer is refused, and so is a kernel on a buffer whose collective
    /// nothing has waited for; work on other allocations goes on meanwhile, as overlap_comm needs.
    /// </summary>
    [TestMethod]
    public void ACollectiveMustWaitForTheKernelsWritingItsBufferAndTheyForIt()
    {
        RequireDevice();
        const int n = 300;
        using CudaContext context = CudaContext.Primary();
        using var side = CudaStream.Create(context); // non-blocking, as StagedNcclCommunicator's
        using var written = CudaEvent.Create(context, timing: false);
        using var reduced = CudaEvent.Create(context, timing: false);
        using NcclCommunicator nccl = NcclCommunicator.InitRank(1, NcclCommunicator.GetUniqueId(), 0);
        using CudaModule module = new KernelCompiler(cache).Load(context, "add.cu");
        CudaFunction copy = module.GetFunction("add_backward_f32");
        float[] values = new TestData(41).NonZero(n), other = new TestData(42).NonZero(n);
        using var source = DeviceMemory.Allocate<float>(context, n);
        using var buffer = DeviceMemory.Allocate<float>(context, n);
        using var unrelated = DeviceMemory.Allocate<float>(context, n);
        source.Upload<float>(values);
        void Copy(DeviceMemory to) => copy.Launch(new CudaDim3(2), new CudaDim3(256), 0, null, source.Pointer, to.Pointer, (long)n, 0);
        void AllReduce() => nccl.AllReduce(buffer.Pointer, buffer.Pointer, n, NcclDataType.Float32, NcclReduction.Average, side);

        Copy(buffer); // the legacy stream writes the buffer; the collective below does not wait for it
        var unordered = Assert.ThrowsExactly<CudaException>(AllReduce);
        StringAssert.Contains(unordered.Message, "invalid usage");

        written.Record();
        written.MakeStreamWait(side);
        AllReduce(); // ordered after the kernel: accepted, and now in flight
        reduced.Record(side);
        Copy(unrelated); // another allocation: backward goes on beside the collective
        var early = Assert.ThrowsExactly<CudaException>(() => Copy(buffer));
        Assert.AreEqual(1, early.Status, early.Message); // CUDA_ERROR_INVALID_VALUE, not sticky

        reduced.MakeStreamWait(null); // the legacy stream waits for the collective on the device
        unrelated.Upload<float>(other);
        Copy(buffer);
        var back = new float[n];
        buffer.Download<float>(back);
        CollectionAssert.AreEqual(values, back, "one rank's average is its own values");

        // A host wait releases the buffer too: queue another collective, then wait for its event.
        written.Record();
        written.MakeStreamWait(side);
        AllReduce();
        reduced.Record(side);
        Assert.IsTrue(reduced.IsComplete(), "the emulated device completes work at the call");
        Copy(buffer);
    }

    [TestMethod]
    public void TwoRanksOfANcclCommunicatorOnOneDeviceAreRefused()
    {
        // As NCCL ("Duplicate GPU detected"): ranks meet (here two threads of one process), see each other's device
        // and refuse. Several ranks work when each process has its own device (MultiRankTrainingTests).
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        NcclUniqueId id = NcclCommunicator.GetUniqueId();
        CudaException Join(int rank)
        {
            using CudaContext.Scope scope = context.Push();
            return Assert.ThrowsExactly<CudaException>(() => NcclCommunicator.InitRank(2, id, rank));
        }
        var ranks = new[] { System.Threading.Tasks.Task.Run(() => Join(0)), System.Threading.Tasks.Task.Run(() => Join(1)) };
        foreach (var rank in ranks)
        {
            CudaException e = rank.GetAwaiter().GetResult();
            Assert.AreEqual(CudaLibrary.Nccl, e.Library);
            StringAssert.Contains(e.Message, "invalid usage");
        }
    }

    [TestMethod]
    public void ANcclRankWhosePeerNeverJoinsFailsAtTheDeadline()
    {
        // Rank 0 of two, and rank 1 never comes: the fake waits SHARDWISE_COMM_TIMEOUT_SECONDS (native environment),
        // then fails as NCCL reports a lost peer, instead of hanging the job.
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        NcclUniqueId id = NcclCommunicator.GetUniqueId();
        Assert.AreEqual(0, SetNativeVariable("SHARDWISE_COMM_TIMEOUT_SECONDS", "1", 1));
        try
        {
            var e = Assert.ThrowsExactly<CudaException>(() => NcclCommunicator.InitRank(2, id, 0));
            Assert.AreEqual(CudaLibrary.Nccl, e.Library);
            StringAssert.Contains(e.Message, "unhandled system error");
        }
        finally
        {
            UnsetNativeVariable("SHARDWISE_COMM_TIMEOUT_SECONDS");
        }
    }

    [TestMethod]
    public void AGemmWithALeadingDimensionBelowItsRowsIsInvalidValue()
    {
        RequireDevice();
        using CudaContext context = CudaContext.Primary();
        using var a = DeviceMemory.Allocate<float>(context, 64);
        using CublasHandle blas = CublasHandle.Create();
        // C (8×8) = A (8×8) · B (8×8), column-major: lda must be at least 8.
        var e = Assert.ThrowsExactly<CudaException>(() => blas.GemmEx(CublasOperation.None, CublasOperation.None,
            8, 8, 8, 1f, a.Pointer, CudaDataType.Float32, 7, a.Pointer, CudaDataType.Float32, 8, 0f,
            a.Pointer, CudaDataType.Float32, 8));
        Assert.AreEqual(7, e.Status);
        StringAssert.Contains(e.Message, "CUBLAS_STATUS_INVALID_VALUE");
        // A valid shape whose B runs past its allocation (ldb 16) is refused before any memory is touched.
        var past = Assert.ThrowsExactly<CudaException>(() => blas.GemmEx(CublasOperation.None, CublasOperation.None,
            8, 8, 8, 1f, a.Pointer, CudaDataType.Float32, 8, a.Pointer, CudaDataType.Float32, 16, 0f,
            a.Pointer, CudaDataType.Float32, 8));
        StringAssert.Contains(past.Message, "CUBLAS_STATUS_MAPPING_ERROR");
    }
}
