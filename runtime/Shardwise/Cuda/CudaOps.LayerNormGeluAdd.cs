using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// LayerNorm (layernorm.cu, also fused with the residual add before it), GeLU (gelu.cu) and the elementwise add
/// (add.cu), forward and backward; the constant scale of a residual branch (scale.cu).
/// </summary>
public sealed partial class CudaOps
{
    // ---- LayerNorm, GeLU, add ------------------------------------------------------------------------------------

    public void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        Begin();
        ulong xa = Address(x, (long)rows * dim, nameof(x)), ga = Address(gamma, dim, nameof(gamma));
        ulong ba = Address(beta, dim, nameof(beta)), ya = Address(y, (long)rows * dim, nameof(y));
        ulong ma = StatisticsAddress(mean, rows, nameof(mean)), ra = StatisticsAddress(rstd, rows, nameof(rstd));
        if (rows == 0) return;
        // The residual LayerNorm with no second operand (a null b) is a plain LayerNorm.
        LaunchResidualLayerNorm(xa, 0, 0, ga, ba, ya, ma, ra, rows, dim);
    }

    /// <summary>
    /// residual = a + b and y = LayerNorm(residual), or y = LayerNorm(a) where b is null: the vector kernel
    /// (residual_layernorm_forward_v{1..4}, each row read once into registers) where the rows are aligned 16-byte
    /// vectors, else the scalar one.
    /// </summary>
    private void LaunchResidualLayerNorm(ulong a, ulong b, ulong residual, ulong gamma, ulong beta, ulong y,
        ulong mean, ulong rstd, int rows, int dim)
    {
        int vectors = LayerNormVectorsPerLane(dim, a | b | residual | gamma | beta | y);
        CudaFunction kernel = vectors > 0
            ? KernelNamed($"residual_layernorm_forward_v{vectors}_{StorageSuffix}")
            : Kernel("residual_layernorm_forward");
        kernel.Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null, a, b, residual, gamma, beta, y, mean, rstd,
            rows, dim);
    }

    public void AddLayerNorm(Slice a, Slice b, Slice sum, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim)
    {
        Begin();
        long n = (long)rows * dim;
        ulong aa = Address(a, n, nameof(a)), ba = Address(b, n, nameof(b)), sa = Address(sum, n, nameof(sum));
        ulong ga = Address(gamma, dim, nameof(gamma)), bea = Address(beta, dim, nameof(beta)), ya = Address(y, n, nameof(y));
        ulong ma = StatisticsAddress(mean, rows, nameof(mean)), ra = StatisticsAddress(rstd, rows, nameof(rstd));
        if (rows == 0) return;
        // One pass instead of add then LayerNorm: the sum is rounded to storage, stored, and normalised as stored,
        // which is what the two kernels compute. Each lane reads a[i] and b[i] before it writes sum[i] (the vector
        // kernels: the whole row's share before the first store), so sum may be either operand.
        LaunchResidualLayerNorm(aa, ba, sa, ga, bea, ya, ma, ra, rows, dim);
    }

    public void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx,
        Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, (long)rows * dim, nameof(x)), ga = Address(gamma, dim, nameof(gamma));
        ulong ma = StatisticsAddress(mean, rows, nameof(mean)), ra = StatisticsAddress(rstd, rows, nameof(rstd));
        ulong dya = Address(dy, (long)rows * dim, nameof(dy)), dxa = Address(dx, (long)rows * dim, nameof(dx));
        ulong dga = Address(dGamma, dim, nameof(dGamma)), dba = Address(dBeta, dim, nameof(dBeta));
        if (rows == 0 || dim == 0) return;
        int chunks = PartialChunks(rows);
        ulong partials = partialScratch.Ensure(2L * chunks * dim * sizeof(float));
        int vectors = LayerNormVectorsPerLane(dim, xa | ga | dya | dxa);
        if (vectors > 0)
        {
            // One pass over x and dy for dx and the stage-1 partials (a block per chunk), then the chunk sums.
            KernelNamed($"layernorm_backward_fused_v{vectors}_{StorageSuffix}").Launch(chunks, RowWarpThreads, 0, null,
                xa, ga, ma, ra, dya, dxa, partials, rows, dim, accumulate ? 1 : 0);
            Kernel("layernorm_backward_dparams_reduce").Launch(Blocks(dim, 32), ColumnSumBlock, 0, null,
                partials, chunks, dga, dba, dim);
            return;
        }
        // Parameter gradients first: they read dy, which dx may overwrite when the program computes in place.
        Kernel("layernorm_backward_dparams_partial").Launch(new CudaDim3((uint)Blocks(dim, 32), (uint)chunks),
            new CudaDim3(32, 8), 0, null, xa, ma, ra, dya, partials, rows, dim);
        Kernel("layernorm_backward_dparams_reduce").Launch(Blocks(dim, 32), ColumnSumBlock, 0, null,
            partials, chunks, dga, dba, dim);
        Kernel("layernorm_backward_dx").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            xa, ga, ma, ra, dya, dxa, rows, dim, accumulate ? 1 : 0);
    }

    /// <summary>
    /// The 16-byte vectors per lane of the LayerNorm vector kernels (residual_layernorm_forward_v{1..4},
    /// layernorm_backward_fused_v{1..4}) for rows of <paramref name="dim"/>, or 0 where they cannot run: the row is
    /// not whole 16-byte vectors, is wider than 4 vectors per lane (1024 16-bit or 512 fp32 elements), or one of the
    /// row pointers OR-ed into <paramref name="addresses"/> is off a 16-byte boundary.
    /// </summary>
    private int LayerNormVectorsPerLane(int dim, ulong addresses)
    {
        int perVector = 16 / elementBytes;
        if (dim % perVector != 0 || (addresses & 15) != 0) return 0;
        int vectors = (dim / perVector + 31) / 32;
        return vectors <= MaxLayerNormVectors ? vectors : 0;
    }

    public void Gelu(Slice x, Slice y, long count)
    {
        Begin();
        ulong xa = Address(x, count, nameof(x)), ya = Address(y, count, nameof(y));
        if (count == 0) return;
        LaunchGelu(xa, ya, count);
    }

    private void LaunchGelu(ulong x, ulong y, long count)
    {
        // bias_gelu_forward with no bias: y = GeLU(x) over count × 1 elements.
        Kernel("bias_gelu_forward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0,
            null, x, KernelArgument.Null, KernelArgument.Null, y, count, 1);
    }

    public void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate)
    {
        Begin();
        ulong xa = Address(x, count, nameof(x)), dya = Address(dy, count, nameof(dy)), dxa = Address(dx, count, nameof(dx));
        if (count == 0) return;
        LaunchGeluBackward(xa, dya, dxa, count, accumulate);
    }

    /// <summary>dx (=|+=) dy · GeLU′(x); elementwise, so dx may be dy.</summary>
    private void LaunchGeluBackward(ulong x, ulong dy, ulong dx, long count, bool accumulate) =>
        Kernel("gelu_backward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            x, dy, dx, count, accumulate ? 1 : 0);

    public void Add(Slice a, Slice b, Slice y, long count)
    {
        Begin();
        ulong aa = Address(a, count, nameof(a)), ba = Address(b, count, nameof(b)), ya = Address(y, count, nameof(y));
        if (count == 0) return;
        Kernel("add").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            aa, ba, ya, count);
    }

    public void AddBackward(Slice dy, Slice dx, long count, bool accumulate)
    {
        Begin();
        ulong dya = Address(dy, count, nameof(dy)), dxa = Address(dx, count, nameof(dx));
        if (count == 0) return;
        Kernel("add_backward").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            dya, dxa, count, accumulate ? 1 : 0);
    }

    public void Scale(Slice x, Slice y, float factor, long count)
    {
        Begin();
        ulong xa = Address(x, count, nameof(x)), ya = Address(y, count, nameof(y));
        if (count == 0 || (factor == 1f && xa == ya)) return;
        Kernel("scale").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null, xa, ya, factor, count);
    }
}
