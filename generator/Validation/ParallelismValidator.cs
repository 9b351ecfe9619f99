using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Validation;

/// <summary>
/// Legality of the model's parallel degrees (<c>[Model(Pipeline = p, Tensor = t)]</c>), checked before anything
/// runs: degrees of at least 1 (SW0013), no more pipeline stages than layers (SW0010), a pinned cut that names one
/// (SW0018), parameters on every stage (SW0011), and sizes that the [Shard] layers split divisible by t (SW0012).
/// Diagnostics are reported at the [Model] attribute, where the degrees are chosen; SW0012 at the [Shard] attribute
/// that asks for the split, when there is one.
/// </summary>
internal static class ParallelismValidator
{
    public static EquatableArray<DiagnosticInfo> Validate(ModelSpec model, PipelinePlan pipeline, LocationInfo? attribute)
    {
        var diagnostics = new List<DiagnosticInfo>();
        if (model.Pipeline < 1) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidParallelDegree, attribute, "Pipeline", N(model.Pipeline), model.ClassName));
        if (model.Tensor < 1) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidParallelDegree, attribute, "Tensor", N(model.Tensor), model.ClassName));

        // One stage is the unpipelined model: any model is fine, even one without parameters or ops.
        var layers = pipeline.Layers;
        if (model.Pipeline <= 1)
        {
            if (pipeline.PinnedCutProblem.Length > 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidStageStarts, attribute,
                    model.ClassName, pipeline.PinnedCutProblem, string.Join(", ", layers.Select(l => l.Name))));
            }
        }
        else if (model.Pipeline > layers.Count)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MoreStagesThanLayers, attribute,
                model.ClassName, N(model.Pipeline), N(layers.Count), Names(layers.Select(l => l.Name).ToList())));
        }
        else if (pipeline.PinnedCutProblem.Length > 0)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidStageStarts, attribute,
                model.ClassName, pipeline.PinnedCutProblem, string.Join(", ", layers.Select(l => l.Name))));
        }
        else if (pipeline.IsCut)
        {
            int withParameters = layers.Count(l => l.Parameters.Count > 0);
            foreach (var stage in pipeline.StagePlans.Where(s => s.ParameterElements == 0))
            {
                var names = layers.Skip(stage.FirstLayer).Take(stage.LayerCount).Select(l => l.Name).ToList();
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.StageWithoutParameters, attribute,
                    N(stage.Index), model.ClassName, Names(names), N(withParameters), N(layers.Count), N(model.Pipeline)));
            }
        }

        if (model.Tensor > 1)
        {
            var sharded = new List<ShardedSize>();
            Collect(model.Root, sharded);
            int common = sharded.Aggregate(0, (g, s) => Gcd(g, s.Size));
            string everywhere = common == 0 ? "1" : Divisors(common);
            foreach (var split in sharded.Where(s => s.Size % model.Tensor != 0))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TensorDegreeDoesNotDivide, split.Location ?? attribute,
                    split.Layer, split.What, N(split.Size), N(model.Tensor), Divisors(split.Size), everywhere));
            }
        }
        return diagnostics.ToEquatableArray();
    }

    private sealed record ShardedSize(string Layer, string What, int Size, LocationInfo? Location);

    /// <summary>
    /// The sizes the [Shard] layers split, Megatron-style: a sharded attention's heads and width (heads are split
    /// across ranks, qkv column-parallel), a column-split Linear's output features, a row-split Linear's input
    /// features, a vocabulary-split Embedding's rows. Layers without [Shard] are replicated: nothing to divide.
    /// </summary>
    private static void Collect(LayerNode node, List<ShardedSize> sharded)
    {
        var at = node.ShardLocation;
        switch (node.Kind, node.Shard)
        {
            case (LayerKind.CausalSelfAttention, not TensorShard.None):
                sharded.Add(new ShardedSize(node.Path, "heads", node.Dims[1], at));
                sharded.Add(new ShardedSize(node.Path, "dimension", node.Dims[0], at));
                break;
            case (LayerKind.Linear, TensorShard.Column):
                sharded.Add(new ShardedSize(node.Path, "out features", node.Dims[1], at));
                break;
            case (LayerKind.Linear, TensorShard.Row):
                sharded.Add(new ShardedSize(node.Path, "in features", node.Dims[0], at));
                break;
            case (LayerKind.Embedding, TensorShard.Vocabulary):
                sharded.Add(new ShardedSize(node.Path, "vocabulary", node.Dims[0], at));
                break;
        }
        foreach (var child in node.Children) Collect(child, sharded);
    }

    private static string Names(List<string> names)
        => names.Count <= 8 ? string.Join(", ", names) : string.Join(", ", names.Take(4)) + ", ..., " + string.Join(", ", names.Skip(names.Count - 2));

    private static string Divisors(int n)
    {
        var small = new List<int>();
        var large = new List<int>();
        for (int d = 1; (long)d * d <= n; d++)
        {
            if (n % d != 0) continue;
            small.Add(d);
            if (d != n / d) large.Insert(0, n / d);
        }
        return string.Join(", ", small.Concat(large).Select(N));
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a < 0 ? -a : a;
    }

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
