using System.Collections.Generic;

namespace Shardwise.Distributed;

/// <summary>How error messages name a set of ranks: "rank 2", "ranks 0, 1, 3".</summary>
internal static class RankList
{
    public static string Describe(IReadOnlyCollection<int> ranks) =>
        (ranks.Count == 1 ? "rank " : "ranks ") + string.Join(", ", ranks);
}
