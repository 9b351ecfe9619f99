using System;
using System.Linq;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;
using Shardwise.Training.Optim;
using Shardwise.Training.Precision;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

/// <summary>What one call to <see cref="TrainingEngine.Step"/> did.</summary>
public enum StepOutcome
{
    /// <summary>Inside an accumulation window: gradients were kept, nothing updated.</summary>
    Accumulated,
    /// <summary>The optimizer updated the parameters.</summary>
    Updated,
    /// <summary>fp16 gradients overflowed: the update was skipped and the loss scale adjusted.</summary>
    SkippedOverflow,
}

/// <summary>
/// The engine a training loop drives, after DeepSpeed's: <c>Forward</c>, <c>Backward</c> (which scales the loss
/// by the loss scale and 1/GAS), and <c>Step</c> (which only updates at the accumulation boundary). It owns the
/// fp32 master weights, the optimizer, the schedule and the loss scaler; the compiled program owns the working
/// copy. In fp16/bf16 the working parameters and the gradients are rounded to 16-bit storage on the CPU too.
/// Across data-parallel ranks, <see cref="ZeroSharding"/> averages the gradients and, from ZeRO stage 1 on, keeps
/// master weights and Adam state for this rank's partition only.
/// <para>
/// When the backend implements <see cref="IFusedOptimizerOps"/> and the configuration allows it (see
/// <see cref="FusedOptimizer"/>), the masters and moments live in the backend instead and the step runs there: the
/// engine reads back only the overflow flag and the gradient norm, and keeps the loss scaler, the clip decision, the
/// schedule and the step count on the host, with the same arithmetic as its own step.
/// </para>
/// </summary>
public sealed partial class TrainingEngine
{
    private readonly CompiledLanguageModel<float> _program;
    private readonly ZeroSharding _sharding;
    private float[]? _master;   // this rank's fp32 masters; null in fp32 without offload, where the working copy is the master
                                // (fused step: a host copy of the backend's masters, made when asked for)
    private IFusedOptimizerOps? _fused;   // the backend runs the step and holds masters and moments; null: the host step
    private readonly IDeviceCollective? _deviceCollective; // fused step on several ranks: exchanges the arenas on the device
    private bool _hostMasterIsCurrent;    // fused step: _master was read from the backend since the last update
    private readonly float[]? _hostGradients; // offload_optimizer: the host-side (pinned on a GPU) copy of this rank's gradients
    private OverlappedAllReduce? _overlap; // stage 0 with overlap_comm: buckets reduced during backward
    private readonly SlotSharding? _slots;          // stage 2: per-slot pieces; gradients streamed into _accumulator
    private GradientStreamer? _gradientStreamer;    // stages 2–3 on the host: fills gradient buckets during backward
    private DeviceSlotSharding? _deviceSlots;       // stage 2 over NCCL: buckets, reductions and gathers on the device
    private readonly int[] _persistentSlots = Array.Empty<int>();   // stage 3: slots kept whole
    private readonly long[] _persistentOffsets = Array.Empty<long>(); // stage 3: where they live in the parameter arena
    private float[]? _accumulator;                  // stage 2 on the host: this rank's reduced gradient pieces
    private float[]? _rounded;                      // stages 2–3 on the host: 16-bit-rounded pieces (stage 3: the partitioned parameters); null when swapped
    private IOwnedPieces? _ownedPieces;             // stage 3 on the host: where gathers read the rounded pieces (_rounded or the parameter swap)
    private readonly GradientStreamingOps<float>? _streamingOps;
    private ParameterStreamer? _parameterStreamer;     // stage 3: gathers the slots the program asks for
    private int[]? _parameterPasses;                   // stage 3: a pipeline schedule's passes, which the prefetch follows
    private readonly ILearningRateSchedule _schedule;
    private readonly double _clip;
    private IModelParallelReduction? _modelParallel;
    private readonly WeightCompression? _compression; // compression_training: rewrites the working weights after each update
    private readonly NodeGroups? _nodes; // ZeRO++: hpZ's nodes (its copy's group, qgZ's two hops)

    private TrainingEngine(CompiledLanguageModel<float> program, DeepSpeedConfig config, BatchSizes batch, ZeroSharding sharding,
        SlotSharding? slots, AdamOptimizer optimizer, ILossScaler scaler, IOneBitOptimizer? oneBit, WeightCompression? compression, NodeGroups? nodes)
    {
        _nodes = nodes;
        _program = program;
        _compression = compression;
        // Activation quantization starts at its offset in applied updates, which this engine counts.
        if (program.Ops.ActivationQuantizer is ModelCompression.ActivationQuantizer activations) activations.AppliedUpdates = () => SchedulerStep;
        OneBit = oneBit;
        _sharding = sharding;
        _slots = slots;
        Config = config;
        Batch = batch;
        Optimizer = optimizer;
        LossScaler = scaler;
        Storage = config.Storage;
        _schedule = LearningRateScheduleFactory.Create(config);
        _clip = config.GradientClipping;
        OffloadOptimizer = config.ZeroOptimization.OffloadOptimizer.IsEnabled;
        if (slots is not null)
        {
            var streamingOps = program.Ops as GradientStreamingOps<float>
                ?? throw new InvalidOperationException("ZeRO-2/3 stream gradients: build the program over TrainingEngine.CreateBackend(config, ...)");
            _streamingOps = streamingOps;
            bool stage3 = config.ZeroOptimization.Stage == 3;
            // ZeRO-3 keeps slots under stage3_param_persistence_threshold whole; the prefetch staging fits beside them.
            var persistent = stage3 ? PersistentSlots(program.Layout, config.ZeroOptimization.Stage3ParamPersistenceThreshold) : new();
            long resident = streamingOps.ParameterPlan?.PoolElements ?? 0;
            foreach (int slot in persistent) resident += program.Layout.Slots[slot].Length;
            long prefetch = stage3 ? PrefetchElements(config.ZeroOptimization, resident, program.Layout.TotalElements) : 0;
            if (DeviceSlotExchangeFor(streamingOps, config, sharding, Storage) is { } exchange)
            {
                // The partition's masters are this rank's pieces of the initial parameters, unrounded; the backend keeps
                // them with the moments, the partition's gradients and its working copy.
                var masters = new float[slots.OwnedLength];
                slots.ExtractOwned(program.Parameters, masters);
                _deviceSlots = new DeviceSlotSharding(slots, streamingOps, exchange.Device, exchange.Collective, gathersDuringBackward: stage3, prefetch,
                    config.ZeroOptimization.OverlapComm);
                exchange.Device.CreateSlotExchange(Storage, _deviceSlots.StagingElements, masters);
                _fused = (IFusedOptimizerOps)exchange.Device;
                _deviceCollective = exchange.Collective;
                program.GradientListener = _deviceSlots;
            }
            else
            {
                StartHostStreaming(slots, streamingOps, masters: null);
            }
            if (stage3)
            {
                // From here on no rank holds the full parameters: the initial full buffer is dropped for the pool.
                streamingOps.StartParameterStreaming(persistent);
                _persistentSlots = persistent.ToArray();
                _persistentOffsets = new long[persistent.Count];
                for (int i = 0; i < persistent.Count; i++) _persistentOffsets[i] = streamingOps.ResidentSlice(persistent[i]).Offset;
                RefreshPersistentParameters();
                StartParameterStreamer(_deviceSlots is not null ? _deviceSlots : new HostParameterGatherer(slots, streamingOps, _ownedPieces!, prefetch));
            }
        }
        else if (FusedOptimizerFor(program, config, sharding, Storage) is { } fused)
        {
            _fused = fused;
            _deviceCollective = DeviceCollectiveFor(program, config, sharding);
            if (PartitionsOnDevice)
            {
                // NCCL's in-place reduce-scatter and all-gather take equal partitions: the arenas get the shard map's padding.
                ((IDeviceGradientOps)program.Ops).PadForPartitions(sharding.Map.PaddedElements);
                sharding.ExchangesInDeviceMemory = true;
            }
            // The masters take this rank's partition (everything at stage 0) unrounded; the working copy is rounded.
            fused.CreateOptimizerState(Storage, sharding.OwnedStart, sharding.OwnedLength);
        }
        else if (SwapsOptimizerState(config))
        {
            // NVMe: the masters go straight from the parameters to the swap file; no host copy is kept.
            _swap = CreateSwap(sharding.Owned(program.Parameters));
            StorageRounding.RoundInPlace(program.Parameters, Storage);
        }
        else if (Storage != StorageType.Float32 || OffloadOptimizer || compression is not null)
        {
            // With offload the masters live in host memory even in fp32, as they must on a GPU; with compression the
            // working copy is compressed, so even fp32 keeps its masters apart.
            _master = sharding.Owned(program.Parameters).ToArray();
            StorageRounding.RoundInPlace(program.Parameters, Storage);
        }
        if (OffloadOptimizer && slots is null) _hostGradients = new float[sharding.OwnedLength]; // stage 2's accumulator is already host-side
        // A 1-bit optimizer stops averaging gradients at its freeze step, so nothing may reduce them during backward.
        if (sharding.Stage == 0 && sharding.Communicator.Size > 1 && config.ZeroOptimization.OverlapComm && oneBit is null)
        {
            // On the device the buckets are queued on NCCL's stream while backward's kernels go on.
            _overlap = _fused is null ? HostOverlap() : OverlappedAllReduce.OnDevice((IDeviceGradientOps)program.Ops, _deviceCollective!, config.ZeroOptimization.ReduceBucketSize);
        }
        // communication_data_type "fp32" over 16-bit gradients on the device: the backend widens each exchange.
        if ((_deviceCollective is not null || _deviceSlots is not null) && Config.GradientCommunication.DataType == StorageType.Float32
            && GradientStreamingOps<float>.Backend(program.Ops) is IDeviceGradientOps wire)
            wire.GradientWire = StorageType.Float32;
        // A 16-bit wire through host memory holds its packed segments from here on (none when NCCL reduces on the device).
        if (_slots is not null && _deviceSlots is null) _slots.Reduction?.Reserve();
        else if (_slots is null && !GradientsReducedOnDevice) _sharding.Reduction.Reserve();
        program.ZeroGradients();
        _compression?.Apply(program.Parameters, 0, Storage);
    }

    /// <summary>
    /// DeepSpeed's <c>initialize</c>: wraps a compiled program whose parameters are already initialised. The program's
    /// batch must equal the config's micro-batch.
    /// </summary>
    /// <param name="communicator">The data-parallel group; null for one process. Every rank must start from the same parameters.</param>
    public static TrainingEngine Initialize(CompiledLanguageModel<float> program, DeepSpeedConfig config, ICommunicator? communicator = null)
    {
        communicator ??= new SingleProcessCommunicator();
        var batch = config.Resolve(communicator.Size);
        if (program.Batch != batch.MicroBatchPerGpu)
            throw new ArgumentException($"the program was compiled for micro-batch {program.Batch}, the config says train_micro_batch_size_per_gpu = {batch.MicroBatchPerGpu}");
        var zero = config.ZeroOptimization;
        if (zero.Stage == 3 && program.Ops is GradientStreamingOps<float> { PlansParameterStreaming: false })
            throw new InvalidOperationException("ZeRO-3 streams parameters: build the program over TrainingEngine.CreateBackend(config, ...)");
        var sharding = new ZeroSharding(new ShardMap(program.Layout, communicator.Size), communicator, zero.Stage, zero.ReduceBucketSize, config.GradientCommunication);
        var nodes = NodeGroups.For(zero, communicator); // hpZ's nodes, split from the world here on every rank
        var slots = zero.Stage >= 2
            ? new SlotSharding(program.Layout, communicator, zero.ReduceBucketSize, zero.AllgatherBucketSize, gathersDuringBackward: zero.Stage == 3,
                TransferQuantization.From(zero, config.Storage), nodes: nodes, communication: config.GradientCommunication)
            : null;
        var options = config.Optimizer is null ? new AdamOptions() : AdamOptions.FromConfig(config.Optimizer);
        Range[]? tensors = null;
        if (options.Lamb is not null || options.OneBit is not null || options.OneBitLamb is not null || options.ZeroOneAdam is not null)
        {
            // The config check reports this with its JSON path; a config built in code reaches it here.
            if (zero.Stage != 0)
                throw new NotSupportedException(options.Lamb is not null
                    ? $"Lamb needs whole parameter tensors for its trust ratio, and zero_optimization.stage = {zero.Stage} partitions the optimizer over ranks: use stage 0"
                    : $"{config.Optimizer!.Type} averages whole tensors with 1-bit compression on every rank, and zero_optimization.stage = {zero.Stage} partitions the optimizer over ranks: use stage 0");
            tensors = program.Layout.Slots.Select(slot => new Range(checked((int)slot.Offset), checked((int)(slot.Offset + slot.Length)))).ToArray();
        }

        var optimizer = new AdamOptimizer(checked((int)(slots?.OwnedLength ?? sharding.OwnedLength)), options, options.Lamb is null ? null : tensors);
        IOneBitOptimizer? oneBit = options.OneBit is { } settings ? new OneBitAdam(optimizer, settings.FreezeStep, communicator, tensors!)
            : options.OneBitLamb is { } lamb ? new OneBitLamb(optimizer, lamb, communicator, tensors!)
            : options.ZeroOneAdam is { } zeroOne ? new ZeroOneAdam(optimizer, zeroOne, communicator, tensors!)
            : null;
        return new TrainingEngine(program, config, batch, sharding, slots, optimizer, LossScalerFactory.Create(config), oneBit, CompressionFor(program, config), nodes);
    }

    /// <summary>
    /// The backend a program must be compiled over for this config: the CPU backend, or CUDA for
    /// <paramref name="device"/> cuda (or auto on a machine with a GPU), wrapped at ZeRO stages 2 and 3 so that
    /// parameter gradients (and parameters) live in the generator's small streaming pools instead of full-size
    /// buffers. CUDA without a usable GPU throws <see cref="BackendUnavailableException"/> with the driver's reason.
    /// With fp16.enabled or bf16.enabled the CUDA backend stores fp16 or bf16 on the device (fp32 compute), unless
    /// <paramref name="storage"/> names the storage type. The config's sparse_attention pattern, if any, is set on it.
    /// </summary>
    public static ITensorOps<float> CreateBackend(DeepSpeedConfig config, ParameterLayout layout, GradientPool pool, ParameterPool parameterPool,
        BackendKind device = BackendKind.Cpu, StorageType? storage = null)
    {
        // fp16/bf16 configs store 16-bit on a GPU (the CPU backend stays fp32; the engine rounds on the host either way).
        storage ??= config.Storage;
        ITensorOps<float> inner = Backends.Create(device, storage.Value);
        inner.AttentionSparsity = config.SparseAttention;
        inner.ActivationQuantizer = ModelCompression.ActivationQuantizer.For(config, layout);
        return config.ZeroOptimization.Stage switch
        {
            2 => new GradientStreamingOps<float>(inner, layout, pool),
            3 => new GradientStreamingOps<float>(inner, layout, pool, parameterPool),
            _ => inner,
        };
    }

    /// <summary>Elements each gradient reduction and parameter gather covers (the layout, padded to the partitioning).</summary>
    public long CommunicatedElements => _slots?.PaddedElements ?? (_sharding.Partitioned ? _sharding.Map.PaddedElements : _program.Layout.TotalElements);

    /// <summary>How this rank's partition maps onto the layout; null when every rank holds everything (stage 0).</summary>
    public PartitionScheme? Scheme => _slots is not null ? PartitionScheme.Slots : _sharding.Partitioned ? PartitionScheme.Flat : null;

    /// <summary>Elements of this rank's optimizer partition.</summary>
    public long OwnedElements => _slots?.OwnedLength ?? _sharding.OwnedLength;

    public ZeroSharding Sharding => _sharding;

    /// <summary>
    /// ZeRO-Offload (offload_optimizer.device = cpu): master weights and Adam moments live in host memory and the
    /// Adam step runs on the CPU; gradients are copied to the host and the updated 16-bit parameters back. On the
    /// CPU backend both sides are host memory, but the copies are the ones a GPU run makes.
    /// </summary>
    public bool OffloadOptimizer { get; }

    public DeepSpeedConfig Config { get; }

    public BatchSizes Batch { get; }

    public StorageType Storage { get; }

    public AdamOptimizer Optimizer { get; }

    /// <summary>Set when the config's optimizer is OneBitAdam, OneBitLamb or ZeroOneAdam: it steps with <see cref="Optimizer"/>'s state.</summary>
    public IOneBitOptimizer? OneBit { get; }

    public ILossScaler LossScaler { get; }

    public CompiledLanguageModel<float> Program => _program;

    /// <summary>
    /// Set when this rank holds part of a model split over ranks (pipeline or tensor parallel): the gradient norm and
    /// the overflow check then span the whole model.
    /// </summary>
    public IModelParallelReduction? ModelParallel
    {
        get => _modelParallel;
        set
        {
            if (value is not null && Optimizer.Options.Lamb is not null)
                throw new NotSupportedException("Lamb with a model split over ranks (pipeline or tensor parallel) is not supported yet: its trust ratio needs each tensor's norm over every rank that holds part of it");
            if (value is not null && OneBit is OneBitLamb)
                throw new NotSupportedException("OneBitLamb with a model split over ranks (pipeline or tensor parallel) is not supported yet: its state is per parameter tensor of one rank's layout (use OneBitAdam or ZeroOneAdam)");
            if (value is not null) LeaveFusedOptimizer(); // the hook counts gradients per element on the host
            _modelParallel = value;
        }
    }

    /// <summary>
    /// The gradient of <paramref name="slot"/> accumulated since the last update, as this rank holds it: the whole slot
    /// (stages 0–1, not yet reduced over the data group), or at stage 2 this rank's piece of it, already averaged over
    /// the data group (empty when the slot ends before the piece). Summing either over ranks that hold the same
    /// parameter (tied weights) gives the same result, since the data-parallel average is linear.
    /// </summary>
    public Span<float> AccumulatedGradient(int slot)
    {
        if (_slots is not null) return _slots.OwnedPiece(_accumulator, slot);
        ParameterSlot s = _program.Layout.Slots[slot];
        return _program.Gradients.Slice(checked((int)s.Offset), checked((int)s.Length));
    }

    /// <summary>Optimizer steps taken, skipped ones included (DeepSpeed's global_steps).</summary>
    public long GlobalStep { get; private set; }

    /// <summary>Micro-batches run since the start (DeepSpeed's micro_steps).</summary>
    public long MicroStep { get; private set; }

    /// <summary>Steps the schedule has advanced: skipped steps do not advance it.</summary>
    public long SchedulerStep => GlobalStep - LossScaler.SkippedSteps;

    /// <summary>The learning rate the next update will use.</summary>
    public double LearningRate => _schedule.LearningRate(SchedulerStep);

    /// <summary>The learning rate the last update used.</summary>
    public double LastLearningRate { get; private set; }

    /// <summary>
    /// The schedule's values for the update being taken (schedule step SchedulerStep − 1, GlobalStep already counts
    /// it): sets <see cref="LastLearningRate"/> and returns the Adam betas the schedule sets, if any. Every update
    /// path (host, fused, streaming) takes them here.
    /// </summary>
    private (double Beta1, double Beta2)? AdvanceSchedule()
    {
        LastLearningRate = _schedule.LearningRate(SchedulerStep - 1);
        return _schedule.Betas(SchedulerStep - 1);
    }

    /// <summary>The global gradient norm (unscaled) of the last update, before clipping.</summary>
    public double LastGradientNorm { get; private set; }

    public bool IsGradientAccumulationBoundary => (MicroStep + 1) % Batch.GradientAccumulationSteps == 0;

    /// <summary>Runs one micro-batch forward; returns its mean loss (unscaled).</summary>
    public float Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets) => _program.Forward(tokens, targets);

    /// <summary>Backward of the last forward: gradients of loss × loss scale / GAS are added to the accumulators.</summary>
    public void Backward()
    {
        bool overlapped = BeginBackward();
        try
        {
            _program.Backward(BackwardScale);
        }
        finally
        {
            if (overlapped) _program.GradientListener = null;
        }
        if (!overlapped) EndBackward();
    }

    /// <summary>
    /// <see cref="Forward"/> then <see cref="Backward"/> of one micro-batch, as the program's ForwardBackward: the loss
    /// op writes the logits' gradient as it computes the loss (one pass over the logits fewer). Returns the mean loss.
    /// </summary>
    public float ForwardBackward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets)
    {
        bool overlapped = BeginBackward();
        float loss;
        try
        {
            loss = _program.ForwardBackward(tokens, targets, BackwardScale);
        }
        finally
        {
            if (overlapped) _program.GradientListener = null;
        }
        if (!overlapped) EndBackward();
        return loss;
    }

    /// <summary>
    /// At an accumulation boundary with overlap_comm, starts the overlapped reduction and listens to the backward's
    /// gradients (the caller clears the listener after it); returns whether it did.
    /// </summary>
    private bool BeginBackward()
    {
        if (_overlap is null || !IsGradientAccumulationBoundary) return false;
        _overlap.Begin(_program.Layout.TotalElements);
        _program.GradientListener = _overlap;
        return true;
    }

    /// <summary>The backward's scale: the loss scale over the gradient accumulation steps.</summary>
    private float BackwardScale => (float)(LossScaler.Scale / Batch.GradientAccumulationSteps);

    /// <summary>
    /// Without an overlapped reduction. Stages 2–3: the last gradient bucket is partial; every rank reduces it here,
    /// so each micro-batch's gradients are in the accumulator when the backward returns.
    /// </summary>
    private void EndBackward()
    {
        _gradientStreamer?.EndBackward();
        _deviceSlots?.FlushReductions();
    }

    /// <summary>overlap_comm at ZeRO 0 through the communicator's host spans.</summary>
    private OverlappedAllReduce HostOverlap()
        => OverlappedAllReduce.OnHost(_sharding.Reduction, () => _program.Gradients, Config.ZeroOptimization.ReduceBucketSize, Storage);

    /// <summary>
    /// Gradient buckets whose reduction started while the last backward was still running: ZeRO 0 with overlap_comm
    /// (host or device), ZeRO 2–3 on the device.
    /// </summary>
    public int OverlappedBuckets => _overlap?.BucketsDuringBackward ?? _deviceSlots?.BucketsDuringBackward ?? 0;

    /// <summary>Ends a micro-step; at the accumulation boundary, unscales, checks overflow, clips and updates.</summary>
    public StepOutcome Step()
    {
        bool boundary = IsGradientAccumulationBoundary;
        MicroStep++;
        if (!boundary) return StepOutcome.Accumulated;

        if (_fused is not null) return StepFused(_fused); // ZeRO 2–3 on the device included
        if (_slots is not null) return StepStreamed();

        long forwardUpdates = SchedulerStep; // the updates the forwards of this step's gradients ran after
        var allGradients = _program.Gradients;
        StorageRounding.RoundInPlace(allGradients, Storage); // what 16-bit gradient storage would hold: fp16 overflows to ∞
        // A 1-bit optimizer past its freeze step averages the momentum, compressed, instead of the gradients.
        bool localGradients = OneBit is { LocalGradients: true };
        if (_overlap is not null) _overlap.Finish(); // most buckets were reduced during backward
        else if (!localGradients) _sharding.ReduceGradients(allGradients);
        Span<float> gradients = _sharding.Owned(allGradients);
        // Pruned weights' gradients are zero, as w·mask's are; topk's mask scores take theirs first.
        _compression?.MaskGradients(gradients, _sharding.OwnedStart, forwardUpdates, _compression.Learned is null ? default : MasterWeights);
        if (_hostGradients is not null)
        {
            gradients.CopyTo(_hostGradients); // device → host
            gradients = _hostGradients;
        }

        // Like DeepSpeed, only fp16 checks for overflow: each rank scans every element of its gradients, then the
        // ranks agree (MAX) so that all skip together.
        bool overflow = _sharding.AnyRank(Storage == StorageType.Float16 && OverflowCheck.HasInfOrNaN(gradients));
        if (ModelParallel is not null) overflow = ModelParallel.Any(overflow);
        double scale = LossScaler.Scale; // the scale backward used; Update may grow it for the next window
        bool skip = LossScaler.Update(overflow);
        GlobalStep++;
        if (skip)
        {
            _program.ZeroGradients();
            _compression?.Learned?.DiscardGradients();
            return StepOutcome.SkippedOverflow;
        }

        // With local gradients the clip sees this rank's own norm (over its whole model, when the model is split), as
        // DeepSpeed's 1-bit optimizers do once they stop averaging.
        double ownSquares = ModelParallel?.SumOfSquares(gradients, _sharding.OwnedStart) ?? GradientClipping.SumOfSquares(gradients);
        double sumOfSquares = localGradients ? ownSquares : _sharding.SumOverRanks(ownSquares);
        // A stage's scores count once (reduced over its data ranks already), then the stages' sums are added.
        sumOfSquares += ReduceMaskScoreGradients(forwardUpdates, partitioned: _sharding.Partitioned);
        if (ModelParallel is not null) sumOfSquares = ModelParallel.Sum(sumOfSquares);
        UnscaleAndClip(gradients, scale, sumOfSquares);

        var betas = AdvanceSchedule();
        StepMaskScores(forwardUpdates, scale, sumOfSquares, betas);
        if (_swap is not null) StepSwapped(_swap, gradients, intoPieces: false, _sharding.Owned(_program.Parameters), betas); // host → device per chunk
        else if (OneBit is not null)
        {
            OneBit.Step(MasterWeights, gradients, LastLearningRate, betas);
            if (_master is not null) StorageRounding.Round(_master, _sharding.Owned(_program.Parameters), Storage); // host → device
        }
        else
        {
            Optimizer.Step(MasterWeights, gradients, LastLearningRate, betas);
            if (_master is not null) StorageRounding.Round(_master, _sharding.Owned(_program.Parameters), Storage); // host → device
        }
        _sharding.GatherParameters(_program.Parameters);
        _compression?.Apply(_program.Parameters, SchedulerStep, Storage);
        _program.ZeroGradients();
        return StepOutcome.Updated;
    }

    /// <summary>
    /// DeepSpeed fuses unscaling and clipping into one multiply: the norm is taken on the still-scaled gradients
    /// (<paramref name="scaledSumOfSquares"/>, already summed over ranks) and combined = scale · max(1, (norm/scale + ε)/clip).
    /// </summary>
    private void UnscaleAndClip(Span<float> gradients, double scale, double scaledSumOfSquares)
    {
        double combined = UnscaleAndClipDivisor(scale, scaledSumOfSquares);
        if (combined != 1.0) GradientClipping.Scale(gradients, (float)(1.0 / combined));
    }

    /// <summary>Sets <see cref="LastGradientNorm"/> and returns what the gradients are divided by (see <see cref="UnscaleAndClip"/>).</summary>
    private double UnscaleAndClipDivisor(double scale, double scaledSumOfSquares)
    {
        double scaledNorm = Math.Sqrt(scaledSumOfSquares);
        LastGradientNorm = scaledNorm / scale;
        double combined = scale;
        if (_clip > 0)
        {
            double clipFactor = (scaledNorm / scale + GradientClipping.Epsilon) / _clip;
            if (clipFactor > 1) combined *= clipFactor;
        }
        return combined;
    }
}
