using System;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// DeepSpeed's l1 pruning masks (its TopKBinarizer over magnitudes): keep the ⌈ratio·n⌉ largest scores, zero the rest.
/// Ties keep the earlier element, so every rank takes the same mask from the same weights.
/// </summary>
public static class MagnitudeMask
{
    /// <summary>Sparse pruning: one mask entry per weight, scored by |w|.</summary>
    public static byte[] ForWeights(ReadOnlySpan<float> weights, double denseRatio)
    {
        var scores = new float[weights.Length];
        for (int i = 0; i < weights.Length; i++) scores[i] = MathF.Abs(weights[i]);
        return KeepLargest(scores, denseRatio);
    }

    /// <summary>Row pruning: one mask entry per output row of a [rows, columns] weight, scored by the row's L1 norm.</summary>
    public static byte[] ForRows(ReadOnlySpan<float> weights, int rows, double denseRatio)
    {
        if (rows < 1 || weights.Length % rows != 0) throw new ArgumentException($"{weights.Length} elements are not {rows} rows");
        int columns = weights.Length / rows;
        var norms = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            foreach (float w in weights.Slice(r * columns, columns)) sum += MathF.Abs(w);
            norms[r] = (float)sum;
        }
        return KeepLargest(norms, denseRatio);
    }

    /// <summary>How many of <paramref name="count"/> entries a dense ratio keeps: ⌈ratio·n⌉ in double arithmetic, as DeepSpeed's math.ceil.</summary>
    public static int Kept(int count, double denseRatio) => Math.Min(count, (int)Math.Ceiling(denseRatio * count));

    /// <summary>1 for the ⌈ratio·n⌉ largest scores (ties: the earlier), 0 for the rest: DeepSpeed's TopKBinarizer.</summary>
    public static byte[] KeepLargest(ReadOnlySpan<float> scores, double denseRatio) => KeepLargest(scores.ToArray(), denseRatio);

    private static byte[] KeepLargest(float[] scores, double denseRatio)
    {
        var order = new int[scores.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        // Descending by score, then ascending by index: a stable, rank-independent order.
        Array.Sort(order, (a, b) => scores[b].CompareTo(scores[a]) is var c && c != 0 ? c : a.CompareTo(b));
        var mask = new byte[scores.Length];
        int kept = Kept(scores.Length, denseRatio);
        for (int i = 0; i < kept; i++) mask[order[i]] = 1;
        return mask;
    }
}
