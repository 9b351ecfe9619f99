using Shardwise.Training.Optim;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

// What the trainer prints about the step: where it runs and how the gradients get there.
public sealed partial class TrainingEngine
{
    /// <summary>Where the optimizer step runs and how the gradients get there, for the trainer's log.</summary>
    public string DescribeOptimizerStep() =>
        _deviceSlots is not null && _fused is not null && _deviceCollective is null
            ? $"fused in the backend on the ZeRO-{_sharding.Stage} partition (the whole model on one rank); gradients streamed into it on the device"
        : _deviceSlots is not null && _fused is not null
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"fused in the backend on this rank's ZeRO-{_sharding.Stage} pieces ({OwnedElements:N0} of {_program.Layout.TotalElements:N0} elements); gradients averaged by reduce-scatter during backward and parameters all-gathered{(_sharding.Stage == 3 ? " when needed" : "")} over {_deviceCollective!.Size} ranks in device memory (NCCL)")
        : PartitionsOnDevice
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"fused in the backend on this rank's ZeRO-1 partition ({_sharding.OwnedLength:N0} of {_program.Layout.TotalElements:N0} elements); gradients averaged by reduce-scatter and parameters all-gathered over {_deviceCollective!.Size} ranks in device memory (NCCL)")
        : GradientsReducedOnDevice ? $"fused in the backend; gradients averaged over {_deviceCollective!.Size} ranks in device memory (NCCL)"
        : FusedOptimizer ? "fused in the backend"
        : OneBit is not null ? DescribeOneBit(OneBit)
        : _sharding.Communicator.Size > 1 ? $"on the host; gradients reduced over {_sharding.Communicator.Size} ranks through host memory" + DescribeWire() + DescribeSwaps() + DescribeZeroPlusPlus()
        : "on the host" + DescribeSwaps();

    /// <summary>communication_data_type and the scaling around the sum, where the config sets them (qgZ's blocks replace them).</summary>
    private string DescribeWire()
    {
        var wire = Config.GradientCommunication;
        if (wire.IsDefault || (Config.ZeroOptimization.Stage == 3 && Config.ZeroOptimization.QuantizedGradients)) return "";
        return $" ({wire.Describe()})";
    }

    /// <summary>ZeRO++'s part of the exchange (several ranks at ZeRO-3), or nothing.</summary>
    private string DescribeZeroPlusPlus()
    {
        var zero = Config.ZeroOptimization;
        if (!UsesZeroPlusPlus(zero)) return "";
        var parts = new System.Collections.Generic.List<string>();
        if (zero.QuantizedWeights) parts.Add($"parameters gathered as int{QuantizedAllGather.Bits} blocks (qwZ)");
        if (zero.QuantizedGradients)
            parts.Add($"gradients reduced as int{QuantizedReduceScatter.Bits} blocks through {(zero.HpzPartitionSize > 1 ? "all-to-alls within the nodes, then between them" : "an all-to-all")} (qgZ)");
        if (zero.HpzPartitionSize > 1) parts.Add($"backward's gathers within groups of {zero.HpzPartitionSize} ranks from their copy (hpZ)");
        return "; ZeRO++: " + string.Join(", ", parts);
    }

    private string DescribeOneBit(IOneBitOptimizer oneBit) => oneBit is ZeroOneAdam ? DescribeZeroOne() : string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{oneBit.Name} on the host: {(oneBit is OneBitLamb ? "Lamb" : "Adam")} on gradients averaged over {_sharding.Communicator.Size} rank(s) for {oneBit.FreezeStep:N0} steps, then the variance frozen and ")
        + (_sharding.Communicator.Size > 1 ? "the momentum averaged with 1-bit compression and error feedback" : "each step on this rank's gradients (one rank: nothing to compress)")
        + (oneBit is OneBitLamb ? ", the trust ratio frozen and rescaled by the variance's drift" : "");

    private string DescribeZeroOne() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"ZeroOneAdam on the host over {_sharding.Communicator.Size} rank(s): until step {OneBit!.FreezeStep:N0} the variance takes gradients averaged in full at a doubling interval, ")
        + (_sharding.Communicator.Size > 1
            ? "the momentum the 1-bit compressed average between; then local steps, the accumulated update synchronised with 1-bit compression at a doubling interval"
            : "the momentum this rank's own between; then local steps (one rank: nothing to compress)");
}
