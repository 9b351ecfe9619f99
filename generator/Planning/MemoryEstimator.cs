using System;
using System.Collections.Generic;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Element sizes the memory estimate assumes. <see cref="WorkingBytes"/>: the working copies of parameters, gradients
/// and activations (2 on a GPU in fp16/bf16; 4 on the CPU backend, which computes in fp32 even with 16-bit storage).
/// <see cref="PieceBytes"/>: a rank's partition of the gradients (ZeRO-2 and up) and of the parameters (ZeRO-3); 2 in
/// DeepSpeed's mixed precision, 4 in the Shardwise engine, which keeps its pieces in fp32. <see cref="MasterWeights"/>:
/// fp32 masters besides the working parameters (mixed precision; the engine also keeps them whenever it partitions
/// gradients). Adam's two moments are fp32, 8 bytes per parameter, in every case.
/// </summary>
internal sealed record MemoryPrecision(string Name, int WorkingBytes, int PieceBytes, bool MasterWeights)
{
    /// <summary>DeepSpeed's mixed precision on a GPU: 16Ψ, 4Ψ + 12Ψ/N, 2Ψ + 14Ψ/N, 16Ψ/N for ZeRO 0–3.</summary>
    public static readonly MemoryPrecision Mixed16 = new("fp16/bf16 mixed precision (DeepSpeed)", 2, 2, true);

    /// <summary>The Shardwise engine on the CPU backend with fp16 or bf16 storage: fp32 working copies and pieces, fp32 masters.</summary>
    public static readonly MemoryPrecision CpuEngine = new("CPU engine, fp32 compute with 16-bit storage", 4, 4, true);
}

/// <summary>What one pipeline stage holds, in elements, before any assumption about the launch is applied.</summary>
/// <param name="ParameterElements">Ψ of the stage (a tied parameter counted on each stage holding it).</param>
/// <param name="LargestTensorElements">The largest parameter tensor: a ZeRO-2/3 bucket segment holds at least one piece of it.</param>
/// <param name="GradientPoolElements">Working gradients live at once when they are streamed (ZeRO-2 and up).</param>
/// <param name="ParameterPoolElements">Working parameters gathered at once (ZeRO-3).</param>
/// <param name="ActivationElementsPerSample">The activation arena of one micro-batch, per sample.</param>
/// <param name="IndexElementsPerSample">Token indices (int32) of one micro-batch, per sample.</param>
internal sealed record StageFootprint(
    long ParameterElements,
    long LargestTensorElements,
    long GradientPoolElements,
    long ParameterPoolElements,
    long ActivationElementsPerSample,
    long IndexElementsPerSample);

/// <summary>Bytes per device for one stage, by DeepSpeed's categories (the runtime's MemoryReport uses the same ones).</summary>
internal sealed record StageMemory(int Stage, long Parameters, long Gradients, long MasterWeights, long OptimizerStates, long Activations, long Buffers)
{
    public long Total => Parameters + Gradients + MasterWeights + OptimizerStates + Activations + Buffers;

    /// <summary>The categories from largest to smallest, for naming the largest contributors.</summary>
    public List<(string Name, long Bytes)> Contributors()
    {
        var all = new List<(string Name, long Bytes)>
        {
            ("parameters", Parameters), ("gradients", Gradients), ("optimizer states", OptimizerStates + MasterWeights),
            ("activations", Activations), ("buffers", Buffers),
        };
        all.Sort((a, b) => b.Bytes.CompareTo(a.Bytes));
        return all;
    }
}

/// <summary>One row of the emitted estimate: a stage at a ZeRO stage and working element size.</summary>
internal sealed record MemoryEstimateRow(int WorkingBytes, int ZeroStage, StageMemory Memory);

/// <summary>
/// The build-time memory estimate, one pure function shared by the plan report, the SW0014 check and the generated
/// <c>MemoryEstimate</c> property. Model states follow ZeRO over N data-parallel ranks (stage ≥ 1 partitions the
/// masters and Adam moments, ≥ 2 the gradients, 3 the parameters); with <see cref="MemoryPrecision.Mixed16"/> they are
/// DeepSpeed's 16Ψ, 4Ψ + 12Ψ/N, 2Ψ + 14Ψ/N and 16Ψ/N, plus the streaming pools at stages 2–3 and, at stage 2, the rank's
/// rounded working piece (2Ψ/N, the source of the parameter all-gather). Activations: the
/// arena per sample × micro-batch × the micro-batches 1F1B keeps in flight on the stage (p − s). Buffers: token
/// indices, and the communication buffers the engine allocates (ZeRO-1: a padded copy of the gradients and one
/// partition; ZeRO-2/3: the gradient and parameter buckets, N + 1 rank segments; none on one rank). Assumed: DeepSpeed's default bucket
/// sizes, no parameter kept whole at ZeRO-3 (stage3_param_persistence_threshold = 0), no prefetch buffer, no CPU
/// offload.
/// </summary>
internal static class MemoryEstimator
{
    private const int FloatBytes = 4;
    private const int IndexBytes = 4;
    private const int AdamBytes = 8;

    /// <summary>DeepSpeed's default reduce_bucket_size and allgather_bucket_size (the runtime's ConfigDefaults).</summary>
    private const long DefaultBucketElements = 500_000_000;

    /// <summary>
    /// ZeRO-2/3 communication buffers, as the engine sizes them (SlotSharding.BufferBytesOf) at the default bucket
    /// sizes: N + 1 rank segments of a bucket, a segment holding ⌊bucket / N⌋ elements but at least the largest
    /// piece and at most every piece; at stage 3 also one padded slot for the gathers during backward. The pieces'
    /// sum is taken as ⌈Ψ / N⌉ (the engine pads each tensor, a few elements more).
    /// </summary>
    private static long BucketBufferElements(StageFootprint footprint, int n, int zeroStage)
    {
        long largestPiece = Ceiling(footprint.LargestTensorElements, n);
        long segment = Math.Max(largestPiece, Math.Min(DefaultBucketElements / n, Ceiling(footprint.ParameterElements, n)));
        long streamedSlot = zeroStage >= 3 ? largestPiece * n : 0;
        return segment * (n + 1) + streamedSlot;
    }

    public static StageMemory Estimate(int stage, StageFootprint footprint, int zeroStage, int dataParallel, int microBatch, int inFlight, MemoryPrecision precision)
    {
        long psi = footprint.ParameterElements;
        int n = Math.Max(1, dataParallel);
        long piece = Ceiling(psi, n);
        long owned = zeroStage >= 1 ? piece : psi;
        int w = precision.WorkingBytes;

        // ZeRO-2 keeps every parameter and, beside them, the rank's rounded piece the all-gather sends; ZeRO-3 keeps the pool and the piece.
        long parameters = zeroStage >= 2 ? (zeroStage >= 3 ? footprint.ParameterPoolElements : psi) * w + piece * precision.PieceBytes : psi * w;
        long gradients = zeroStage >= 2 ? footprint.GradientPoolElements * w + piece * precision.PieceBytes : psi * w;
        long master = precision.MasterWeights || zeroStage >= 2 ? owned * FloatBytes : 0;
        long optimizer = owned * AdamBytes;

        long samples = (long)microBatch * inFlight;
        long communication = zeroStage switch
        {
            1 when n > 1 => (piece * n + piece) * FloatBytes,
            >= 2 when n > 1 => BucketBufferElements(footprint, n, zeroStage) * FloatBytes,
            _ => 0,
        };
        return new StageMemory(stage, parameters, gradients, master, optimizer,
            samples * footprint.ActivationElementsPerSample * w,
            samples * footprint.IndexElementsPerSample * IndexBytes + communication);
    }

    /// <summary>
    /// The estimate of every stage of a planned model at its [Model] assumptions. Unpipelined, the footprint is the
    /// planned one (activation arena, gradient and parameter pools). With a partition (Pipeline or Tensor above 1) every
    /// stage's footprint is its planned program's. Without one, for a cut that is only reported, the arena is the
    /// model's scaled by the stage's share of the bytes saved for backward, and the pools are the model's, capped at
    /// the stage's parameters. <c>Sequence</c>, when it differs from the traced
    /// length, scales activations linearly (exact: attention saves a log-sum-exp per row, never its T² probabilities).
    /// </summary>
    public static List<StageMemory> EstimateStages(IrGraph graph, PipelinePlan pipeline, ActivationPlan activations,
        long gradientPoolElements, long parameterPoolElements, PlanningAssumptions assumptions, MemoryPrecision precision, int zeroStage,
        PartitionPlan? partition = null)
    {
        var result = new List<StageMemory>();
        var footprints = partition is null
            ? Footprints(graph, pipeline, activations, gradientPoolElements, parameterPoolElements, assumptions)
            : StageFootprints(graph, partition, assumptions);
        foreach (var (index, footprint, inFlight) in footprints)
        {
            result.Add(Estimate(index, footprint, zeroStage, assumptions.DataParallel, assumptions.MicroBatch, inFlight, precision));
        }
        return result;
    }

    /// <summary>Every stage's estimate for ZeRO 0–3 at both precisions, the other assumptions as stated.</summary>
    public static EquatableArray<MemoryEstimateRow> EstimateAll(IrGraph graph, PipelinePlan pipeline, ActivationPlan activations,
        long gradientPoolElements, long parameterPoolElements, PlanningAssumptions assumptions, PartitionPlan? partition = null)
    {
        var rows = new List<MemoryEstimateRow>();
        foreach (var precision in new[] { MemoryPrecision.Mixed16, MemoryPrecision.CpuEngine })
        {
            for (int zero = 0; zero <= 3; zero++)
            {
                foreach (var stage in EstimateStages(graph, pipeline, activations, gradientPoolElements, parameterPoolElements, assumptions, precision, zero, partition))
                    rows.Add(new MemoryEstimateRow(precision.WorkingBytes, zero, stage));
            }
        }
        return rows.ToEquatableArray();
    }

    private static IEnumerable<(int Stage, StageFootprint Footprint, int InFlight)> Footprints(IrGraph graph, PipelinePlan pipeline,
        ActivationPlan activations, long gradientPool, long parameterPool, PlanningAssumptions assumptions)
    {
        double scale = SequenceScale(graph, assumptions);
        long Scaled(double elements) => (long)Math.Ceiling(elements * scale);

        if (pipeline.Stages <= 1 || !pipeline.IsCut)
        {
            long psi = 0, largest = 0;
            foreach (var parameter in graph.Parameters)
            {
                psi += parameter.Elements;
                largest = Math.Max(largest, parameter.Elements);
            }
            yield return (0, new StageFootprint(psi, largest, gradientPool, parameterPool,
                Scaled(activations.ArenaElementsPerSample), Scaled(activations.IndexElementsPerSample)), 1);
            yield break;
        }

        long saved = 0;
        foreach (var stage in pipeline.StagePlans) saved += stage.ActivationBytes;
        foreach (var stage in pipeline.StagePlans)
        {
            long largest = 0;
            var held = new HashSet<int>();
            for (int l = stage.FirstLayer; l < stage.FirstLayer + stage.LayerCount; l++)
            {
                foreach (int id in pipeline.Layers[l].Parameters)
                {
                    if (held.Add(id)) largest = Math.Max(largest, graph.Parameters[id].Elements);
                }
            }
            double share = saved == 0 ? 1.0 / pipeline.Stages : stage.ActivationBytes / (double)saved;
            yield return (stage.Index, new StageFootprint(stage.ParameterElements, largest,
                Math.Min(gradientPool, stage.ParameterElements), Math.Min(parameterPool, stage.ParameterElements),
                Scaled(activations.ArenaElementsPerSample * share), Scaled(activations.IndexElementsPerSample)), stage.InFlight);
        }
    }

    /// <summary>
    /// A partitioned model's stages are planned programs: each stage's footprint is exactly its own layout (the tensor
    /// rank's local shapes), pools, activation arena and token indices, with one activation window per micro-batch the executor keeps (<see cref="ActivationWindows"/>).
    /// </summary>
    private static IEnumerable<(int Stage, StageFootprint Footprint, int InFlight)> StageFootprints(IrGraph graph, PartitionPlan partition,
        PlanningAssumptions assumptions)
    {
        double scale = SequenceScale(graph, assumptions);
        long Scaled(double elements) => (long)Math.Ceiling(elements * scale);
        foreach (var stage in partition.Stages)
        {
            var program = stage.Program;
            long psi = program.Layout.TotalElements; // what the engine allocates: the aligned layout
            long largest = 0;
            foreach (var parameter in program.Graph.Parameters) largest = Math.Max(largest, parameter.Elements);
            yield return (stage.Stage.Index, new StageFootprint(psi, largest, program.GradientPool.PoolElements, program.Residency.PoolElements,
                Scaled(program.Activations.ArenaElementsPerSample), Scaled(program.Activations.IndexElementsPerSample)),
                ActivationWindows(partition.Pipeline, stage.Stage.Index, assumptions));
        }
    }

    /// <summary>
    /// The activation windows the pipeline executor gives a stage: DeepSpeed's num_pipe_buffers, max(2, min(p − s, m)),
    /// for the assumed micro-batches m (4p when not stated); one for an unpipelined program.
    /// </summary>
    public static int ActivationWindows(int stages, int stage, PlanningAssumptions assumptions)
    {
        if (stages <= 1) return 1;
        int microBatches = assumptions.MicroBatches > 0 ? assumptions.MicroBatches : 4 * stages;
        return Math.Max(2, Math.Min(stages - stage, microBatches));
    }

    /// <summary>How much longer the assumed <c>Sequence</c> is than the traced one (1 when not stated).</summary>
    private static double SequenceScale(IrGraph graph, PlanningAssumptions assumptions)
    {
        int tokens = PlanReport.TokensPerSample(graph);
        return assumptions.Sequence > 0 && tokens > 0 ? assumptions.Sequence / (double)tokens : 1.0;
    }

    private static long Ceiling(long value, int divisor) => (value + divisor - 1) / divisor;
}
