using System;
using System.Collections.Generic;

namespace Shardwise.Distributed;

/// <summary>
/// Who ends up together after a split: the ranks that passed the same color, ordered by key and then by their rank in
/// the parent group (MPI_Comm_split's rule), and this rank's place among them.
/// </summary>
internal sealed record SplitMembership(int Color, IReadOnlyList<int> ParentRanks, int Rank)
{
    public int Size => ParentRanks.Count;

    /// <summary>From every parent rank's (color, key), indexed by parent rank.</summary>
    public static SplitMembership Of(ReadOnlySpan<(int Color, int Key)> choices, int parentRank)
    {
        int color = choices[parentRank].Color;
        var members = new List<int>();
        for (int rank = 0; rank < choices.Length; rank++)
            if (choices[rank].Color == color) members.Add(rank);
        (int Color, int Key)[] copy = choices.ToArray();
        members.Sort((a, b) => copy[a].Key != copy[b].Key ? copy[a].Key.CompareTo(copy[b].Key) : a.CompareTo(b));
        return new SplitMembership(color, members, members.IndexOf(parentRank));
    }
}
