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
    /// <summary>Host and device bytes (what an out-of-memory error is about); <see cref="Nvme"/> is not counted.</summary>
    public long Total => Parameters + Gradients + MasterWeights + OptimizerStates + Activations + Buffers;

    /// <summary>Bytes swapped to NVMe (offload_optimizer.device = "nvme": masters and moments), outside <see cref="Total"/>.</summary>
    public long Nvme { get; init; }

    /// <summary>
    /// The part of <see cref="Total"/> held in host arrays outside the backend's arenas: masters and moments of a step
    /// that runs on the host, the host copy of the gradients, ZeRO-2/3's reduced and rounded pieces, host communication
    /// and prefetch buffers, the NVMe swap's buffers. On a GPU this is the job's CPU memory (pain point: "how much CPU
    /// RAM does offload need"); the rest, <see cref="Device"/>, is GPU memory. On the CPU backend both are host memory.
    /// </summary>
    public long Host { get; init; }

    /// <summary>The backend's arenas and, when the step runs in the backend, its masters and moments.</summary>
    public long Device => Total - Host;

    /// <param name="ownedElements">Elements whose master weights and Adam state this rank holds (its ZeRO partition); null = all.</param>
    /// <param name="bufferBytes">Communication buffers held besides the planned ones.</param>
    /// <param name="nvmeBytes">Bytes of the NVMe swap file: when positive, masters and moments are there and count 0 here.</param>
    /// <param name="hostArrayBytes">Bytes of the other categories held in host arrays (buffers, pieces), for <see cref="Host"/>.</param>
    /// <param name="stateOnDevice">The optimizer step runs in the backend: masters and moments are device memory.</param>
    /// <param name="moments">fp32 moments per owned element: 2 (Adam's exp_avg and exp_avg_sq), 1 for Lion in the backend,
    /// which allocates exp_avg alone (the host step keeps Lion's zero exp_avg_sq, as its checkpoints hold it).</param>
    public static MemoryReport For(ParameterLayout layout, ActivationPlan plan, int batch, StorageType storage, int workingBytes,
        long? ownedElements = null, long bufferBytes = 0, bool masterInHost = false, long? gradientBytes = null, long? parameterBytes = null,
        long nvmeBytes = 0, long hostArrayBytes = 0, bool stateOnDevice = false, int moments = 2)
    {
        bool swapped = nvmeBytes > 0;
        long psi = layout.TotalElements;
        long owned = ownedElements ?? psi;
        int width = workingBytes;
        bool mixed = storage != StorageType.Float32;
        long master = !swapped && (mixed || masterInHost) ? owned * sizeof(float) : 0;
        long momentBytes = swapped ? 0 : moments * owned * sizeof(float);
        // Checkpointed inputs kept in host memory ([Checkpoint(InputsOnHost = true)]) are activations held by the host.
        long hostActivations = plan.HostBytes(batch, width);
        return new MemoryReport(
            Parameters: parameterBytes ?? psi * width,
            Gradients: gradientBytes ?? psi * width,
            MasterWeights: master,
            OptimizerStates: momentBytes,
            Activations: batch * plan.ArenaElementsPerSample * width + hostActivations,
            Buffers: batch * plan.IndexElementsPerSample * sizeof(int) + bufferBytes)
        {
            Nvme = nvmeBytes,
            Host = (stateOnDevice ? 0 : master + momentBytes) + hostArrayBytes + hostActivations,
        };
    }

    /// <summary>Where the bytes are on a GPU: "device X, host Y" (and the NVMe swap, if any).</summary>
    public string DescribePlacement() =>
        $"device {Format(Device)}, host {Format(Host)}" + (Nvme > 0 ? $", NVMe {Format(Nvme)}" : "");

    public string Describe() => string.Format(CultureInfo.InvariantCulture,
        "params {0} grads {1} master {2} optim {3} act {4} buf {5}",
        Format(Parameters), Format(Gradients), Format(MasterWeights), Format(OptimizerStates), Format(Activations), Format(Buffers))
        + (Nvme > 0 ? " nvme " + Format(Nvme) : "");

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture) + "GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + "MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("0.0", CultureInfo.InvariantCulture) + "KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + "B",
    };
}
