using System;
using System.Runtime.InteropServices;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>
/// One result of cublasLtMatmulAlgoGetHeuristic (cublasLtMatmulHeuristicResult_t): the opaque 64-byte algorithm, the
/// workspace it needs, its status and its wave count.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CublasLtHeuristicResult
{
    /// <summary>cublasLtMatmulAlgo_t: uint64_t data[8].</summary>
    public fixed ulong Algorithm[8];

    public nuint WorkspaceSize;
    public int State;
    public float WavesCount;
    public fixed int Reserved[4];
}

/// <summary>cublasLtMatmulDescAttributes_t values used by Shardwise.</summary>
public enum CublasLtMatmulDescAttribute
{
    ComputeType = 0,
    ScaleType = 1,
    PointerMode = 2,
    TransA = 3,
    TransB = 4,
    Epilogue = 7,
    /// <summary>Device pointer: the bias (BIAS, GELU_BIAS…) or the bias gradient written by BGRADA/BGRADB.</summary>
    BiasPointer = 8,
    /// <summary>Device pointer: the GeLU input written by GELU_AUX(_BIAS), read by DGELU.</summary>
    EpilogueAuxPointer = 11,
    /// <summary>int64: the aux matrix's leading dimension (≥ D's rows; a multiple of 8 for the GeLU input).</summary>
    EpilogueAuxLeadingDimension = 12,
    /// <summary>int32 cudaDataType_t of the bias or bias-gradient vector (default −1: D's type).</summary>
    BiasDataType = 26,
}

/// <summary>cublasLtEpilogue_t values used by Shardwise.</summary>
public enum CublasLtEpilogue
{
    Default = 1,
    Relu = 2,
    Bias = 4,
    Gelu = 32,
    GeluBias = 36,
    /// <summary>D = GeLU(A·B), and the GeLU input into the aux matrix.</summary>
    GeluAux = 160,
    /// <summary>D = GeLU(A·B + bias), and the GeLU input (A·B + bias) into the aux matrix.</summary>
    GeluAuxBias = 164,
    /// <summary>D = (A·B) ⊙ GeLU′(aux): the gradient through a GeLU whose input is the aux matrix.</summary>
    DGelu = 192,
    /// <summary>Bias gradient of op(B): the sums over k of op(B), one per column of D, written to the bias pointer.</summary>
    BGradB = 512,
}

/// <summary>cublasLtMatrixLayoutAttribute_t values used by Shardwise.</summary>
public enum CublasLtLayoutAttribute
{
    Type = 0,
    Order = 1,
    Rows = 2,
    Cols = 3,
    LeadingDimension = 4,
    BatchCount = 5,
    StridedBatchOffset = 6,
}

/// <summary>cublasLtMatmulPreferenceAttributes_t values used by Shardwise.</summary>
public enum CublasLtPreferenceAttribute
{
    SearchMode = 0,
    MaxWorkspaceBytes = 1,
    /// <summary>uint32 mask of cublasLtReductionScheme_t: which split-K reductions an algorithm may use.</summary>
    ReductionSchemeMask = 3,
    /// <summary>uint32: the alignment in bytes the algorithm may assume for A (the default assumes 256).</summary>
    MinAlignmentABytes = 5,
    MinAlignmentBBytes = 6,
    MinAlignmentCBytes = 7,
    MinAlignmentDBytes = 8,
}

/// <summary>cublasLtReductionScheme_t flags (for <see cref="CublasLtPreferenceAttribute.ReductionSchemeMask"/>).</summary>
[System.Flags]
public enum CublasLtReductionScheme : uint
{
    None = 0,
    InPlace = 1,
    ComputeType = 2,
    OutputType = 4,
}

/// <summary>
/// A cuBLASLt handle (cublasLtCreate / cublasLtDestroy) with the heuristic query and cublasLtMatmul. Descriptors are
/// <see cref="CublasLtMatmulDesc"/>, <see cref="CublasLtMatrixLayout"/> and <see cref="CublasLtMatmulPreference"/>.
/// </summary>
public sealed unsafe class CublasLtHandle : SafeHandle
{
    /// <summary>For marshalling; use <see cref="Create"/>.</summary>
    public CublasLtHandle() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(CublasLtHandle)) : handle;

    public static CublasLtHandle Create()
    {
        nint created;
        CudaCheck.CublasLt(CublasLtNative.cublasLtCreate(&created), "cublasLtCreate");
        var result = new CublasLtHandle();
        result.SetHandle(created);
        return result;
    }

    /// <summary>The library version (cublasLtGetVersion).</summary>
    public static ulong Version => CublasLtNative.cublasLtGetVersion();

    /// <summary>Up to <paramref name="requested"/> algorithms for D = op(A)·op(B) (cublasLtMatmulAlgoGetHeuristic), best first.</summary>
    public CublasLtHeuristicResult[] Heuristic(CublasLtMatmulDesc operation, CublasLtMatrixLayout a,
        CublasLtMatrixLayout b, CublasLtMatrixLayout c, CublasLtMatrixLayout d, CublasLtMatmulPreference preference,
        int requested = 1)
    {
        var results = new CublasLtHeuristicResult[requested];
        int returned;
        fixed (CublasLtHeuristicResult* r = results)
        {
            CudaCheck.CublasLt(CublasLtNative.cublasLtMatmulAlgoGetHeuristic(Value, operation.Value, a.Value, b.Value,
                c.Value, d.Value, preference.Value, requested, r, &returned), "cublasLtMatmulAlgoGetHeuristic");
        }

        GC.KeepAlive(operation);
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(c);
        GC.KeepAlive(d);
        GC.KeepAlive(preference);
        return results[..returned];
    }

    /// <summary>D = alpha·op(A)·op(B) + beta·C (+ epilogue), with an algorithm from <see cref="Heuristic"/> (cublasLtMatmul).</summary>
    public void Matmul(CublasLtMatmulDesc operation, float alpha, ulong a, CublasLtMatrixLayout aLayout,
        ulong b, CublasLtMatrixLayout bLayout, float beta, ulong c, CublasLtMatrixLayout cLayout,
        ulong d, CublasLtMatrixLayout dLayout, in CublasLtHeuristicResult algorithm, DeviceMemory? workspace,
        CudaStream? stream)
    {
        fixed (CublasLtHeuristicResult* algo = &algorithm)
        {
            CudaCheck.CublasLt(CublasLtNative.cublasLtMatmul(Value, operation.Value, &alpha, a, aLayout.Value,
                b, bLayout.Value, &beta, c, cLayout.Value, d, dLayout.Value, algo->Algorithm,
                workspace?.Pointer ?? 0, (nuint)(workspace?.Bytes ?? 0), stream?.NativeHandle ?? 0), "cublasLtMatmul");
        }

        GC.KeepAlive(operation);
        GC.KeepAlive(aLayout);
        GC.KeepAlive(bLayout);
        GC.KeepAlive(cLayout);
        GC.KeepAlive(dLayout);
        GC.KeepAlive(workspace);
        GC.KeepAlive(stream);
    }

    protected override bool ReleaseHandle() => CublasLtNative.cublasLtDestroy(handle) == 0;
}

/// <summary>A matmul descriptor (cublasLtMatmulDescCreate / SetAttribute / Destroy).</summary>
public sealed unsafe class CublasLtMatmulDesc : SafeHandle
{
    public CublasLtMatmulDesc() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(CublasLtMatmulDesc)) : handle;

    public static CublasLtMatmulDesc Create(CublasComputeType compute, CudaDataType scaleType)
    {
        nint created;
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatmulDescCreate(&created, (int)compute, (int)scaleType),
            "cublasLtMatmulDescCreate");
        var result = new CublasLtMatmulDesc();
        result.SetHandle(created);
        return result;
    }

    /// <summary>Sets an attribute from an unmanaged value of the type the attribute takes (int32 for enums, ulong for pointers).</summary>
    public void Set<T>(CublasLtMatmulDescAttribute attribute, T value) where T : unmanaged =>
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatmulDescSetAttribute(Value, (int)attribute, &value,
            (nuint)sizeof(T)), $"cublasLtMatmulDescSetAttribute({attribute})");

    protected override bool ReleaseHandle() => CublasLtNative.cublasLtMatmulDescDestroy(handle) == 0;
}

/// <summary>A matrix layout (cublasLtMatrixLayoutCreate / SetAttribute / Destroy); column-major unless Order is set.</summary>
public sealed unsafe class CublasLtMatrixLayout : SafeHandle
{
    public CublasLtMatrixLayout() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(CublasLtMatrixLayout)) : handle;

    public static CublasLtMatrixLayout Create(CudaDataType type, ulong rows, ulong cols, long leadingDimension)
    {
        nint created;
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatrixLayoutCreate(&created, (int)type, rows, cols, leadingDimension),
            "cublasLtMatrixLayoutCreate");
        var result = new CublasLtMatrixLayout();
        result.SetHandle(created);
        return result;
    }

    public void Set<T>(CublasLtLayoutAttribute attribute, T value) where T : unmanaged =>
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatrixLayoutSetAttribute(Value, (int)attribute, &value,
            (nuint)sizeof(T)), $"cublasLtMatrixLayoutSetAttribute({attribute})");

    protected override bool ReleaseHandle() => CublasLtNative.cublasLtMatrixLayoutDestroy(handle) == 0;
}

/// <summary>A heuristic preference (cublasLtMatmulPreferenceCreate / SetAttribute / Destroy).</summary>
public sealed unsafe class CublasLtMatmulPreference : SafeHandle
{
    public CublasLtMatmulPreference() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(CublasLtMatmulPreference)) : handle;

    /// <summary>A preference that allows at most <paramref name="maxWorkspaceBytes"/> of workspace.</summary>
    public static CublasLtMatmulPreference Create(ulong maxWorkspaceBytes)
    {
        nint created;
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatmulPreferenceCreate(&created), "cublasLtMatmulPreferenceCreate");
        var result = new CublasLtMatmulPreference();
        result.SetHandle(created);
        result.Set(CublasLtPreferenceAttribute.MaxWorkspaceBytes, maxWorkspaceBytes);
        return result;
    }

    public void Set<T>(CublasLtPreferenceAttribute attribute, T value) where T : unmanaged =>
        CudaCheck.CublasLt(CublasLtNative.cublasLtMatmulPreferenceSetAttribute(Value, (int)attribute, &value,
            (nuint)sizeof(T)), $"cublasLtMatmulPreferenceSetAttribute({attribute})");

    protected override bool ReleaseHandle() => CublasLtNative.cublasLtMatmulPreferenceDestroy(handle) == 0;
}
