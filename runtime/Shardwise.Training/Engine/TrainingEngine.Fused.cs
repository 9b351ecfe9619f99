using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

// The optimizer step in the backend (IFusedOptimizerOps): when it is taken, and ZeRO 0–2 with the exchanges in device memory.
public sealed partial class TrainingEngine
{
    /// <summary>
    /// The backend's own optimizer step when it has one and the configuration is one it covers: ZeRO stage 0 or 1 on
    /// one data-parallel rank, or on several whose communicator works in device memory on the backend's GPU
    /// (<see cref="DeviceCollectiveFor"/>: stage 0 averages the gradient arena there, stage 1 reduce-scatters it and
    /// all-gathers the parameters, each rank stepping its partition), without offload, at a storage type the backend
    /// supports. Other multi-rank jobs take the host step because ZeroSharding exchanges through host spans (the
    /// exchange would move the whole arenas anyway). Stage 2 has a device path of its own
    /// (<see cref="DeviceSlotExchangeFor"/>); stage 3 streams through host memory. A model split over ranks leaves the
    /// fused step when <see cref="ModelParallel"/> is set. Only the optimizers of <see cref="HasFusedStep"/> have one.
    /// </summary>
    private static IFusedOptimizerOps? FusedOptimizerFor(CompiledLanguageModel<float> program, DeepSpeedConfig config, ZeroSharding sharding, StorageType storage)
        => program.Ops is IFusedOptimizerOps fused && sharding.Stage <= 1 && HasFusedStep(config.Optimizer?.Type) && !Compresses(config)
           && (sharding.Communicator.Size == 1 || DeviceCollectiveFor(program, config, sharding) is not null)
           && !config.ZeroOptimization.OffloadOptimizer.IsEnabled && fused.SupportsFusedOptimizer(storage)
            ? fused
            : null;

    /// <summary>
    /// ZeRO-2/3 on the device: the backend under the streaming decorator keeps the partition and the fused step
    /// (<see cref="IDeviceSlotExchangeOps"/>), without offload, on one rank (no collective) or on several whose
    /// data-parallel communicator is a device collective on its GPU. Null otherwise: stages 2–3 then stream through host
    /// memory. offload_param (stage 3) takes the host path too: there the partitioned parameters live in host memory and
    /// only the residency pool, the slots kept whole and the prefetch staging stay on the device; the optimizer step then
    /// runs on the host as well (DeepSpeed would keep it on the GPU: more device memory is freed here, at the host step's
    /// speed).
    /// </summary>
    private static (IDeviceSlotExchangeOps Device, IDeviceCollective? Collective)? DeviceSlotExchangeFor(GradientStreamingOps<float> ops,
        DeepSpeedConfig config, ZeroSharding sharding, StorageType storage)
    {
        if (ops.Inner is not IDeviceSlotExchangeOps device || ops.Inner is not IFusedOptimizerOps fused || !fused.SupportsFusedOptimizer(storage)
            || !HasFusedStep(config.Optimizer?.Type)
            || config.ZeroOptimization.OffloadOptimizer.IsEnabled || config.ZeroOptimization.OffloadParam.IsEnabled
            || Compresses(config) // compression rewrites the gathered working copy on the host
            || UsesZeroPlusPlus(config.ZeroOptimization)) // qwZ, qgZ and hpZ are built over the host collectives
            return null;
        if (sharding.Communicator.Size == 1) return (device, null);
        return sharding.Communicator is IDeviceCollective collective && device.SharesDevice(collective) && ReducesOnDevice(config) ? (device, collective) : null;
    }

    /// <summary>ZeRO++ at stage 3: quantized weight gathers (qwZ), quantized gradient reduction (qgZ) or hpZ's node-group copy.</summary>
    internal static bool UsesZeroPlusPlus(ZeroOptimizationConfig zero)
        => zero.Stage == 3 && (zero.QuantizedWeights || zero.QuantizedGradients || zero.HpzPartitionSize > 1);

    /// <summary>
    /// Whether the optimizer has a step in <see cref="IFusedOptimizerOps"/>: Adam and AdamW (<see cref="IFusedOptimizerOps.AdamStep"/>),
    /// Lion (<see cref="IFusedOptimizerOps.LionStep"/>) and Adagrad (<see cref="IFusedOptimizerOps.AdagradStep"/>). Lamb
    /// (a trust ratio per tensor) and the 1-bit optimizers (host-side compression) take the host step.
    /// </summary>
    internal static bool HasFusedStep(OptimizerType? type) =>
        type is null or OptimizerType.Adam or OptimizerType.AdamW or OptimizerType.Lion or OptimizerType.Adagrad;

    /// <summary>
    /// fp32 moments per owned element the step holds: Lion in the backend allocates its momentum alone (exp_avg_sq is
    /// created by the first Adam or Adagrad step); every other case holds two.
    /// </summary>
    internal static int FusedMoments(OptimizerType? type, bool stepOnDevice) => stepOnDevice && type == OptimizerType.Lion ? 1 : 2;

    /// <summary>
    /// The data-parallel communicator as a device collective on the backend's own GPU (NCCL), when it is one: then the
    /// arenas are exchanged where they live and no arena crosses the bus. Null otherwise (MPI, or another device).
    /// </summary>
    private static IDeviceCollective? DeviceCollectiveFor(CompiledLanguageModel<float> program, DeepSpeedConfig config, ZeroSharding sharding)
        => sharding.Communicator.Size > 1 && sharding.Communicator is IDeviceCollective collective
           && program.Ops is IDeviceGradientOps ops && ops.SharesDevice(collective) && ReducesOnDevice(config)
            ? collective
            : null;

    /// <summary>
    /// Whether NCCL's average of the gradient arena (in the storage type, or widened to fp32) is the reduction the config
    /// asks for (<see cref="GradientCommunicationConfig.NcclAveragesAsAsked"/>): a 16-bit communication_data_type other
    /// than the storage type is reduced through host memory instead (<see cref="GradientReduction"/>).
    /// </summary>
    internal static bool ReducesOnDevice(DeepSpeedConfig config) => config.GradientCommunication.NcclAveragesAsAsked(config.Storage);

    /// <summary>
    /// True while the optimizer step runs in the backend (<see cref="IFusedOptimizerOps"/>): ZeRO stage 0 or 1, one
    /// data-parallel rank or several exchanging their arenas on the device (NCCL), no offload, no model split over
    /// ranks, and Adam, AdamW, Lion or Adagrad (<see cref="HasFusedStep"/>; Lamb and the 1-bit optimizers take the host step). The results equal the host step's (bit for bit on
    /// the CPU reference, <see cref="FusedAdamReference"/>).
    /// </summary>
    public bool FusedOptimizer => _fused is not null;

    /// <summary>True while several ranks reduce their gradients in device memory before the fused step (<see cref="FusedOptimizer"/>).</summary>
    public bool GradientsReducedOnDevice => _fused is not null && _deviceCollective is not null;

    /// <summary>ZeRO 1 on the device: gradients reduce-scattered, this rank's partition stepped, parameters all-gathered.</summary>
    private bool PartitionsOnDevice => GradientsReducedOnDevice && _sharding.Stage == 1;

    /// <summary>
    /// Fused step: the backend's moments, read into new arrays. <see cref="Optimizer"/>'s host moment arrays are left
    /// alone, so on this path they are never allocated (see <see cref="AdamState"/>): a checkpoint's copy is garbage
    /// once written.
    /// </summary>
    private (float[] ExpAvg, float[] ExpAvgSq) ReadFusedMoments(IFusedOptimizerOps fused)
    {
        var expAvg = new float[Optimizer.State.Length];
        var expAvgSq = new float[Optimizer.State.Length];
        fused.ReadMoments(expAvg, expAvgSq);
        return (expAvg, expAvgSq);
    }

    /// <summary>
    /// ZeRO-2 on the device: the gradient pool and the partition's gradients, the full parameters and the partition's
    /// working copy, all at the backend's element size, and the bucket staging; masters and moments of the partition.
    /// </summary>
    private MemoryReport DeviceSlotMemory()
    {
        int width = WorkingElementBytes(_program.Ops);
        long owned = OwnedElements;
        // ZeRO-3: the parameter arena is the residency pool and the slots kept whole, not the full layout.
        long parameters = _streamingOps!.StreamsParameters ? _streamingOps.ParameterArenaElements : _program.Layout.TotalElements;
        return MemoryReport.For(_program.Layout, _program.Plan, _program.Batch, Storage, width, owned,
            bufferBytes: _deviceSlots!.StagingElements * width,
            gradientBytes: (_streamingOps.PoolElements + owned) * width,
            parameterBytes: (parameters + owned) * width, stateOnDevice: true, moments: FusedMoments(Config.Optimizer?.Type, stepOnDevice: true));
    }

    /// <summary>
    /// The boundary step of the fused path: the backend measures the gradients (one small readback), the engine decides
    /// as in <see cref="Step"/>, and the backend updates. One rank, or several exchanging in device memory (see
    /// <see cref="FusedOptimizerFor"/> and <see cref="DeviceSlotExchangeFor"/>).
    /// </summary>
    private StepOutcome StepFused(IFusedOptimizerOps fused)
    {
        // Several ranks at ZeRO 0–1: the gradients are averaged on the device now, over the whole arena (ZeRO 0) or into
        // this rank's partition (ZeRO 1), as the host path averages them. ZeRO 2–3 averaged theirs during backward.
        if (_deviceCollective is not null && _deviceSlots is null)
        {
            var deviceOps = (IDeviceGradientOps)_program.Ops;
            if (PartitionsOnDevice) deviceOps.ReduceScatterGradients(_deviceCollective, _sharding.Map.PartitionElements);
            else if (_overlap is not null) _overlap.Finish(); // overlap_comm: most buckets were queued during backward
            else deviceOps.AverageGradients(_deviceCollective);
        }
        bool fp16 = Storage == StorageType.Float16;
        GradientMeasurement measured = fused.MeasureGradients(checkOverflow: fp16);
        // Averaged whole on the device (ZeRO 0), every rank measures the same bits, so no flag is exchanged; a
        // partition's flag is (only fp16 checks, as DeepSpeed does: the others have nothing to agree on).
        bool sameOnEveryRank = _deviceCollective is not null && _sharding.Stage == 0;
        bool overflow = sameOnEveryRank ? measured.Overflow : fp16 && _sharding.AnyRank(measured.Overflow);
        double scale = LossScaler.Scale;
        bool skip = LossScaler.Update(overflow);
        GlobalStep++;
        if (skip)
        {
            ZeroFusedGradients();
            return StepOutcome.SkippedOverflow;
        }

        double combined = UnscaleAndClipDivisor(scale, _sharding.SumOverRanks(measured.ScaledSumOfSquares));
        var betas = AdvanceSchedule();
        float multiplier = combined != 1.0 ? (float)(1.0 / combined) : 1f;
        if (Optimizer.Options.Lion) fused.LionStep(Optimizer.NextFusedLionStep(LastLearningRate, multiplier, betas));
        else if (Optimizer.Options.Adagrad) fused.AdagradStep(Optimizer.NextFusedAdagradStep(LastLearningRate, multiplier, betas));
        else fused.AdamStep(Optimizer.NextFusedStep(LastLearningRate, multiplier, betas));
        GatherPartitionsOnDevice();
        _hostMasterIsCurrent = false;
        ZeroFusedGradients();
        return StepOutcome.Updated;
    }

    /// <summary>The program's gradients, and at ZeRO 2–3 on the device the partition's too (their accumulator).</summary>
    private void ZeroFusedGradients()
    {
        if (_deviceSlots is not null) ((IDeviceSlotExchangeOps)_fused!).ZeroPartitionGradients();
        _program.ZeroGradients();
    }

    /// <summary>
    /// ZeRO 1–3 on the device: every rank's partition of the working parameters goes to every rank (at ZeRO-3 only the
    /// slots kept whole; the others are gathered when the program needs them).
    /// </summary>
    private void GatherPartitionsOnDevice()
    {
        if (_deviceSlots is not null && _streamingOps!.StreamsParameters) RefreshPersistentParameters(); // the rest is gathered when needed
        else if (_deviceSlots is not null) _deviceSlots.GatherParameters();
        else if (PartitionsOnDevice) ((IDeviceGradientOps)_program.Ops).AllGatherParameters(_deviceCollective!, _sharding.Map.PartitionElements);
    }

    /// <summary>
    /// Moves masters and moments from the backend to the host step's arrays and frees the backend's copy; from here on
    /// the engine steps on the host. In fp32 the working parameters are the masters already.
    /// </summary>
    private void LeaveFusedOptimizer()
    {
        if (_fused is null) return;
        if (_deviceSlots is not null)
        {
            // ZeRO-2 and ZeRO-3 go back to streaming through host memory (between accumulation windows: the partition's
            // gradients are zero then).
            var masters = new float[OwnedElements];
            _fused.ReadMasterWeights(masters);
            _fused.ReadMoments(Optimizer.State.ExpAvg, Optimizer.State.ExpAvgSq);
            _fused.ReleaseOptimizerState();
            _fused = null;
            long prefetch = _deviceSlots.PrefetchElements;
            _deviceSlots = null;
            StartHostStreaming(_slots!, _streamingOps!, masters);
            // ZeRO-3 then gathers from the host's rounded pieces, into a staging of the same size (the slots kept whole
            // are already in place).
            if (_parameterStreamer is not null) StartParameterStreamer(new HostParameterGatherer(_slots!, _streamingOps!, _ownedPieces!, prefetch));
            return;
        }
        if (Storage != StorageType.Float32)
        {
            _master ??= new float[_sharding.OwnedLength];
            _fused.ReadMasterWeights(_master);
        }
        _fused.ReadMoments(Optimizer.State.ExpAvg, Optimizer.State.ExpAvgSq); // the host step takes over the moments
        _fused.ReleaseOptimizerState();
        _fused = null;
        _sharding.ExchangesInDeviceMemory = false; // the host step exchanges through ZeroSharding's buffers
        if (_overlap is not null) _overlap = HostOverlap();
    }
}
