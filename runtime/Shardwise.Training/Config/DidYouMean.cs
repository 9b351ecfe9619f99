using System;
using System.Collections.Generic;

namespace Shardwise.Training.Config;

/// <summary>
/// Suggests the known key an unknown one was probably meant to be: real configs carry typos such as
/// "bp16" or "stage3_param_persitence_threshold" that DeepSpeed silently ignores.
/// </summary>
internal static class DidYouMean
{
    public static string? Suggest(string unknown, IEnumerable<string> known)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        var bestPrefix = -1;
        var limit = unknown.Length > 12 ? 3 : 2;
        foreach (var candidate in known)
        {
            if (candidate == unknown)
            {
                continue;
            }

            // A key written without its prefix, e.g. gather_16bit_weights_on_model_save.
            if (candidate.EndsWith("_" + unknown, StringComparison.Ordinal))
            {
                return candidate;
            }

            // Ties ("bp16": fp16 and bf16 are both one edit away) go to the longer shared prefix.
            var distance = Levenshtein(unknown, candidate);
            var prefix = CommonPrefixLength(unknown, candidate);
            if (distance <= limit && (distance < bestDistance || (distance == bestDistance && prefix > bestPrefix)))
            {
                best = candidate;
                bestDistance = distance;
                bestPrefix = prefix;
            }
        }

        return best;
    }

    private static int CommonPrefixLength(string a, string b)
    {
        var length = 0;
        while (length < a.Length && length < b.Length && a[length] == b[length])
        {
            length++;
        }

        return length;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
