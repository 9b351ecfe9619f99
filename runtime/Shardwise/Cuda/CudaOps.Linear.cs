using System;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>Linear, LinearGelu and their backward passes, and the bias ops: cuBLAS/cuBLASLt GEMMs with their epilogues (CudaEpilogueGemm) and the bias kernels (bias.cu).</summary>
public sealed partial class CudaOps
{
    // ---- Linear and bias ------------------------------------------------------------------------------------------

    public void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong ya = Address(y, (long)rows * outDim, nameof(y));
        ulong? ba = bias is { } b ? Address(b, outDim, nameof(bias)) : null;
        if (rows == 0 || outDim == 0) return;
        LaunchLinear(LinearInput(xa, weight, rows, inDim), wa, ba, ya, rows, inDim, outDim);
    }

    /// <summary>
    /// y = x · Wᵀ + bias in one cuBLASLt matmul with the BIAS epilogue; without a bias, or where cuBLASLt has no
    /// algorithm for it, cuBLAS GemmEx and the bias as its own elementwise pass.
    /// </summary>
    private void LaunchLinear(ulong x, ulong weight, ulong? bias, ulong y, int rows, int inDim, int outDim)
    {
        if (bias is { } fused && epilogueGemm.TryLinear(x, weight, fused, y, rows, inDim, outDim)) return;
        Product(false, true, rows, outDim, inDim, 1f, x, inDim, weight, inDim, 0f, y, outDim);
        if (bias is { } biasAddress) LaunchAddBias(y, biasAddress, rows, outDim);
    }

    public void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias,
        int rows, int inDim, int outDim, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong dya = Address(dy, (long)rows * outDim, nameof(dy));
        ulong? dxa = dx is { } d ? Address(d, (long)rows * inDim, nameof(dx)) : null;
        ulong dwa = Address(dWeight, (long)outDim * inDim, nameof(dWeight));
        ulong? dba = dBias is { } db ? Address(db, outDim, nameof(dBias)) : null;
        if (rows == 0) return;
        if (dxa is { } dxAddress)
            Product(false, false, rows, inDim, outDim, 1f, dya, outDim, wa, inDim, accumulate ? 1f : 0f, dxAddress, inDim);
        ParameterGradients(LinearInput(xa, weight, rows, inDim), dya, dwa, dba, rows, inDim, outDim);
    }

    /// <summary>
    /// pre = x · Wᵀ + bias and y = GeLU(pre) in one cuBLASLt matmul with the GELU_AUX_BIAS epilogue (pre is the aux
    /// output); where cuBLASLt cannot (no algorithm, or outDim not a multiple of 8), Linear then Gelu.
    /// </summary>
    public void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong pa = Address(preActivation, (long)rows * outDim, nameof(preActivation));
        ulong ya = Address(y, (long)rows * outDim, nameof(y));
        ulong? ba = bias is { } b ? Address(b, outDim, nameof(bias)) : null;
        if (rows == 0 || outDim == 0) return;
        xa = LinearInput(xa, weight, rows, inDim);
        if (epilogueGemm.TryLinearGelu(xa, wa, ba ?? 0, pa, ya, rows, inDim, outDim)) return;
        LaunchLinear(xa, wa, ba, pa, rows, inDim, outDim);
        LaunchGelu(pa, ya, (long)rows * outDim);
    }

    /// <summary>
    /// dPre = (dy · W) ⊙ GeLU′(pre) as one cuBLASLt matmul with the DGELU epilogue (x's gradient never stored), then the
    /// parameter gradients as <see cref="LinearBackward"/>; where cuBLASLt cannot, GemmEx into dPre and gelu_backward
    /// in place over it.
    /// </summary>
    public void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation,
        Slice dWeight, Slice? dBias, int rows, int inDim, int outDim)
    {
        Begin();
        ulong pa = Address(preActivation, (long)rows * inDim, nameof(preActivation));
        ulong xa = Address(x, (long)rows * inDim, nameof(x)), wa = Address(weight, (long)outDim * inDim, nameof(weight));
        ulong dya = Address(dy, (long)rows * outDim, nameof(dy));
        ulong dpa = Address(dPreActivation, (long)rows * inDim, nameof(dPreActivation));
        ulong dwa = Address(dWeight, (long)outDim * inDim, nameof(dWeight));
        ulong? dba = dBias is { } db ? Address(db, outDim, nameof(dBias)) : null;
        if (rows == 0) return;
        if (!epilogueGemm.TryGeluInputGradient(dya, wa, pa, dpa, rows, inDim, outDim))
        {
            Product(false, false, rows, inDim, outDim, 1f, dya, outDim, wa, inDim, 0f, dpa, inDim);
            LaunchGeluBackward(pa, dpa, dpa, (long)rows * inDim, accumulate: false);
        }

        ParameterGradients(LinearInput(xa, weight, rows, inDim), dya, dwa, dba, rows, inDim, outDim);
    }

    /// <summary>
    /// dW += dyᵀ · x and dBias += Σ_rows dy. With a bias, one cuBLASLt matmul with the BGRADB epilogue computes both:
    /// the column sums ride on the GEMM that reads dy anyway, instead of the two-stage column-sum kernels reading dy
    /// once more. cuBLASLt writes the bias gradient (it has no beta), so it goes to fp32 scratch and is added into
    /// dBias by add_bias_backward_reduce over one chunk (one rounding, as the column-sum path's last stage); where
    /// cuBLASLt has no algorithm, GemmEx and the column-sum kernels. On the H200 (cuBLASLt 13) that is every fp16/bf16
    /// call: BGRADB is taken for fp32 operands only (docs/gpu-results.md, run 10; with a 16-bit bias gradient it is
    /// offered but measured slower than the column sums, run 12).
    /// </summary>
    private void ParameterGradients(ulong x, ulong dy, ulong dWeight, ulong? dBias, int rows, int inDim, int outDim)
    {
        if (dBias is { } dBiasAddress)
        {
            ulong columnSums = partialScratch.Ensure((long)outDim * sizeof(float));
            if (epilogueGemm.TryWeightGradientWithBias(dy, x, dWeight, columnSums, rows, inDim, outDim, accumulate: true))
            {
                AddColumnSums(columnSums, 1, dBiasAddress, outDim);
                return;
            }
        }

        Product(true, false, outDim, inDim, rows, 1f, dy, outDim, x, inDim, 1f, dWeight, inDim);
        if (dBias is { } address) LaunchBiasBackward(dy, address, rows, outDim);
    }

    public void AddBias(Slice y, Slice bias, int rows, int dim)
    {
        Begin();
        ulong ya = Address(y, (long)rows * dim, nameof(y)), ba = Address(bias, dim, nameof(bias));
        if (rows == 0 || dim == 0) return;
        LaunchAddBias(ya, ba, rows, dim);
    }

    public void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim)
    {
        Begin();
        ulong dya = Address(dy, (long)rows * dim, nameof(dy)), dba = Address(dBias, dim, nameof(dBias));
        if (rows == 0 || dim == 0) return;
        LaunchBiasBackward(dya, dba, rows, dim);
    }

    private void LaunchAddBias(ulong y, ulong bias, int rows, int dim)
    {
        long n = (long)rows * dim;
        Kernel("add_bias").Launch(kernels.ElementwiseBlocks(n), CudaKernelSet.ElementwiseThreads, 0, null,
            y, bias, (long)rows, dim);
    }

    /// <summary>
    /// dBias += Σ_rows dy in two fixed-order stages (no atomics): chunk partial sums, then their sum. Stage 1 gives
    /// each thread a 16-byte vector's worth of adjacent columns (<see cref="BiasColumnsPerThread"/>) and splits a
    /// chunk's rows over <see cref="BiasRowLanes"/> row lanes: a warp reads 512 contiguous bytes of a row per load and
    /// each thread keeps several loads in flight, where one thread per column with 2-byte loads left the H200 at about
    /// half its bandwidth. The partials stay [chunks][dim] fp32, so stage 2 and the scratch size are unchanged.
    /// </summary>
    private void LaunchBiasBackward(ulong dy, ulong dBias, int rows, int dim)
    {
        if (biasGradientByProduct)
        {
            // Σ_rows dy = dyᵀ · 1 in fp32 (cuBLAS reads dy once, split-K partial sums in fp32), then one rounding.
            ulong sums = partialScratch.Ensure((long)dim * sizeof(float));
            gemm.MultiplyToFloat(true, false, dim, 1, rows, 1f, dy, dim, Ones(rows), 1, 0f, sums, 1);
            AddColumnSums(sums, 1, dBias, dim);
            return;
        }

        int chunks = PartialChunks(rows);
        ulong partials = partialScratch.Ensure((long)chunks * dim * sizeof(float));
        int blockColumns = BiasColumnThreads * BiasColumnsPerThread;
        Kernel("add_bias_backward_partial").Launch(new CudaDim3((uint)Blocks(dim, blockColumns), (uint)chunks),
            BiasPartialBlock, 0, null, dy, partials, rows, dim);
        AddColumnSums(partials, chunks, dBias, dim);
    }

    /// <summary>
    /// dBias[j] += Σ_c partials[c, j] (fp32 partials, [chunks][dim]) with one rounding to storage: the last stage of
    /// every bias-gradient path (one chunk where cuBLAS already summed the rows).
    /// </summary>
    private void AddColumnSums(ulong partials, int chunks, ulong dBias, int dim) =>
        Kernel("add_bias_backward_reduce").Launch(Blocks(dim, 32), ColumnSumBlock, 0, null, partials, chunks, dBias, dim);

    /// <summary>
    /// At least <paramref name="count"/> ones in the storage type on the device (the right operand of the bias-gradient
    /// product), uploaded when the vector grows: once per run at a fixed batch.
    /// </summary>
    private ulong Ones(int count)
    {
        if (onesCount < count)
        {
            onesScratch.Ensure((long)count * elementBytes);
            int length = (int)(onesScratch.Bytes / elementBytes);
            var ones = new float[length];
            Array.Fill(ones, 1f);
            if (Storage == StorageType.Float32)
            {
                onesScratch.Memory.Upload<float>(ones);
            }
            else
            {
                var bits = new ushort[length];
                StorageConversion.Narrow(ones, bits, Storage);
                onesScratch.Memory.Upload<ushort>(bits);
            }

            onesCount = length;
        }

        return onesScratch.Memory.Pointer;
    }

    private int onesCount;

    /// <summary>Stage-1 block of the bias gradient: 32 column threads × 8 row lanes (SW_BIAS_MAX_THREADS = 256).</summary>
    private const int BiasColumnThreads = 32, BiasRowLanes = 8;

    private static readonly CudaDim3 BiasPartialBlock = new(BiasColumnThreads, BiasRowLanes);

    /// <summary>Columns per stage-1 thread: one 16-byte vector of the storage type (SW_BIAS_COLUMNS).</summary>
    private int BiasColumnsPerThread => 16 / elementBytes;

    /// <summary>
    /// C = alpha · op(A) · op(B) + beta · C (row-major): through cuBLASLt with the tuned algorithm where GEMM tuning is
    /// on (<see cref="CudaOpsOptions.GemmTuning"/>), else, or where cuBLASLt has none, cublasGemmEx.
    /// </summary>
    private void Product(bool transposeA, bool transposeB, int m, int n, int k, float alpha, ulong a, int lda, ulong b,
        int ldb, float beta, ulong c, int ldc)
    {
        if (epilogueGemm.Tunes &&
            epilogueGemm.TryMultiply(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
            return;
        gemm.Multiply(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
