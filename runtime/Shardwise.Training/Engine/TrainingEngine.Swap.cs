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
    private SwappedParameterPieces? _parameterSwap; // offload_param.device = nvme (ZeRO-3): the rounded pieces live here, not in _rounded

    /// <summary>offload_param.device = "nvme": ZeRO-3's rounded parameter pieces are swapped to a file under its nvme_path.</summary>
    public SwappedParameterPieces? ParameterSwap => _parameterSwap;

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
    /// this rank's 16-bit working copy <paramref name="working"/> (stages 0–1), or into its rounded pieces when
    /// <paramref name="intoPieces"/> (stages 2–3), then written back.
    /// </summary>
    private void StepSwapped(SwappedOptimizerState swap, ReadOnlySpan<float> gradients, bool intoPieces, Span<float> working, (double Beta1, double Beta2)? betas)
    {
        var scalars = Optimizer.NextChunkedStep(LastLearningRate, betas);
        _master = null; // a host copy taken for a checkpoint is stale from here on
        _hostMasterIsCurrent = false;
        using var pass = swap.Begin(SwapPassMode.Update);
        while (pass.Next(out long start, out var master, out var expAvg, out var expAvgSq))
        {
            int at = checked((int)start);
            Optimizer.StepChunk(master, gradients.Slice(at, master.Length), expAvg, expAvgSq, scalars);
            RoundChunk(start, master, intoPieces, working);
        }
    }

    /// <summary>
    /// After the swapped masters changed outside a step (a checkpoint loaded, or the host copy from
    /// <see cref="MasterWeights"/> written): writes that copy back if it was taken, and rounds the masters into
    /// <paramref name="working"/> (stages 0–1) or the rounded pieces (<paramref name="intoPieces"/>, stages 2–3).
    /// </summary>
    private void SyncFromSwap(SwappedOptimizerState swap, bool intoPieces, Span<float> working)
    {
        if (_hostMasterIsCurrent && _master is not null) swap.WriteMasters(_master);
        using var pass = swap.Begin(SwapPassMode.Read);
        while (pass.Next(out long start, out var master, out _, out _)) RoundChunk(start, master, intoPieces, working);
    }

    /// <summary>
    /// Rounds a chunk of masters from element <paramref name="start"/> to where this rank's 16-bit copy lives: its
    /// rounded pieces (<paramref name="intoPieces"/>, stages 2–3) or the working copy (stages 0–1).
    /// </summary>
    private void RoundChunk(long start, ReadOnlySpan<float> masters, bool intoPieces, Span<float> working)
    {
        if (intoPieces) StoreRoundedPieces(start, masters);
        else StorageRounding.Round(masters, working.Slice(checked((int)start), masters.Length), Storage);
    }

    /// <summary>Rounds masters from element <paramref name="start"/> into this rank's rounded pieces: the host array, or the parameter swap.</summary>
    private void StoreRoundedPieces(long start, ReadOnlySpan<float> masters)
    {
        if (_parameterSwap is not null) _parameterSwap.WriteRounded(start, masters, Storage);
        else StorageRounding.Round(masters, _rounded.AsSpan(checked((int)start), masters.Length), Storage);
    }

    /// <summary>A copy of the swapped masters in host memory, kept until the next step (see <see cref="MasterWeights"/>).</summary>
    private Span<float> SwappedMasterWeights(SwappedOptimizerState swap)
    {
        _master ??= new float[OwnedElements];
        swap.ReadMasters(_master);
        _hostMasterIsCurrent = true;
        return _master;
    }

    /// <summary>What the trainer's optimizer-step line adds for the NVMe swaps ("" without any).</summary>
    private string DescribeSwaps() => (_swap is null ? "" : DescribeSwap(_swap))
        + (_parameterSwap is null ? "" : $"; parameter pieces swapped to NVMe under {Config.ZeroOptimization.OffloadParam.NvmePath} ({MemoryReport.Format(_parameterSwap.FileBytes)}, read a piece at a time when gathered)");

    private string DescribeSwap(SwappedOptimizerState swap) => string.Create(CultureInfo.InvariantCulture,
        $"; masters and moments swapped to NVMe under {Config.ZeroOptimization.OffloadOptimizer.NvmePath} ({MemoryReport.Format(swap.FileBytes)} in {swap.Chunks:N0} chunks of up to {swap.ChunkElements:N0} elements through {swap.BufferCount} host buffer{(swap.BufferCount == 1 ? "" : "s")}{(swap.PipelineRead ? ", reads pipelined" : "")}{(swap.PipelineWrite ? ", writes pipelined" : "")})");
}
