using System.Globalization;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.Training.Engine;

/// <summary>
/// Bytes the engine actually holds, by DeepSpeed's categories. <paramref name="workingBytes"/> is the element size of
/// the working copy of parameters, gradients and activations: 4 on the CPU backend, which computes in float32 even
/// when it rounds values to 16-bit storage; 2 on a GPU in fp16/bf16, activations included: the generator plans the
/// kernels' fp32 per-row statistics (LayerNorm mean and rstd) at two elements per value, so a 16-bit activation arena
/// holds them at its own element size (docs/cuda.md). Master weights exist only in mixed precision.
/// </summary>
public sealed record MemoryReport(long Parameters, long Gradients, long MasterWeights, long OptimizerStates, long Activations, long Buffers)
{
    public long Total => Parameters + Gradients + MasterWeights + OptimizerStates + Activations + Buffers;

    /// <param name="ownedElements">Elements whose master weights and Adam state this rank holds (its ZeRO partition); null = all.</param>
    /// <param name="bufferBytes">Communication buffers held besides the planned ones.</param>
    public static MemoryReport For(ParameterLayout layout, ActivationPlan plan, int batch, StorageType storage, int workingBytes,
        long? ownedElements = null, long bufferBytes = 0, bool masterInHost = false, long? gradientBytes = null, long? parameterBytes = null)
    {
        long psi = layout.TotalElements;
        long owned = ownedElements ?? psi;
        int width = workingBytes;
        bool mixed = storage != StorageType.Float32;
        return new MemoryReport(
            Parameters: parameterBytes ?? psi * width,
            Gradients: gradientBytes ?? psi * width,
            MasterWeights: mixed || masterInHost ? owned * sizeof(float) : 0,
            OptimizerStates: 2 * owned * sizeof(float),
            Activations: batch * plan.ArenaElementsPerSample * width,
            Buffers: batch * plan.IndexElementsPerSample * sizeof(int) + bufferBytes);
    }

    public string Describe() => string.Format(CultureInfo.InvariantCulture,
        "params {0} grads {1} master {2} optim {3} act {4} buf {5}",
        Format(Parameters), Format(Gradients), Format(MasterWeights), Format(OptimizerStates), Format(Activations), Format(Buffers));

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture) + "GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + "MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("0.0", CultureInfo.InvariantCulture) + "KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + "B",
    };
}
