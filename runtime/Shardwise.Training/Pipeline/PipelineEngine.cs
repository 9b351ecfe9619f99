using System;
using System.Diagnostics;
using System.Linq;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// Trains one rank's part of a partitioned model: one pipeline stage for one tensor rank, in one data-parallel replica.
/// A <see cref="TrainingEngine"/> over the stage program owns the optimizer, loss scaling and ZeRO (its communicator is
/// the data-parallel group, so ZeRO-1 and ZeRO-2 shard within it; at ZeRO-2 the stage must be compiled over
/// <see cref="TrainingEngine.CreateBackend"/>, which streams its gradients through its gradient pool); this class runs the 1F1B schedule (gradient_accumulation_steps
/// micro-batches per batch) through <see cref="PipelineExecutor"/>: activations and gradients move to the neighbouring
/// stages over the pipeline group, tied gradients are summed over their holders, and the gradient norm and overflow
/// check span the model-parallel group (<see cref="ModelParallelNorm"/>). Each micro-batch in flight has its own
/// activation window, the schedule's buffer slot.
/// </summary>
public sealed class PipelineEngine : IPipelineStageOperations
{
    private const int GradientTagBase = 16384; // activation tags are micro-batch mod 16384, gradient tags above

    private readonly CompiledStage<float> _stage;
    private readonly ParallelGroups _groups;
    private readonly SliceExchange _exchange; // only the boundary slice crosses the bus on a device backend
    private readonly System.Collections.Generic.IReadOnlyList<PipeInstruction> _program;
    private readonly int _tokensPerMicroBatch;
    private readonly int[] _tokens;  // this batch's ids and targets, every micro-batch (copied: spans cannot be kept)
    private readonly int[] _targets;
    private readonly Plans.TokenKeep?[] _tokenKeeps; // each micro-batch's random-LTD draw, from its forward to its backward
    private readonly CommunicatorTensorParallelGroup? _tensor;
    private readonly bool _partActivations; // pipe_partitioned: each tensor rank sends its part of the boundary activation
    private readonly bool _partGradients;   // grad_partitioned: likewise the gradient sent back
    private double _lossSum;
    private double _receiveSeconds;
    private StepOutcome _outcome;

    public PipelineEngine(CompiledStage<float> stage, DeepSpeedConfig config, ParallelGroups groups)
    {
        var topology = groups.Topology;
        StagePlan plan = stage.Stage;
        if (plan.Index != groups.Coordinates.Stage || plan.Count != topology.Pipeline || plan.Tensor != topology.Tensor)
            throw new ArgumentException($"rank {groups.World.Rank} is stage {groups.Coordinates.Stage} of {topology.Pipeline} with tensor degree " +
                $"{topology.Tensor}, but was given the program of stage {plan.Index} of {plan.Count} with tensor degree {plan.Tensor}");
        _stage = stage;
        _groups = groups;
        _exchange = new SliceExchange(stage.Ops);
        if (plan.Tensor > 1 && TrainingEngine.Compresses(config))
            throw new NotSupportedException($"compression_training is not supported with tensor parallelism yet (tensor degree {plan.Tensor}): its quantization groups and masks span whole tensors, which tensor ranks split");
        if (plan.Tensor > 1) stage.TensorParallel = _tensor = new CommunicatorTensorParallelGroup(stage.Ops, groups.Tensor);
        bool parts = _tensor is not null && !plan.BoundaryDiffersAcrossTensorRanks;
        _partActivations = parts && config.Pipeline.PipePartitioned;
        _partGradients = parts && config.Pipeline.GradPartitioned;
        Engine = TrainingEngine.Initialize(stage, config, groups.Data);
        Engine.ModelParallel = new ModelParallelNorm(plan, groups.Coordinates.TensorRank, groups.ModelParallel);
        MicroBatches = Engine.Batch.GradientAccumulationSteps;
        _program = OneFOneBSchedule.Build(topology.Pipeline, plan.Index, MicroBatches);
        // ZeRO-3 prefetches the parameters of the pass that comes next in this stage's schedule (F F B … on early stages).
        Engine.FollowParameterPasses(_program.Where(i => i is Pipeline.Forward or Pipeline.Backward).Select(i => i is Pipeline.Forward ? 0 : 1).ToArray());
        ActivationWindows = OneFOneBSchedule.BufferCount(topology.Pipeline, plan.Index, MicroBatches);
        stage.UseActivationWindows(ActivationWindows);
        _tokensPerMicroBatch = stage.Batch * stage.SequenceLength;
        _tokens = new int[TokensPerBatch];
        _targets = new int[TokensPerBatch];
        _tokenKeeps = new Plans.TokenKeep?[MicroBatches];
    }

    public TrainingEngine Engine { get; }

    /// <summary>
    /// Progressive layer drop: each micro-batch's forward and backward run the layers it draws for (step, micro-batch),
    /// the same on every stage and tensor rank. Null: every layer runs.
    /// </summary>
    public LayerDrop.ProgressiveLayerDrop? LayerDrop { get; set; }

    /// <summary>
    /// Random-LTD: each micro-batch's forward and backward run the <c>[TokenDrop]</c> layers on the tokens drawn for
    /// (step, micro-batch), the same on every stage and tensor rank. Null: every token runs.
    /// </summary>
    public TokenDrop.RandomLtd? TokenDrop { get; set; }

    public CompiledStage<float> Stage => _stage;

    public ParallelGroups Groups => _groups;

    /// <summary>Micro-batches per batch (m = gradient_accumulation_steps).</summary>
    public int MicroBatches { get; }

    /// <summary>Activation windows this stage holds: one per micro-batch in flight (the schedule's buffer slots).</summary>
    public int ActivationWindows { get; }

    /// <summary>The engine's memory report with the activation and index arenas counted once per window.</summary>
    public MemoryReport Memory => PerActivationWindow(Engine.Memory, ActivationWindows, _stage.Batch, _stage.Plan);

    /// <summary>
    /// A stage's memory with <paramref name="windows"/> activation windows: the activation arena once per window, and
    /// the token-index arena (counted once in <paramref name="one"/>'s buffers) once per window too. The trainer's
    /// report and <c>plan</c>'s prediction both take it.
    /// </summary>
    public static MemoryReport PerActivationWindow(MemoryReport one, int windows, int microBatch, ActivationPlan activations)
    {
        long indices = (long)microBatch * activations.IndexElementsPerSample * sizeof(int);
        return one with { Activations = one.Activations * windows, Buffers = one.Buffers + (windows - 1) * indices };
    }

    /// <summary>Token ids (and targets) one batch of this data replica takes: m × micro-batch × sequence.</summary>
    public int TokensPerBatch => MicroBatches * _tokensPerMicroBatch;

    /// <summary>The outcome of the last batch's optimizer step.</summary>
    public StepOutcome LastOutcome => _outcome;

    /// <summary>Wall-clock seconds of the last batch on this rank.</summary>
    public double LastStepSeconds { get; private set; }

    /// <summary>Seconds of the last batch this rank spent waiting in receives from its neighbours.</summary>
    public double LastReceiveSeconds { get; private set; }

    /// <summary>
    /// The share of the last batch this rank sat blocked in receives from a neighbour. A lower bound of the bubble:
    /// waits inside blocking sends and the end-of-step collectives are not counted (bench/Shardwise.PipelineBench
    /// measures those too, as "all waits").
    /// </summary>
    public double LastIdleFraction => LastStepSeconds > 0 ? LastReceiveSeconds / LastStepSeconds : 0;

    /// <summary>
    /// Trains one batch: <paramref name="tokens"/> and <paramref name="targets"/> hold this data replica's m micro-batches
    /// one after the other (every stage gets them: the first uses the ids, the last the targets). Returns the mean loss
    /// over the micro-batches and the data replicas, known to every rank.
    /// </summary>
    public double TrainBatch(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets)
    {
        if (tokens.Length != TokensPerBatch || targets.Length != TokensPerBatch)
            throw new ArgumentException($"a batch of {MicroBatches} micro-batches of {_stage.Batch} × {_stage.SequenceLength} tokens has " +
                $"{TokensPerBatch} ids and targets; got {tokens.Length} and {targets.Length}");
        var clock = Stopwatch.StartNew();
        tokens.CopyTo(_tokens);
        targets.CopyTo(_targets);
        _lossSum = 0;
        _receiveSeconds = 0;
        try
        {
            PipelineExecutor.Run(_program, this);
        }
        finally
        {
            _stage.LayerKeep = null; // evaluation between batches runs every layer, on every token
            _stage.TokenKeep = null;
            Array.Clear(_tokenKeeps);
        }

        // Only the last stage knows the loss; tensor rank 0 of each replica's last stage contributes its share.
        bool reports = _stage.IsLast && _groups.Coordinates.TensorRank == 0;
        Span<double> loss = [reports ? _lossSum / MicroBatches / _groups.Topology.Data : 0];
        _groups.World.AllReduceSum(loss);
        LastStepSeconds = clock.Elapsed.TotalSeconds;
        LastReceiveSeconds = _receiveSeconds;
        return loss[0];
    }

    /// <summary>Nothing to move: every stage holds the whole batch's ids and targets (see <see cref="TrainBatch"/>).</summary>
    public void LoadMicroBatch(int microBatch, int buffer)
    {
    }

    public void Forward(int microBatch, int buffer)
    {
        _stage.SelectActivationWindow(buffer);
        _stage.LayerKeep = LayerDrop?.Sample(Engine.GlobalStep, microBatch);
        _stage.TokenKeep = _tokenKeeps[microBatch] = KeptTokens(microBatch);
        int start = microBatch * _tokensPerMicroBatch;
        float loss = Engine.Forward(_tokens.AsSpan(start, _tokensPerMicroBatch), _targets.AsSpan(start, _tokensPerMicroBatch));
        if (_stage.IsLast) _lossSum += loss;
    }

    /// <summary>The micro-batch's random-LTD draw (a hash of step, micro-batch and row: every stage and tensor rank draws alike).</summary>
    private Plans.TokenKeep? KeptTokens(int microBatch)
        => TokenDrop?.Keep(Engine.GlobalStep, microBatch, _tokensPerMicroBatch / _stage.SequenceLength, _stage.SequenceLength,
            firstSample: _groups.Coordinates.DataRank * (_tokensPerMicroBatch / _stage.SequenceLength));

    public void Backward(int microBatch, int buffer)
    {
        _stage.SelectActivationWindow(buffer);
        _stage.LayerKeep = LayerDrop?.Sample(Engine.GlobalStep, microBatch);
        _stage.TokenKeep = _tokenKeeps[microBatch]; // what its forward ran on; 1F1B ran other forwards in between
        Engine.Backward();
        // Every micro-batch but the last ends an engine micro-step here, so the last backward runs at the accumulation
        // boundary (as overlap_comm expects) and OptimizerStep's call is the one that updates.
        if (microBatch < MicroBatches - 1) Engine.Step();
    }

    /// <summary>True when the stage boundary slices go device to device (NCCL between GPU stages), with no host copy.</summary>
    public bool BoundariesOnDevice => _exchange.OnDevice(_groups.Pipeline);

    /// <summary>True when a tensor-split stage all-reduces its slices in device memory (NCCL on its GPU); false without a tensor split.</summary>
    public bool TensorReductionsOnDevice => _stage.TensorParallel is not null && _exchange.OnDevice(_groups.Tensor);

    /// <summary>
    /// Whether boundary activations (pipe_partitioned) and their gradients (grad_partitioned) cross the cut in parts:
    /// tensor rank r sends part r of the slice to its counterpart, and the receiving tensor group all-gathers the parts,
    /// so the link between stages carries 1/t of each. Only where the ranks hold the same boundary.
    /// </summary>
    public (bool Activations, bool Gradients) BoundariesInParts => (_partActivations, _partGradients);

    public void SendActivation(int microBatch, int buffer) =>
        Send(_stage.SentActivation, buffer, _stage.Stage.Index + 1, microBatch % GradientTagBase, "activation", microBatch, _partActivations);

    public void ReceiveActivation(int microBatch, int buffer) =>
        Receive(_stage.ReceivedActivation, buffer, _stage.Stage.Index - 1, microBatch % GradientTagBase, "activation", microBatch, _partActivations);

    public void SendGradient(int microBatch, int buffer) =>
        Send(_stage.InputGradient, buffer, _stage.Stage.Index - 1, GradientTagBase + microBatch % GradientTagBase, "input gradient", microBatch, _partGradients);

    public void ReceiveGradient(int microBatch, int buffer) =>
        Receive(_stage.OutputGradient, buffer, _stage.Stage.Index + 1, GradientTagBase + microBatch % GradientTagBase, "output gradient", microBatch, _partGradients);

    /// <summary>This tensor rank's part of a boundary slice when it crosses in parts (the slice itself otherwise).</summary>
    private Slice CrossingPart(Slice slice, bool inParts)
    {
        if (!inParts || slice.Length % _tensor!.Size != 0) return slice;
        long part = slice.Length / _tensor.Size;
        return slice with { Offset = slice.Offset + _tensor.Rank * part, Length = part };
    }

    /// <summary>
    /// Sums the gradients of parameters held by several stages over their holders, so every copy takes the same step.
    /// It runs after the last backward: at ZeRO-2 every slot was already reduce-scattered over the data group as it
    /// became final, so the holders sum their pieces of the accumulated, data-averaged gradient instead (the same
    /// piece on every holder: same slot length, same data rank).
    /// </summary>
    public void ReduceTiedGradients()
    {
        foreach (TiedParameter tied in _stage.Stage.Tied)
        {
            Span<float> gradient = Engine.AccumulatedGradient(tied.Slot);
            if (gradient.Length > 0) _groups.Tied[tied.Name].AllReduceSum(gradient);
        }
    }

    /// <summary>Part of <see cref="OptimizerStep"/>: the engine's boundary step reduces over the data group, then updates.</summary>
    public void ReduceGradients()
    {
    }

    public void OptimizerStep() => _outcome = Engine.Step();

    private void Send(Slice whole, int buffer, int peerStage, int tag, string what, int microBatch, bool inParts)
    {
        _stage.SelectActivationWindow(buffer);
        Slice slice = CrossingPart(whole, inParts);
        try
        {
            CollectiveArguments.Tag(tag); // NCCL matches by order per peer; the tag is checked on both paths
            if (!_exchange.TrySend(slice, _groups.Pipeline, peerStage)) _groups.Pipeline.Send(_exchange.Read(slice), peerStage, tag);
        }
        catch (CommunicationException error)
        {
            throw Named(error, $"sending the {what} of micro-batch {microBatch} to", peerStage);
        }
    }

    private void Receive(Slice whole, int buffer, int peerStage, int tag, string what, int microBatch, bool inParts)
    {
        _stage.SelectActivationWindow(buffer);
        Slice slice = CrossingPart(whole, inParts);
        long start = Stopwatch.GetTimestamp();
        try
        {
            CollectiveArguments.Tag(tag);
            if (!_exchange.TryReceive(slice, _groups.Pipeline, peerStage))
            {
                Span<float> received = _exchange.Receiving(slice);
                _groups.Pipeline.Receive(received, peerStage, tag);
                _exchange.Write(slice, received);
            }
        }
        catch (CommunicationException error)
        {
            throw Named(error, $"receiving the {what} of micro-batch {microBatch} from", peerStage);
        }
        _receiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (slice.Length != whole.Length) _tensor!.AllGatherInPlace(whole); // the other tensor ranks received the other parts
    }

    /// <summary>
    /// Pipeline-group ranks are stages: the message names the peer, and the stage the group found missing (the one that
    /// broke the chain, often not the neighbour), by stage and world rank.
    /// </summary>
    private CommunicationException Named(CommunicationException error, string doing, int peerStage)
    {
        int? missing = error.MissingRank is { } stage ? _groups.WorldRankOfStage(stage) : null;
        string lost = error.MissingRank is { } s && s != peerStage ? $"; the pipeline lost stage {s} (world rank {missing})" : "";
        return new CommunicationException(error.Collective, missing,
            $"pipeline stage {_stage.Stage.Index} (world rank {_groups.World.Rank}) failed {doing} stage {peerStage} " +
            $"(world rank {_groups.WorldRankOfStage(peerStage)}){lost}: {error.Message}");
    }
}
