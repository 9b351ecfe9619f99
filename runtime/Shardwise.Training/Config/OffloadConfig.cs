namespace Shardwise.Training.Config;

public enum OffloadDevice
{
    None,
    Cpu,

    /// <summary>ZeRO-Infinity: a swap file under nvme_path.</summary>
    Nvme,
}

/// <summary>
/// zero_optimization.offload_optimizer / offload_param. NVMe (ZeRO-Infinity) swaps the optimizer state
/// (Offload/SwappedOptimizerState) or ZeRO-3's partitioned parameters (Offload/SwappedParameterPieces) to a file under
/// nvme_path.
/// </summary>
public sealed record OffloadConfig
{
    public required OffloadDevice Device { get; init; }

    public required bool PinMemory { get; init; }

    public required int BufferCount { get; init; }

    /// <summary>Parameter offload only (elements per buffer).</summary>
    public required long BufferSize { get; init; }

    /// <summary>Parameter offload only (elements kept in CPU memory).</summary>
    public required long MaxInCpu { get; init; }

    /// <summary>Optimizer offload only: fraction of the optimizer step run on the CPU.</summary>
    public required double Ratio { get; init; }

    public required bool FastInit { get; init; }

    /// <summary>NVMe only: the directory the swap file goes in (it must exist and be writable).</summary>
    public string? NvmePath { get; init; }

    /// <summary>NVMe optimizer offload: read the next chunk of state while the current one is updated.</summary>
    public bool PipelineRead { get; init; }

    /// <summary>NVMe optimizer offload: let a chunk's write-back run while the next chunk is updated.</summary>
    public bool PipelineWrite { get; init; }

    public bool IsEnabled => Device != OffloadDevice.None;

    public static OffloadConfig Disabled(bool forParameters) => new()
    {
        Device = OffloadDevice.None,
        PinMemory = ConfigDefaults.PinMemory,
        BufferCount = forParameters ? ConfigDefaults.ParamOffloadBufferCount : ConfigDefaults.OptimizerOffloadBufferCount,
        BufferSize = ConfigDefaults.ParamOffloadBufferSize,
        MaxInCpu = ConfigDefaults.ParamOffloadMaxInCpu,
        Ratio = ConfigDefaults.OffloadRatio,
        FastInit = ConfigDefaults.FastInit,
    };

    internal static OffloadConfig Read(JsonSection zero, string key, bool forParameters)
    {
        var section = zero.Section(key);
        var device = ParseDevice(section, section.String("device") ?? "none", forParameters);
        // nvme_path and the pipelining knobs only act with nvme; DeepSpeed accepts them with cpu too.
        var nvmePath = section.String("nvme_path");
        var defaults = Disabled(forParameters);
        var config = defaults with
        {
            Device = device,
            PinMemory = section.Bool("pin_memory") ?? defaults.PinMemory,
            BufferCount = section.Int32("buffer_count", AutoRule.NotAllowed, min: 1) ?? defaults.BufferCount,
            NvmePath = nvmePath,
            PipelineRead = section.Bool("pipeline_read") ?? false,
            PipelineWrite = section.Bool("pipeline_write") ?? false,
        };
        if (device == OffloadDevice.Nvme && string.IsNullOrWhiteSpace(nvmePath))
        {
            section.Error("nvme_path", $"is required with device \"nvme\": the directory the {(forParameters ? "parameters are" : "optimizer state is")} swapped to");
        }

        if (forParameters)
        {
            config = config with
            {
                BufferSize = section.Integer("buffer_size", AutoRule.NotAllowed, min: 1) ?? defaults.BufferSize,
                MaxInCpu = section.Integer("max_in_cpu", AutoRule.NotAllowed, min: 0) ?? defaults.MaxInCpu,
            };
        }
        else
        {
            config = config with
            {
                Ratio = section.Number("ratio", AutoRule.NotAllowed) ?? defaults.Ratio,
                FastInit = section.Bool("fast_init") ?? defaults.FastInit,
            };
            if (config.Ratio is <= 0 or > 1)
            {
                section.Error("ratio", $"{JsonSection.Format(config.Ratio)} is out of range: must be in (0, 1]");
            }
            else if (config.Ratio < 1)
            {
                section.Warning("ratio", UnsupportedFeaturePolicy.WarningMessage("partial optimizer offload (the whole optimizer state is offloaded)"));
            }
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }

    private static OffloadDevice ParseDevice(JsonSection section, string name, bool forParameters)
    {
        // DeepSpeed's enum is lower-case; real configs also write "None", so compare case-insensitively.
        switch (name.ToLowerInvariant())
        {
            case "none":
                return OffloadDevice.None;
            case "cpu":
                return OffloadDevice.Cpu;
            case "nvme":
                return OffloadDevice.Nvme;
            default:
                section.Error("device", $"unknown offload device \"{name}\"; use \"none\", \"cpu\" or \"nvme\"");
                return OffloadDevice.None;
        }
    }
}
