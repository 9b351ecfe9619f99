using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shardwise.Generator.Planning;

/// <summary>Names checkpointed layers compactly for the plan report: consecutive array elements read <c>blocks.0..3</c>.</summary>
internal static class CheckpointedLayers
{
    public static string Describe(IEnumerable<string> layers)
    {
        var parts = new List<string>();
        string? prefix = null;
        int first = 0, last = 0;

        void Flush()
        {
            if (prefix is null) return;
            parts.Add(prefix + first.ToString(CultureInfo.InvariantCulture)
                + (last == first ? "" : ".." + last.ToString(CultureInfo.InvariantCulture)));
            prefix = null;
        }

        foreach (string layer in layers.Distinct())
        {
            int dot = layer.LastIndexOf('.');
            int i = -1;
            if (dot < 0 || !int.TryParse(layer.Substring(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out i))
            {
                Flush();
                parts.Add(layer);
                continue;
            }
            string head = layer.Substring(0, dot + 1);
            if (prefix == head && i == last + 1)
            {
                last = i;
                continue;
            }
            Flush();
            prefix = head;
            first = last = i;
        }
        Flush();
        return string.Join(", ", parts);
    }
}
