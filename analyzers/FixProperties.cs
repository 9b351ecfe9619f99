using System.Collections.Immutable;
using System.Globalization;
using Shardwise.Generator.Model;

namespace Shardwise.Analyzers;

/// <summary>
/// What a code fix needs, carried on the diagnostic as properties: the [Model] argument to set and the value to set
/// it to. The values come from the diagnostic's own arguments, so the fix and the message never disagree.
/// </summary>
public static class FixProperties
{
    /// <summary>The named [Model] argument the fix sets (e.g. <c>Tensor</c>).</summary>
    public const string Argument = "Shardwise.Argument";

    /// <summary>The value of the first fix, as C# source (e.g. <c>2</c>).</summary>
    public const string Value = "Shardwise.Value";

    /// <summary>The value of an alternative fix, when there is one.</summary>
    public const string Alternative = "Shardwise.Alternative";

    /// <summary>SW0017: the [Shard] kind to put on a layer field (e.g. <c>Row</c>).</summary>
    public const string ShardKind = "Shardwise.ShardKind";

    /// <summary>SW0017: the name of the layer field to mark (the last segment of the layer's path).</summary>
    public const string Field = "Shardwise.Field";

    internal static ImmutableDictionary<string, string?> For(DiagnosticInfo info)
    {
        var properties = ImmutableDictionary<string, string?>.Empty;
        switch (info.Id)
        {
            case "SW0012" when info.Arguments.Count == 6 && int.TryParse(info.Arguments[3], NumberStyles.None, CultureInfo.InvariantCulture, out int tensor):
            {
                // The largest degree below Tensor that divides every sharded size (the message's last list; 1 always does).
                int best = 1;
                foreach (string item in info.Arguments[5].Split(','))
                {
                    if (int.TryParse(item.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int degree) && degree < tensor && degree > best) best = degree;
                }
                return properties.Add(Argument, "Tensor").Add(Value, best.ToString(CultureInfo.InvariantCulture));
            }
            case "SW0015" when info.Arguments.Count == 7:
                // Pipeline (the fewest micro-batches that fill every stage), or 4 × Pipeline (a bubble of 20% or less).
                return properties.Add(Argument, "MicroBatches").Add(Value, info.Arguments[2]).Add(Alternative, info.Arguments[5]);
            case "SW0017" when info.Arguments.Count == 2 && info.Arguments[1].Contains("mark it [Shard(ShardKind.Row)]"):
            {
                // An unsharded layer that receives a column-split tensor: making it row-parallel is Megatron's pairing.
                string path = info.Arguments[0];
                return properties.Add(ShardKind, "Row").Add(Field, path.Substring(path.LastIndexOf('.') + 1));
            }
            default:
                return properties;
        }
    }
}
