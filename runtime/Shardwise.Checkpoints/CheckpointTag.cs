using System;
using System.Globalization;

namespace Shardwise.Checkpoints;

/// <summary>
/// Checkpoint tags are directory names, so they are restricted to a portable character set. A leading '.' is
/// reserved for the store's own scratch entries (.tmp-*, .replaced-*, ...), which is how those stay invisible.
/// </summary>
public static class CheckpointTag
{
    public const int MaxLength = 128;

    /// <summary>The conventional tag for a global step: "step-000120" (zero padded to six digits).</summary>
    public static string ForStep(long globalStep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(globalStep);
        return "step-" + globalStep.ToString("D6", CultureInfo.InvariantCulture);
    }

    public static bool IsValid(string? tag) => Problem(tag) is null;

    /// <exception cref="ArgumentException">The tag cannot name a checkpoint directory.</exception>
    public static void Validate(string tag)
    {
        if (Problem(tag) is { } problem)
        {
            throw new ArgumentException($"invalid checkpoint tag '{tag}': {problem}", nameof(tag));
        }
    }

    private static string? Problem(string? tag)
    {
        if (string.IsNullOrEmpty(tag))
        {
            return "empty";
        }

        if (tag.Length > MaxLength)
        {
            return $"longer than {MaxLength} characters";
        }

        if (tag[0] == '.')
        {
            return "a leading '.' is reserved for the store's temporary entries";
        }

        if (tag == CheckpointStore.LatestFileName)
        {
            return $"'{CheckpointStore.LatestFileName}' is the pointer file's name";
        }

        foreach (var c in tag)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return $"character '{c}' is not allowed (use letters, digits, '-', '_', '.')";
            }
        }

        return null;
    }
}
