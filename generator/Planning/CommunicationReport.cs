using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// The plan report's "bytes exchanged per step" section, one line per axis, values at the working element size:
/// <list type="bullet">
/// <item>pipeline: each boundary's activation forward and its gradient backward, per micro-batch, × m;</item>
/// <item>data: what each rank sends per step under ZeRO, 2Ψ(N − 1)/N elements (all-reduce, or reduce-scatter then
/// all-gather) at stages 0–2 and 3Ψ(N − 1)/N at stage 3 (parameters gathered for forward and again for backward);</item>
/// <item>tensor: an estimate from the [Shard] layers, Megatron's pattern: an all-reduce of the output after every
/// row-split Linear and sharded attention forward, and of the input gradient before every column-split Linear and
/// sharded attention backward, each sending 2(t − 1)/t of the activation per rank (ring).</item>
/// </list>
/// </summary>
internal static class CommunicationReport
{
    public static void Write(StringBuilder text, ModelSpec spec, IrGraph graph, PipelinePlan pipeline, int microBatches, int bytesPerElement)
    {
        var a = spec.Assumptions;
        long perSample = (long)a.MicroBatch * bytesPerElement;
        text.Append("\nbytes exchanged per step (m = ").Append(PlanReport.Plural(microBatches, "micro-batch", "micro-batches")).Append(" of ")
            .Append(PlanReport.Plural(a.MicroBatch, "sample", "samples")).Append(", ").Append(N(bytesPerElement)).Append(" bytes per value)\n");

        if (pipeline.Stages <= 1 || !pipeline.IsCut)
        {
            text.Append("  pipeline: 1 stage, nothing sent\n");
        }
        else
        {
            foreach (var stage in pipeline.StagePlans)
            {
                if (stage.Index == pipeline.Stages - 1) continue;
                long bytes = stage.SendElementsPerSample * perSample;
                text.Append("  pipeline: stage ").Append(N(stage.Index)).Append(" -> ").Append(N(stage.Index + 1)).Append(": ")
                    .Append(N(bytes)).Append(" activation + ").Append(N(bytes)).Append(" gradient bytes per micro-batch, ")
                    .Append(N(2 * bytes * microBatches)).Append(" per step\n");
            }
        }

        int n = a.DataParallel;
        if (n <= 1)
        {
            text.Append("  data: N = 1, nothing sent\n");
        }
        else
        {
            int factor = a.ZeroStage >= 3 ? 3 : 2;
            foreach (var (stage, psi) in StageParameters(graph, pipeline))
            {
                long bytes = (long)factor * psi * (n - 1) / n * bytesPerElement;
                text.Append("  data: ").Append(pipeline.Stages > 1 ? "stage " + N(stage) + ", " : "").Append("ZeRO ").Append(N(a.ZeroStage))
                    .Append(" over N = ").Append(N(n)).Append(": ").Append(N(factor)).Append("Ψ(N - 1)/N = ").Append(N(bytes)).Append(" bytes per rank per step\n");
            }
        }

        int t = spec.Tensor;
        if (t <= 1)
        {
            text.Append("  tensor: t = 1, nothing sent\n");
            return;
        }
        var (forward, backward, elements) = TensorAllReduces(spec.Root, graph);
        if (forward + backward == 0)
        {
            text.Append("  tensor: t = ").Append(N(t)).Append(", no [Shard] layer, nothing split\n");
            return;
        }
        long payload = elements * perSample;
        long perRank = payload * 2 * (t - 1) / t;
        text.Append("  tensor (estimate from [Shard] layers): t = ").Append(N(t)).Append(", ").Append(N(forward)).Append(" all-reduces forward + ")
            .Append(N(backward)).Append(" backward per micro-batch on ").Append(N(payload)).Append(" bytes in all; ring sends ")
            .Append(N(perRank * microBatches)).Append(" bytes per rank per step\n");
    }

    /// <summary>Ψ of each stage (the whole model when unpipelined).</summary>
    private static IEnumerable<(int Stage, long Elements)> StageParameters(IrGraph graph, PipelinePlan pipeline)
    {
        if (pipeline.Stages > 1 && pipeline.IsCut)
        {
            foreach (var stage in pipeline.StagePlans) yield return (stage.Index, stage.ParameterElements);
            yield break;
        }
        long psi = 0;
        foreach (var parameter in graph.Parameters) psi += parameter.Elements;
        yield return (0, psi);
    }

    /// <summary>
    /// All-reduces per micro-batch and the elements per sample they carry in all. Sizes come from the traced ops of
    /// each [Shard] layer: a row-split Linear's output, a column-split Linear's input, a sharded attention's width at
    /// every position (its output forward, its input gradient backward).
    /// </summary>
    private static (int Forward, int Backward, long Elements) TensorAllReduces(LayerNode root, IrGraph graph)
    {
        var shards = new Dictionary<string, LayerNode>();
        Collect(root, shards);
        int forward = 0, backward = 0;
        long elements = 0;
        foreach (var op in graph.Ops)
        {
            if (!shards.TryGetValue(op.Layer, out var layer)) continue;
            if (op.Kind == OpKind.Linear && layer.Shard == TensorShard.Row)
            {
                forward++;
                elements += graph.Values[op.Outputs[0]].ElementsPerSample;
            }
            else if (op.Kind == OpKind.Linear && layer.Shard == TensorShard.Column)
            {
                backward++;
                elements += graph.Values[op.Inputs[0]].ElementsPerSample;
            }
            else if (op.Kind == OpKind.Attention)
            {
                forward++;
                backward++;
                elements += 2 * graph.Values[op.Outputs[0]].ElementsPerSample;
            }
        }
        return (forward, backward, elements);
    }

    private static void Collect(LayerNode node, Dictionary<string, LayerNode> shards)
    {
        if (node.Shard != TensorShard.None) shards[node.Path] = node;
        foreach (var child in node.Children) Collect(child, shards);
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
