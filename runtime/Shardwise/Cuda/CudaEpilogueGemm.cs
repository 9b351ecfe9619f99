using System;
using System.Collections.Generic;

namespace Shardwise.Cuda;

/// <summary>
/// Matrix products with a cuBLASLt epilogue, so that the elementwise work around a Linear rides on its GEMM instead
/// of reading and writing the activation once more:
/// <list type="bullet">
/// <item><see cref="TryLinear"/>: <c>y = x · Wᵀ + bias</c> with BIAS (about 70 µs saved for the 16384 × 2304 bf16 QKV
/// projection of GPT-2 124M at batch 16 on an H200; 3.5 ms of a 66 ms step over the 48 biased Linears);</item>
/// <item><see cref="TryLinearGelu"/>: <c>pre = x · Wᵀ + bias, y = GeLU(pre)</c> with GELU_AUX_BIAS (GELU_AUX without a
/// bias), pre written as the aux matrix because GeLU's backward reads it;</item>
/// <item><see cref="TryGeluInputGradient"/>: <c>dPre = (dy · W) ⊙ GeLU′(pre)</c> with DGELU, the input gradient of a
/// Linear that reads a GeLU's output, taken straight through the GeLU;</item>
/// <item><see cref="TryWeightGradientWithBias"/>: <c>dW += dyᵀ · x</c> with BGRADB, which also writes Σ_rows dy (the
/// bias gradient) to a vector.</item>
/// </list>
/// cuBLASLt's GELU is the tanh approximation, the one <see cref="Ops.ITensorOps{T}.Gelu"/> defines (PyTorch runs
/// <c>gelu(approximate="tanh")</c> as the same epilogue). Every call is in the row-major convention of
/// <see cref="CudaGemm"/>: <c>C[m, n] = op(A) · op(B)</c> is the column-major <c>Cᵀ = op(B)ᵀ · op(A)ᵀ</c>, so the
/// operands swap places and the epilogue's per-row vectors (bias, bias gradient of cuBLASLt's B) are per column of C.
/// <para>
/// Operands, result, aux and bias are in the backend's storage type (cuBLASLt's default for the aux and bias types);
/// compute fp32 with fp32 scale, and split-K partial sums may only be reduced in fp32
/// (<see cref="CublasLtReductionScheme.ComputeType"/>), as CudaGemm's DisallowReducedPrecisionReduction. The aux
/// matrix's leading dimension must be a multiple of 8 (cuBLASLt's rule for the GeLU input); a shape that breaks it, or
/// that cuBLASLt has no algorithm for, returns false and the caller takes the unfused path. The heuristic's algorithm
/// is cached per epilogue, shape and operand alignment (the heuristic otherwise assumes 256-byte aligned pointers,
/// which slices of an arena need not be).
/// </para>
/// </summary>
internal sealed class CudaEpilogueGemm : IDisposable
{
    /// <summary>cuBLASLt requires the GeLU aux matrix's leading dimension to be a multiple of this.</summary>
    public const int AuxLeadingDimensionMultiple = 8;

    private readonly CublasLtHandle handle;
    private readonly DeviceMemory workspace;
    private readonly CudaDataType type;
    private readonly int elementBytes;
    private readonly CublasComputeType compute;
    private readonly Dictionary<Key, Plan?> plans = [];
    private readonly CudaGemmTuner? tuner;

    /// <param name="gemm">The cuBLAS path whose workspace, operand type and compute type this shares.</param>
    /// <param name="tuner">Null: cuBLASLt's first candidate; otherwise the fastest of its candidates, timed at a plan's first call.</param>
    public CudaEpilogueGemm(CudaGemm gemm, CudaGemmTuner? tuner = null)
    {
        handle = CublasLtHandle.Create();
        workspace = gemm.Workspace;
        type = gemm.OperandType;
        elementBytes = gemm.ElementBytes;
        compute = gemm.ComputeType;
        this.tuner = tuner;
    }

    /// <summary>Whether plans are tuned (<see cref="CudaOpsOptions.GemmTuning"/>): then plain products come here too.</summary>
    public bool Tunes => tuner is not null;

    /// <summary>Plans whose algorithm was chosen by timing several candidates.</summary>
    public int TunedPlans => tuner?.Tuned ?? 0;

    /// <summary>
    /// C = alpha · op(A) · op(B) + beta · C with no epilogue, row-major as <see cref="CudaGemm.Multiply"/>: the tuned
    /// path for the products that have none. False: no algorithm, take <see cref="CudaGemm.Multiply"/>.
    /// </summary>
    public bool TryMultiply(bool transposeA, bool transposeB, int m, int n, int k, float alpha, ulong a, int lda,
        ulong b, int ldb, float beta, ulong c, int ldc)
        => m == 0 || n == 0 ||
           TryMultiply(CublasLtEpilogue.Default, null, transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c,
               ldc, 0, 0);

    /// <summary>Told "gemm+EPILOGUE M×N×K" before each call, for CudaOps' profiler; null: nothing.</summary>
    public Action<string>? Trace { get; set; }

    /// <summary>
    /// y = x · Wᵀ + bias (addresses in the storage type). False when cuBLASLt offers no algorithm for the shape and
    /// alignments; the caller then takes GemmEx and add_bias.
    /// </summary>
    public bool TryLinear(ulong x, ulong weight, ulong bias, ulong y, int rows, int inDim, int outDim)
        => TryMultiply(CublasLtEpilogue.Bias, "bias", false, true, rows, outDim, inDim, 1f, x, inDim, weight, inDim,
            0f, y, outDim, bias, 0);

    /// <summary>pre = x · Wᵀ (+ bias), y = GeLU(pre); bias 0: none. False: no algorithm, take Linear then Gelu.</summary>
    public bool TryLinearGelu(ulong x, ulong weight, ulong bias, ulong preActivation, ulong y, int rows, int inDim, int outDim)
    {
        if (outDim % AuxLeadingDimensionMultiple != 0) return false;
        return bias != 0
            ? TryMultiply(CublasLtEpilogue.GeluAuxBias, "bias+gelu", false, true, rows, outDim, inDim, 1f, x, inDim,
                weight, inDim, 0f, y, outDim, bias, preActivation)
            : TryMultiply(CublasLtEpilogue.GeluAux, "gelu", false, true, rows, outDim, inDim, 1f, x, inDim, weight,
                inDim, 0f, y, outDim, 0, preActivation);
    }

    /// <summary>
    /// dPre = (dy · W) ⊙ GeLU′(pre), overwriting dPre (dy <c>[rows, outDim]</c>, W <c>[outDim, inDim]</c>, pre and dPre
    /// <c>[rows, inDim]</c>). False: no algorithm, take GemmEx then gelu_backward.
    /// </summary>
    public bool TryGeluInputGradient(ulong dy, ulong weight, ulong preActivation, ulong dPreActivation, int rows, int inDim, int outDim)
    {
        if (inDim % AuxLeadingDimensionMultiple != 0) return false;
        return TryMultiply(CublasLtEpilogue.DGelu, "dgelu", false, false, rows, inDim, outDim, 1f, dy, outDim,
            weight, inDim, 0f, dPreActivation, inDim, 0, preActivation);
    }

    /// <summary>
    /// dW (+)= dyᵀ · x and biasGradient = Σ_rows dy (written, never added: cuBLASLt's bias gradient has no beta), dy
    /// <c>[rows, outDim]</c>, x <c>[rows, inDim]</c>, dW <c>[outDim, inDim]</c>, biasGradient <c>[outDim]</c> in fp32
    /// whatever the storage (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE), so the caller adds it into the stored gradient with
    /// one rounding. False: no algorithm, take GemmEx and the column-sum kernels; cuBLASLt 13 on the H200 found none
    /// for fp16/bf16 operands with an fp32 bias gradient (docs/gpu-results.md, run 10). It has one with a 16-bit bias
    /// gradient, but run 12 measured those GEMMs 0.2–0.5 ms per step slower per Linear type than without the
    /// epilogue, as much as the column-sum kernels cost, so the backend does not ask for it.
    /// </summary>
    public bool TryWeightGradientWithBias(ulong dy, ulong x, ulong dWeight, ulong biasGradient, int rows, int inDim, int outDim, bool accumulate)
        => TryMultiply(CublasLtEpilogue.BGradB, "bgradb", true, false, outDim, inDim, rows, 1f, dy, outDim, x, inDim,
            accumulate ? 1f : 0f, dWeight, inDim, biasGradient, 0);

    /// <summary>
    /// C[m, n] = alpha · op(A) · op(B) + beta · C with <paramref name="epilogue"/>, row-major; <paramref name="bias"/>
    /// and <paramref name="aux"/> are the epilogue's vector (n long) and matrix (like C, leading dimension ldc), 0 where
    /// it takes none.
    /// </summary>
    /// <param name="name">The epilogue as the profiler names it ("gemm+NAME …"); null: none ("gemm …").</param>
    private bool TryMultiply(CublasLtEpilogue epilogue, string? name, bool transposeA, bool transposeB, int m, int n,
        int k, float alpha, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc, ulong bias, ulong aux)
    {
        var key = new Key(epilogue, transposeA, transposeB, m, n, k, lda, ldb, ldc, Alignment(b), Alignment(a),
            Alignment(c), bias == 0 ? 0 : Alignment(bias), aux == 0 ? 0 : Alignment(aux));
        if (!plans.TryGetValue(key, out Plan? plan))
        {
            plan = CreatePlan(key, bias, aux);
            plans[key] = plan;
        }

        if (plan is null) return false;
        Trace?.Invoke($"gemm{(name is null ? "" : "+" + name)} {m}×{n}×{k}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")}");
        if (bias != 0) plan.Descriptor.Set(CublasLtMatmulDescAttribute.BiasPointer, bias);
        if (aux != 0) plan.Descriptor.Set(CublasLtMatmulDescAttribute.EpilogueAuxPointer, aux);
        if (tuner is not null && !plan.Tuned)
        {
            // Every candidate writes what the call writes (C, and the bias gradient or aux output where the epilogue
            // has one, overwritten): only an accumulating C needs keeping.
            long cBytes = ((long)(m - 1) * ldc + n) * elementBytes;
            Plan tuned = plan;
            int fastest = tuner.Fastest(plan.Candidates.Length, i => Run(tuned, tuned.Candidates[i]), c, cBytes,
                accumulates: beta != 0f);
            plan = plan with { Algorithm = plan.Candidates[fastest], Tuned = true };
            plans[key] = plan;
        }

        Run(plan, plan.Algorithm);
        return true;

        // Column-major: cuBLASLt's A is our B and its B our A.
        void Run(Plan p, in CublasLtHeuristicResult algorithm) =>
            handle.Matmul(p.Descriptor, alpha, b, p.A, a, p.B, beta, c, p.D, c, p.D, algorithm, workspace, null);
    }

    private Plan? CreatePlan(Key key, ulong bias, ulong aux)
    {
        var descriptor = CublasLtMatmulDesc.Create(compute, CudaDataType.Float32);
        descriptor.Set(CublasLtMatmulDescAttribute.TransA, (int)(key.TransposeB ? CublasOperation.Transpose : CublasOperation.None));
        descriptor.Set(CublasLtMatmulDescAttribute.TransB, (int)(key.TransposeA ? CublasOperation.Transpose : CublasOperation.None));
        descriptor.Set(CublasLtMatmulDescAttribute.Epilogue, (uint)key.Epilogue);
        if (bias != 0) descriptor.Set(CublasLtMatmulDescAttribute.BiasPointer, bias);
        if (key.Epilogue == CublasLtEpilogue.BGradB)
            descriptor.Set(CublasLtMatmulDescAttribute.BiasDataType, (int)CudaDataType.Float32);
        if (aux != 0)
        {
            descriptor.Set(CublasLtMatmulDescAttribute.EpilogueAuxPointer, aux);
            descriptor.Set(CublasLtMatmulDescAttribute.EpilogueAuxLeadingDimension, (long)key.Ldc);
        }

        // Row-major B (k × n, or n × k when transposed) is column-major n × k (k × n); row-major A likewise.
        var a = key.TransposeB
            ? CublasLtMatrixLayout.Create(type, (ulong)key.K, (ulong)key.N, key.Ldb)
            : CublasLtMatrixLayout.Create(type, (ulong)key.N, (ulong)key.K, key.Ldb);
        var b = key.TransposeA
            ? CublasLtMatrixLayout.Create(type, (ulong)key.M, (ulong)key.K, key.Lda)
            : CublasLtMatrixLayout.Create(type, (ulong)key.K, (ulong)key.M, key.Lda);
        var d = CublasLtMatrixLayout.Create(type, (ulong)key.N, (ulong)key.M, key.Ldc);
        using var preference = CublasLtMatmulPreference.Create((ulong)workspace.Bytes);
        preference.Set(CublasLtPreferenceAttribute.ReductionSchemeMask, (uint)CublasLtReductionScheme.ComputeType);
        preference.Set(CublasLtPreferenceAttribute.MinAlignmentABytes, key.AlignA);
        preference.Set(CublasLtPreferenceAttribute.MinAlignmentBBytes, key.AlignB);
        preference.Set(CublasLtPreferenceAttribute.MinAlignmentCBytes, key.AlignC);
        preference.Set(CublasLtPreferenceAttribute.MinAlignmentDBytes, key.AlignC);
        CublasLtHeuristicResult[] found;
        try
        {
            found = handle.Heuristic(descriptor, a, b, d, d, preference, tuner is null ? 1 : CudaGemmTuner.Candidates);
        }
        catch (CudaException)
        {
            found = []; // NOT_SUPPORTED for this combination: fall back
        }

        if (found.Length == 0)
        {
            descriptor.Dispose();
            a.Dispose();
            b.Dispose();
            d.Dispose();
            return null;
        }

        return new Plan(descriptor, a, b, d, found[0], found, Tuned: false);
    }

    /// <summary>The largest power of two up to 256 that divides the address.</summary>
    private static uint Alignment(ulong address) => address == 0 ? 256u : (uint)Math.Min(256UL, address & (~address + 1));

    public void Dispose()
    {
        foreach (Plan? plan in plans.Values) plan?.Dispose();
        plans.Clear();
        handle.Dispose();
        tuner?.Dispose();
    }

    /// <summary>AlignA/AlignB are cuBLASLt's operands (our B and A); bias and aux alignments are keyed because the heuristic reads their pointers.</summary>
    private readonly record struct Key(CublasLtEpilogue Epilogue, bool TransposeA, bool TransposeB, int M, int N, int K,
        int Lda, int Ldb, int Ldc, uint AlignA, uint AlignB, uint AlignC, uint AlignBias, uint AlignAux);

    /// <summary>A shape's descriptors and algorithm: cuBLASLt's first candidate, or the tuner's pick once Tuned.</summary>
    private sealed record Plan(CublasLtMatmulDesc Descriptor, CublasLtMatrixLayout A, CublasLtMatrixLayout B,
        CublasLtMatrixLayout D, CublasLtHeuristicResult Algorithm, CublasLtHeuristicResult[] Candidates, bool Tuned)
        : IDisposable
    {
        public void Dispose()
        {
            Descriptor.Dispose();
            A.Dispose();
            B.Dispose();
            D.Dispose();
        }
    }
}
