using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// The human-readable plan: parameter layout, activation memory plan, pipeline cut, the planning assumptions, the
/// memory estimate per stage and the bytes exchanged per step on each axis; stable text for golden tests.
/// </summary>
internal static class PlanReport
{
    /// <summary>The report line for <c>[Checkpoint(PartitionInputs = true)]</c> (the trainer looks for it).</summary>
    public const string PartitionedInputsMarker = "  checkpointed inputs in parts over ";

    /// <summary>"N parts of M elements per sample" for one tensor rank's program.</summary>
    private static string PartsOf(ProgramPlan program)
    {
        var parts = program.Activations.Buffers.Where(b => b.Role == BufferRole.Partition).ToList();
        return Plural(parts.Count, "part", "parts") + " (" + N(parts.Sum(b => b.ElementsPerSample)) + " of " + N(parts.Sum(b => program.Graph.Values[b.Value].ElementsPerSample))
               + " elements per sample)";
    }

    public static string Write(string model, IrGraph graph, ParameterLayoutPlan layout, ActivationPlan activations, CheckpointPlan checkpoints, PipelinePlan pipeline)
        => Write(model, graph, layout, activations, checkpoints, pipeline, null, null);

    /// <param name="spec">The model, for its planning assumptions and [Shard] layers; null writes no assumption-dependent section.</param>
    /// <param name="memory">The estimate of every stage (<see cref="MemoryEstimator"/>) at the assumed ZeRO stage.</param>
    /// <param name="epilogues">The Linear/GeLU and residual Add/LayerNorm fusions of the program (<see cref="EpilogueFusionPlanner"/>); null writes none.</param>
    /// <param name="aliases">The shared residual gradients (<see cref="GradientAliasPlanner"/>); null writes none.</param>
    /// <param name="fusesLossGradient">Whether the loss writes its gradient in ForwardBackward (<see cref="LossGradientFusionPlanner"/>).</param>
    /// <param name="layerDrop">The <c>[LayerDrop]</c> layers (<see cref="LayerDropPlanner"/>); null writes none.</param>
    /// <param name="tokenDrop">The <c>[TokenDrop]</c> layers (<see cref="TokenDropPlanner"/>); null writes none.</param>
    public static string Write(string model, IrGraph graph, ParameterLayoutPlan layout, ActivationPlan activations, CheckpointPlan checkpoints,
        PipelinePlan pipeline, ModelSpec? spec, IReadOnlyList<StageMemory>? memory, EpiloguePlan? epilogues = null,
        GradientAliasPlan? aliases = null, bool fusesLossGradient = false, LayerDropPlan? layerDrop = null, TokenDropPlan? tokenDrop = null,
        PartitionPlan? partition = null)
    {
        var text = new StringBuilder();
        long parameters = layout.Slots.Sum(s => s.Length);
        int tokens = TokensPerSample(graph);
        text.Append("model ").Append(model).Append(": ").Append(N(graph.Ops.Count)).Append(" forward ops, ")
            .Append(N(parameters)).Append(" parameters in ").Append(N(layout.Slots.Count)).Append(" tensors\n");
        text.Append("\nparameter layout (flat buffer of ").Append(N(layout.TotalElements)).Append(" elements, 16-element aligned)\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,10}  {1,10}  {2,-14}  {3}\n", "offset", "length", "shape", "name"));
        foreach (var slot in layout.Slots)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,10}  {1,10}  {2,-14}  {3}\n",
                slot.Offset, slot.Length, "[" + string.Join(", ", slot.Parameter.Shape) + "]", slot.Parameter.Name));
        }

        long arena = activations.ArenaElementsPerSample;
        long unshared = activations.UnsharedElementsPerSample;
        text.Append("\nactivation plan (elements per sample; the run-time batch multiplies every size)\n");
        text.Append("  arena ").Append(N(arena)).Append(" elements per sample; without reuse ").Append(N(unshared))
            .Append(string.Format(CultureInfo.InvariantCulture, " (reuse saves {0:0.0}%)\n", unshared == 0 ? 0 : 100.0 * (unshared - arena) / unshared));
        if (!checkpoints.IsEmpty)
        {
            text.Append("  activation checkpointing: ").Append(CheckpointedLayers.Describe(checkpoints.Segments.Select(x => x.Layer)))
                .Append(", fp32 arena ").Append(N(activations.ArenaWithoutCheckpointingPerSample * 4)).Append(" → ").Append(N(arena * 4))
                .Append(" bytes per sample (").Append(N(checkpoints.Segments.Sum(x => x.RecomputedOps.Count))).Append(" forward ops recomputed)\n");
            if (activations.HostCopies.Count > 0)
            {
                text.Append("  checkpointed inputs in host memory: ").Append(Plural(activations.HostCopies.Count, "tensor", "tensors")).Append(", ")
                    .Append(N(activations.HostElementsPerSample * 4)).Append(" fp32 bytes per sample, copied out after their last forward use and back before their layer's recompute\n");
            }
            if (partition is not null && partition.Stages.Any(s => s.Program.Activations.PartitionCopies.Count > 0))
            {
                text.Append(PartitionedInputsMarker).Append(N(partition.Tensor)).Append(" tensor ranks: ")
                    .Append(string.Join(", ", partition.Stages.Select(s => "stage " + N(s.Stage.Index) + " keeps " + PartsOf(s.Program))))
                    .Append(", all-gathered before their layer's recompute\n");
            }
        }
        if (epilogues is { HasGeluFusion: true })
        {
            int forward = epilogues.LinearGelu.Count(g => g >= 0), backward = epilogues.GeluLinearBackward.Count(s => s >= 0);
            text.Append("  epilogue fusion: ").Append(Plural(forward, "Linear → GeLU forward", "Linear → GeLU forwards"))
                .Append(" as one call (Ops.LinearGelu), ").Append(Plural(backward, "GeLU backward", "GeLU backwards"))
                .Append(" inside the next Linear's (Ops.GeluLinearBackward)\n");
        }
        if (epilogues is { FusedAddCount: > 0 })
        {
            text.Append("  residual norms: ").Append(Plural(epilogues.FusedAddCount, "residual add is", "residual adds are"))
                .Append(" computed by the LayerNorm right after (Ops.AddLayerNorm)\n");
        }
        if (aliases is { Count: > 0 })
        {
            text.Append("  residual gradients: ").Append(Plural(aliases.Count, "input gradient of an add is", "input gradients of adds are"))
                .Append(" the add's output gradient buffer (no AddBackward copy)\n");
        }
        if (layerDrop is { IsEmpty: false })
        {
            int branches = layerDrop.BranchInput.Count(b => b >= 0);
            text.Append("  layer drop: ").Append(CheckpointedLayers.Describe(layerDrop.Layers))
                .Append(" may be skipped by progressive_layer_drop ([LayerDrop]; ").Append(Plural(branches, "residual branch", "residual branches"))
                .Append(" scaled by 1/keep when run, each with its gradient in a buffer of its own)\n");
        }
        if (tokenDrop is { IsEmpty: false })
        {
            text.Append("  token drop: ").Append(CheckpointedLayers.Describe(tokenDrop.Layers))
                .Append(" may run on some of their tokens under random_ltd ([TokenDrop]; the kept rows gathered before each, scattered after;")
                .Append(" buffers planned for every token)\n");
        }
        foreach (int value in activations.GradientsOverValues)
        {
            string name = graph.Values[value].Name;
            text.Append("  loss gradient: d(").Append(name).Append(") is written over ").Append(name)
                .Append(" by the cross-entropy backward (no buffer of its own)\n");
        }
        if (fusesLossGradient)
        {
            string logits = graph.Values[graph.Ops[graph.Ops.Count - 1].Inputs[0]].Name;
            text.Append("  loss: ForwardBackward computes the cross-entropy and d(").Append(logits)
                .Append(") in one op (Ops.CrossEntropyWithGradient: one pass over the logits)\n");
        }
        text.Append("  token indices ").Append(N(activations.IndexElementsPerSample)).Append(" per sample\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  peak activation bytes per token: fp32 {0:0.0}, fp16/bf16 {1:0.0}\n",
            BytesPerToken(activations, 4, tokens), BytesPerToken(activations, 2, tokens)));
        // Two live intervals (a recomputed value) need a wider column; plans without them keep the 9 characters.
        int liveWidth = System.Math.Max(9, activations.Buffers.Select(b => Live(b).Length).DefaultIfEmpty(0).Max());
        string row = "  {0,10}  {1,10}  {2,-" + liveWidth.ToString(CultureInfo.InvariantCulture) + "}  {3}\n";
        text.Append(string.Format(CultureInfo.InvariantCulture, row, "offset", "elements", "live", "buffer"));
        foreach (var buffer in activations.Buffers)
            text.Append(string.Format(CultureInfo.InvariantCulture, row, buffer.OffsetPerSample, buffer.ElementsPerSample, Live(buffer), buffer.Name));
        var assumptions = spec?.Assumptions ?? PlanningAssumptions.Default;
        WritePipeline(text, pipeline, MicroBatches(assumptions, pipeline.Stages));
        if (spec is not null && memory is not null)
        {
            WriteAssumptions(text, spec, pipeline, tokens);
            WriteMemory(text, assumptions, memory);
            CommunicationReport.Write(text, spec, graph, pipeline, MicroBatches(assumptions, pipeline.Stages), MemoryPrecision.Mixed16.WorkingBytes);
        }
        return text.ToString();
    }

    /// <summary>The micro-batches per step the plan assumes: the stated <c>MicroBatches</c>, else 4p when pipelined, else 1.</summary>
    public static int MicroBatches(PlanningAssumptions assumptions, int stages)
        => assumptions.MicroBatches > 0 ? assumptions.MicroBatches : stages > 1 ? PipelinePlan.ReportMicroBatches(stages) : 1;

    private static void WriteAssumptions(StringBuilder text, ModelSpec spec, PipelinePlan pipeline, int tokens)
    {
        var a = spec.Assumptions;
        text.Append("\nplanning assumptions ([Model]): micro-batch ").Append(N(a.MicroBatch))
            .Append(a.MicroBatch == 1 ? " sample" : " samples")
            .Append(", ").Append(Plural(MicroBatches(a, pipeline.Stages), "micro-batch", "micro-batches")).Append(" per step").Append(a.MicroBatches > 0 ? "" : pipeline.Stages > 1 ? " (not stated: 4p)" : " (not stated)")
            .Append(", sequence ").Append(N(a.Sequence > 0 ? a.Sequence : tokens)).Append(a.Sequence > 0 ? "" : " (traced)")
            .Append(", ZeRO stage ").Append(N(a.ZeroStage)).Append(", data-parallel ").Append(N(a.DataParallel))
            .Append(", tensor-parallel ").Append(N(spec.Tensor))
            .Append(a.DeviceMemoryGiB > 0 ? ", device memory " + a.DeviceMemoryGiB.ToString("0.###", CultureInfo.InvariantCulture) + " GiB" : ", device memory not stated")
            .Append(pipeline.IsPinned ? ", cut pinned by StageStarts" : "").Append('\n');
    }

    private static void WriteMemory(StringBuilder text, PlanningAssumptions assumptions, IReadOnlyList<StageMemory> memory)
    {
        var precision = MemoryPrecision.Mixed16;
        text.Append("\nmemory per device, bytes (").Append(precision.Name).Append(": ").Append(N(precision.WorkingBytes))
            .Append("-byte working copies, fp32 masters and Adam moments; ZeRO ").Append(N(assumptions.ZeroStage))
            .Append(" over N = ").Append(N(assumptions.DataParallel)).Append("; activations of the micro-batches in flight)\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,14}  {2,14}  {3,14}  {4,14}  {5,12}  {6,14}  {7,9}\n",
            "stage", "parameters", "gradients", "optimizer", "activations", "buffers", "total", "GiB"));
        foreach (var stage in memory)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,14}  {2,14}  {3,14}  {4,14}  {5,12}  {6,14}  {7,9:0.000}\n",
                stage.Stage, N(stage.Parameters), N(stage.Gradients), N(stage.MasterWeights + stage.OptimizerStates), N(stage.Activations),
                N(stage.Buffers), N(stage.Total), stage.Total / (double)(1L << 30)));
        }
        text.Append("  optimizer = fp32 masters + Adam moments; buffers = token indices + ZeRO communication buffers\n");
    }

    /// <summary>One line for an unpipelined model; otherwise the stage table, the tied parameters, the bubble and the layers.</summary>
    private static void WritePipeline(StringBuilder text, PipelinePlan pipeline, int m)
    {
        var layers = pipeline.Layers;
        if (pipeline.Stages == 1)
        {
            text.Append("\npipeline: 1 stage; ").Append(N(layers.Count)).Append(" layers, ").Append(N(pipeline.TotalFlops))
                .Append(" FLOPs per sample (forward + backward)\n");
            return;
        }
        if (!pipeline.IsCut)
        {
            text.Append("\npipeline: no cut into ").Append(N(pipeline.Stages)).Append(" stages of ").Append(N(layers.Count)).Append(" layers\n");
            return;
        }

        int p = pipeline.Stages;
        text.Append("\npipeline plan: ").Append(N(p)).Append(" stages, 1F1B; ")
            .Append(pipeline.IsPinned ? "cut pinned by StageStarts\n" : "cut by FLOPs per sample (forward + backward), ties by peak memory\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,12}  {2,16}  {3,16}  {4,9}  {5}\n",
            "stage", "parameters", "FLOPs/sample", "act bytes/sample", "in flight", "layers"));
        foreach (var stage in pipeline.StagePlans)
        {
            string span = layers[stage.FirstLayer].Name
                + (stage.LayerCount == 1 ? "" : " .. " + layers[stage.FirstLayer + stage.LayerCount - 1].Name)
                + " (" + N(stage.LayerCount) + ")";
            text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,12}  {2,16}  {3,16}  {4,9}  {5}\n",
                stage.Index, N(stage.ParameterElements), N(stage.Flops), N(stage.ActivationBytes), stage.InFlight, span));
        }

        long total = pipeline.TotalFlops, slowest = pipeline.StagePlans.Max(s => s.Flops);
        text.Append(string.Format(CultureInfo.InvariantCulture, "  slowest stage: {0:0.0}% of the FLOPs (even split {1:0.0}%)\n",
            total == 0 ? 0 : 100.0 * slowest / total, 100.0 / p));
        foreach (var tied in pipeline.TiedParameters)
            text.Append("  tied: ").Append(tied).Append(", gradients summed by ReduceTiedGradients\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  bubble at m = {0} micro-batches{1}: (p - 1)/(m + p - 1) = {2}/{3} = {4:0.0}%\n",
            m, m == PipelinePlan.ReportMicroBatches(p) ? " (4p)" : "", p - 1, m + p - 1, 100.0 * PipelinePlan.Bubble(p, m)));

        text.Append("  layers (parameters counted where first used, so a tied layer shows 0)\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,5}  {2,4}  {3,12}  {4,16}  {5,16}  {6}\n",
            "layer", "stage", "ops", "parameters", "FLOPs/sample", "act bytes/sample", "name"));
        foreach (var stage in pipeline.StagePlans)
        {
            for (int l = stage.FirstLayer; l < stage.FirstLayer + stage.LayerCount; l++)
            {
                var layer = layers[l];
                text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,5}  {1,5}  {2,4}  {3,12}  {4,16}  {5,16}  {6}\n",
                    l, stage.Index, layer.OpCount, N(layer.NewParameterElements), N(layer.Flops), N(layer.ActivationBytes), layer.Name));
            }
        }
    }

    /// <summary>"3-9", or "3-5,40-47" for a value dropped after its checkpointed layer's forward and recomputed.</summary>
    private static string Live(ActivationBuffer buffer)
        => string.Join(",", buffer.LiveIntervals().Select(i => i.Start.ToString(CultureInfo.InvariantCulture) + "-" + i.End.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Positions per sample: the size of the first token input (the sequence), else of the first input's rows.</summary>
    public static int TokensPerSample(IrGraph graph)
    {
        foreach (var input in graph.Inputs)
        {
            var value = graph.Values[input.Value];
            if (value.Kind == ValueKind.Tokens) return (int)value.ElementsPerSample;
        }
        return graph.Inputs.Count == 0 ? 1 : (int)graph.Values[graph.Inputs[0].Value].RowsPerSample;
    }

    private static double BytesPerToken(ActivationPlan plan, int bytesPerElement, int tokens)
        => (plan.ArenaElementsPerSample * bytesPerElement + plan.IndexElementsPerSample * 4) / (double)tokens;

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Plural(long count, string one, string many) => N(count) + " " + (count == 1 ? one : many);
}
