using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Generator.Ir;

namespace Shardwise.Generator.Planning;

/// <summary>The human-readable plan: parameter layout and activation memory plan, stable text for golden tests.</summary>
internal static class PlanReport
{
    public static string Write(string model, IrGraph graph, ParameterLayoutPlan layout, ActivationPlan activations)
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
        text.Append("  token indices ").Append(N(activations.IndexElementsPerSample)).Append(" per sample\n");
        text.Append(string.Format(CultureInfo.InvariantCulture, "  peak activation bytes per token: fp32 {0:0.0}, fp16/bf16 {1:0.0}\n",
            BytesPerToken(activations, 4, tokens), BytesPerToken(activations, 2, tokens)));
        text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,10}  {1,10}  {2,-9}  {3}\n", "offset", "elements", "live", "buffer"));
        foreach (var buffer in activations.Buffers)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "  {0,10}  {1,10}  {2,-9}  {3}\n",
                buffer.OffsetPerSample, buffer.ElementsPerSample, buffer.Start + "-" + buffer.End, buffer.Name));
        }
        return text.ToString();
    }

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
}
