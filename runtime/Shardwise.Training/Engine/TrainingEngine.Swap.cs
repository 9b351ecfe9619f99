using System;
using System.Globalization;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Offload;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Engine;

// ZeRO-Infinity's optimizer offload to NVMe: this rank's masters and moments in a swap file, stepped chunk by chunk.
public sealed partial class TrainingEngine
{
    private SwappedOptimizerState? _swap; // offload_optimizer.device = nvme: masters and moments live here, not in _master / Optimizer.State

    /// <summary>offload_optimizer.device = "nvme": the optimizer state is swapped to a file under nvme_path.</summary>
    public bool OptimizerStateOnNvme => _swap is not null;

    /// <summary>The swap, when <see cref="OptimizerStateOnNvme"/>: its file, chunks and buffers.</summary>
    public SwappedOptimizerState? OptimizerSwap => _swap;

    private static bool SwapsOptimizerState(DeepSpeedConfig config) => config.ZeroOptimization.OffloadOptimizer.Device == OffloadDevice.Nvme;

    /// <summary>Creates this rank's swap file with <paramref name="masters"/> (fp32, unrounded) and zero moments.</summary>
    private SwappedOptimizerState CreateSwap(ReadOnlySpan<float> masters) =>
        SwappedOptimizerState.Create(Config.ZeroOptimization.OffloadOptimizer, Config.ZeroOptimization.SubGroupSize, masters, _sharding.Communicator.Rank);

    /// <summary>
    /// The swapped Adam step: each chunk of masters and moments is read, updated with its gradients and rounded into
    /// <paramref name="working"/> (this rank's 16-bit working copy, or its rounded pieces at stages 2–3), then written back.
    /// </summary>
    private void StepSwapped(SwappedOptimizerState swap, ReadOnlySpan<float> gradients, Span<float> working, (double Beta1, double Beta2)? betas)
    {
        var scalars = Optimizer.NextChunkedStep(LastLearningRate, betas);
        _master = null; // a host copy taken for a checkpoint is stale from here on
        _hostMasterIsCurrent = false;
        using var pass = swap.Begin(SwapPassMode.Update);
        while (pass.Next(out long start, out var master, out var expAvg, out var expAvgSq))
        {
            int at = checked((int)start);
            AdamOptimizer.StepChunk(master, gradients.Slice(at, master.Length), expAvg, expAvgSq, scalars);
            StorageRounding.Round(master, working.Slice(at, master.Length), Storage);
        }
    }

    /// <summary>
    /// After the swapped masters changed outside a step (a checkpoint loaded, or the host copy from
    /// <see cref="MasterWeights"/> written): writes that copy back if it was taken, and rounds the masters into
    /// <paramref name="working"/>.
    /// </summary>
    private void SyncFromSwap(SwappedOptimizerState swap, Span<float> working)
    {
        if (_hostMasterIsCurrent && _master is not null) swap.WriteMasters(_master);
        using var pass = swap.Begin(SwapPassMode.Read);
        while (pass.Next(out long start, out var master, out _, out _))
            StorageRounding.Round(master, working.Slice(checked((int)start), master.Length), Storage);
    }

    /// <summary>A copy of the swapped masters in host memory, kept until the next step (see <see cref="MasterWeights"/>).</summary>
    private Span<float> SwappedMasterWeights(SwappedOptimizerState swap)
    {
        _master ??= new float[OwnedElements];
        swap.ReadMasters(_master);
        _hostMasterIsCurrent = true;
        return _master;
    }

    private string DescribeSwap(SwappedOptimizerState swap) => string.Create(CultureInfo.InvariantCulture,
        $"; masters and moments swapped to NVMe under {Config.ZeroOptimization.OffloadOptimizer.NvmePath} ({MemoryReport.Format(swap.FileBytes)} in {swap.Chunks:N0} chunks of up to {swap.ChunkElements:N0} elements through {swap.BufferCount} host buffer{(swap.BufferCount == 1 ? "" : "s")}{(swap.PipelineRead ? ", reads pipelined" : "")}{(swap.PipelineWrite ? ", writes pipelined" : "")})");
}
