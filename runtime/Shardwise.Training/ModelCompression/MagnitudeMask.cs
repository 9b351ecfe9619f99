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
        return KeepLargest(scores.AsSpan(), denseRatio);
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
        return KeepLargest(norms.AsSpan(), denseRatio);
    }

    /// <summary>How many of <paramref name="count"/> entries a dense ratio keeps: ⌈ratio·n⌉ in double arithmetic, as DeepSpeed's math.ceil.</summary>
    public static int Kept(int count, double denseRatio) => Math.Min(count, (int)Math.Ceiling(denseRatio * count));

    /// <summary>
    /// 1 for the ⌈ratio·n⌉ largest scores (ties: the earlier), 0 for the rest: DeepSpeed's TopKBinarizer. Linear time: the
    /// k-th largest score by selection, then one pass keeping the larger ones and the earliest of those equal to it. The
    /// same mask as sorting by (score descending, index ascending); topk refreshes it after every update.
    /// </summary>
    public static byte[] KeepLargest(ReadOnlySpan<float> scores, double denseRatio)
    {
        var mask = new byte[scores.Length];
        int kept = Kept(scores.Length, denseRatio);
        if (kept == 0) return mask;
        var work = scores.ToArray();
        float threshold = KthLargest(work, kept);
        int above = 0;
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] > threshold) above++;
        int equalAllowed = kept - above;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] > threshold) mask[i] = 1;
            else if (scores[i] == threshold && equalAllowed > 0)
            {
                mask[i] = 1;
                equalAllowed--;
            }
        }
        return mask;
    }

    /// <summary>The k-th largest of <paramref name="values"/> (k ≥ 1), by quickselect in place (middle-of-three pivots).</summary>
    private static float KthLargest(float[] values, int k)
    {
        int target = k - 1, low = 0, high = values.Length - 1;
        while (low < high)
        {
            int middle = low + (high - low) / 2;
            float a = values[low], b = values[middle], c = values[high];
            float pivot = a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
            int i = low, j = high;
            while (i <= j)
            {
                while (values[i] > pivot) i++;   // descending: larger values to the left
                while (values[j] < pivot) j--;
                if (i <= j)
                {
                    (values[i], values[j]) = (values[j], values[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j) high = j;
            else if (target >= i) low = i;
            else return values[target];
        }
        return values[target];
    }
}
