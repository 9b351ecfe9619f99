using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The driver, cuBLAS, cuBLASLt and NCCL bindings on a device (category "Gpu"): on a GPU through scripts/gpu-suite.sh,
/// and on the emulated device in Shardwise.CudaEmulation.Tests; without either they are inconclusive, never passed.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaInteropGpuTests
{
    private string cache = "";

    [TestInitialize]
    public void CreateCache() => cache = Directory.CreateTempSubdirectory("shardwise-kernel-cache-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(cache, recursive: true);

    private static CudaContext RequireGpu()
    {
        if (!CudaRuntime.TryInitialize(out string reason)) GpuSupport.Unavailable($"no GPU: {reason}");
        Console.WriteLine(reason);
        return CudaContext.Primary();
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GpuDeviceAttributesAndMemoryRoundTrip()
    {
        using CudaContext context = RequireGpu();
        CudaDevice device = context.Device;
        Console.WriteLine(device);
        Assert.IsTrue(device.ComputeCapability >= 70, device.ToString());
        Assert.IsTrue(device.MultiprocessorCount > 0);

        float[] values = Enumerable.Range(0, 1000).Select(i => i * 0.5f - 7f).ToArray();
        using var a = DeviceMemory.Allocate<float>(context, values.Length);
        using var b = DeviceMemory.Allocate<float>(context, values.Length);
        a.Upload<float>(values);
        b.CopyFrom(a, a.Bytes);
        var back = new float[values.Length];
        b.Download<float>(back);
        CollectionAssert.AreEqual(values, back);

        using var stream = CudaStream.Create(context);
        using var pinned = PinnedHostMemory.Allocate(context, a.Bytes);
        using var start = CudaEvent.Create(context);
        using var end = CudaEvent.Create(context);
        values.AsSpan().CopyTo(pinned.AsSpan<float>());
        b.Zero();
        start.Record(stream);
        b.UploadAsync(pinned, a.Bytes, stream);
        stream.Synchronize(); // the copy reads the pinned buffer asynchronously: wait before reusing it
        pinned.AsSpan<float>().Clear();
        b.DownloadAsync(pinned, b.Bytes, stream);
        end.Record(stream);
        end.Synchronize();
        CollectionAssert.AreEqual(values, pinned.AsSpan<float>().ToArray());
        Assert.IsTrue(CudaEvent.ElapsedMilliseconds(start, end) >= 0);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => a.Upload<float>(new float[1001]));
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GpuEveryModuleLoadsAndExportsItsEntryPoints()
    {
        using CudaContext context = RequireGpu();
        var compiler = new KernelCompiler(cache);
        foreach (string file in compiler.KernelFiles)
        {
            CompiledKernel kernel = compiler.Compile(file, KernelCompiler.ArchitectureFor(context.Device.ComputeCapability));
            using CudaModule module = CudaModule.Load(context, kernel.Ptx);
            foreach (string entry in kernel.EntryPoints) Assert.AreEqual(entry, module.GetFunction(entry).Name);
            var e = Assert.ThrowsExactly<CudaException>(() => module.GetFunction("no_such_kernel"));
            StringAssert.Contains(e.Message, "CUDA_ERROR_NOT_FOUND");
        }
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GpuGeluForwardMatchesTheCpuBackend()
    {
        using CudaContext context = RequireGpu();
        using CudaModule module = new KernelCompiler(cache).Load(context, "gelu.cu");
        CudaFunction gelu = module.GetFunction("bias_gelu_forward_f32");
        const int rows = 37, dim = 130;
        float[] x = new TestData(5).NonZero(rows * dim, 3f), bias = new TestData(6).NonZero(dim);
        var pre = new float[x.Length];
        for (int i = 0; i < x.Length; i++) pre[i] = x[i] + bias[i % dim];
        var cpu = new CpuReference();
        Slice y = cpu.Zeros(x.Length);
        cpu.Ops.Gelu(cpu.Put(pre), y, x.Length);

        using var dx = DeviceMemory.Allocate<float>(context, x.Length);
        using var dBias = DeviceMemory.Allocate<float>(context, dim);
        using var dPre = DeviceMemory.Allocate<float>(context, x.Length);
        using var dy = DeviceMemory.Allocate<float>(context, x.Length);
        dx.Upload<float>(x);
        dBias.Upload<float>(bias);
        gelu.Launch(7, 256, 0, null, dx, dBias, dPre, dy, (long)rows, dim);
        context.Synchronize();
        var gotPre = new float[x.Length];
        var gotY = new float[x.Length];
        dPre.Download<float>(gotPre);
        dy.Download<float>(gotY);
        Compare.Close(pre, gotPre, 0f, "pre-activation");
        Compare.Close(cpu.Read(y), gotY, 2e-5f, "y");
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GpuCublasAndCublasLtGemmMatchTheCpuBackend()
    {
        using CudaContext context = RequireGpu();
        const int rows = 33, inDim = 70, outDim = 45;
        float[] x = new TestData(7).NonZero(rows * inDim), w = new TestData(8).NonZero(outDim * inDim);
        var cpu = new CpuReference();
        Slice y = cpu.Zeros(rows * outDim);
        cpu.Ops.Linear(cpu.Put(x), cpu.Put(w), null, y, rows, inDim, outDim);
        float[] expected = cpu.Read(y);

        using var dx = DeviceMemory.Allocate<float>(context, x.Length);
        using var dw = DeviceMemory.Allocate<float>(context, w.Length);
        using var dy = DeviceMemory.Allocate<float>(context, expected.Length);
        dx.Upload<float>(x);
        dw.Upload<float>(w);

        // Row-major y[rows, out] = x·Wᵀ is column-major yᵀ[out, rows] = W·xᵀ: op(A) = Wᵀ(col-major [in, out])ᵀ.
        using (CublasHandle blas = CublasHandle.Create())
        {
            blas.SetMathMode(CublasMathMode.Pedantic);
            blas.GemmEx(CublasOperation.Transpose, CublasOperation.None, outDim, rows, inDim, 1f,
                dw.Pointer, CudaDataType.Float32, inDim, dx.Pointer, CudaDataType.Float32, inDim, 0f,
                dy.Pointer, CudaDataType.Float32, outDim);
            context.Synchronize();
            var got = new float[expected.Length];
            dy.Download<float>(got);
            Compare.Close(expected, got, 1e-4f, "cublasGemmEx");
        }

        using CublasLtHandle lt = CublasLtHandle.Create();
        using var desc = CublasLtMatmulDesc.Create(CublasComputeType.Compute32F, CudaDataType.Float32);
        desc.Set(CublasLtMatmulDescAttribute.TransA, (int)CublasOperation.Transpose);
        using var aLayout = CublasLtMatrixLayout.Create(CudaDataType.Float32, inDim, outDim, inDim);
        using var bLayout = CublasLtMatrixLayout.Create(CudaDataType.Float32, inDim, rows, inDim);
        using var cLayout = CublasLtMatrixLayout.Create(CudaDataType.Float32, outDim, rows, outDim);
        using var preference = CublasLtMatmulPreference.Create(1 << 22);
        using var workspace = DeviceMemory.Allocate(context, 1 << 22);
        CublasLtHeuristicResult[] algorithms = lt.Heuristic(desc, aLayout, bLayout, cLayout, cLayout, preference);
        Assert.IsTrue(algorithms.Length > 0, "cuBLASLt found no algorithm");
        dy.Zero();
        lt.Matmul(desc, 1f, dw.Pointer, aLayout, dx.Pointer, bLayout, 0f, dy.Pointer, cLayout, dy.Pointer, cLayout,
            algorithms[0], workspace, null);
        context.Synchronize();
        var fromLt = new float[expected.Length];
        dy.Download<float>(fromLt);
        Compare.Close(expected, fromLt, 1e-4f, "cublasLtMatmul");
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GpuSingleRankNcclCollectives()
    {
        using CudaContext context = RequireGpu();
        if (!CudaRuntime.TryLoad(CudaLibrary.Nccl, out string reason)) GpuSupport.Unavailable(reason);
        Console.WriteLine($"NCCL {NcclCommunicator.Version}");
        using NcclCommunicator nccl = NcclCommunicator.InitRank(1, NcclCommunicator.GetUniqueId(), 0);
        using var stream = CudaStream.Create(context);
        float[] values = [1f, 2f, 3f, 4f];
        using var send = DeviceMemory.Allocate<float>(context, 4);
        using var receive = DeviceMemory.Allocate<float>(context, 4);
        send.Upload<float>(values);
        nccl.AllReduce(send.Pointer, receive.Pointer, 4, NcclDataType.Float32, NcclReduction.Sum, stream);
        NcclCommunicator.GroupStart();
        nccl.Broadcast(receive.Pointer, receive.Pointer, 4, NcclDataType.Float32, 0, stream);
        NcclCommunicator.GroupEnd();
        stream.Synchronize();
        nccl.CheckAsyncError();
        var back = new float[4];
        receive.Download<float>(back);
        CollectionAssert.AreEqual(values, back);
    }
}
