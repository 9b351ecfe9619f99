using Shardwise.Ops;

namespace Shardwise.Cuda;

// Activation quantization (ITensorOps.ActivationQuantizer): before a covered Linear's product and before its weight
// gradient, quantize_rows.cu writes Q(x) into a scratch of the storage type, and the GEMM reads that instead of x.
// Q(x) is a pure function of x, so the backward's recomputed Q(x) is the forward's.
public sealed partial class CudaOps
{
    private IActivationQuantizer? activationQuantizer;
    private DeviceScratch? quantizedInputScratch;

    /// <summary>Threads per block of quantize_rows (one block per row).</summary>
    private const int QuantizeRowsThreads = 256;

    public IActivationQuantizer? ActivationQuantizer
    {
        get => activationQuantizer;
        set => activationQuantizer = value;
    }

    /// <summary>x's address, or that of Q(x) in the scratch when the quantizer covers this Linear's weight.</summary>
    private ulong LinearInput(ulong x, Slice weight, int rows, int inDim)
    {
        if (activationQuantizer is not { } quantizer || rows == 0 || inDim == 0 || !quantizer.Quantizes(weight)) return x;
        var (bits, asymmetric) = quantizer.GridOf(weight);
        quantizedInputScratch ??= new DeviceScratch(context, allocations, "quantized Linear inputs");
        ulong quantized = quantizedInputScratch.Ensure((long)rows * inDim * elementBytes);
        Kernel("quantize_rows").Launch(rows, QuantizeRowsThreads, 0, null, x, quantized, inDim, bits, asymmetric ? 1 : 0);
        return quantized;
    }
}
