using System.Collections.Generic;
using System.Globalization;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// A cut pinned by hand with <c>[Model(StageStarts = new[] { "blocks.2" })]</c>: the first layer of every stage after
/// the first, named as the plan report names layers. <see cref="Cuts"/> (stage s holds layers [Cuts[s], Cuts[s + 1]))
/// is null when the names do not describe a cut; <see cref="Problem"/> then says why, in words that complete
/// "StageStarts ...".
/// </summary>
internal sealed record PinnedCut(int[]? Cuts, string Problem)
{
    public static PinnedCut Resolve(IReadOnlyList<PipelineLayer> layers, EquatableArray<string> starts, int stages)
    {
        if (starts.Count != stages - 1)
        {
            return Invalid("names " + Count(starts.Count, "stage start") + " but Pipeline = " + N(stages) + " needs "
                + N(stages - 1) + " (the first layer of every stage after the first)");
        }

        var cuts = new int[stages + 1];
        cuts[stages] = layers.Count;
        for (int s = 0; s < starts.Count; s++)
        {
            string name = starts[s];
            int index = IndexOf(layers, name);
            if (index < 0) return Invalid("names '" + name + "', which is not a layer of the model");
            if (index == 0) return Invalid("names '" + name + "', the first layer, which always starts stage 0");
            if (s > 0 && index <= cuts[s])
            {
                return Invalid("names '" + name + "' after '" + starts[s - 1] + "', but stage starts must follow the layer order, each after the last");
            }
            cuts[s + 1] = index;
        }
        return new PinnedCut(cuts, "");
    }

    private static PinnedCut Invalid(string problem) => new(null, problem);

    private static int IndexOf(IReadOnlyList<PipelineLayer> layers, string name)
    {
        for (int l = 0; l < layers.Count; l++)
        {
            if (layers[l].Name == name) return l;
        }
        return -1;
    }

    private static string Count(int count, string noun) => N(count) + " " + noun + (count == 1 ? "" : "s");

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
