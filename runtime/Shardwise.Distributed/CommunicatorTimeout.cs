using System;
using System.Globalization;

namespace Shardwise.Distributed;

/// <summary>
/// The default deadline of a communicator call: <c>SHARDWISE_COMM_TIMEOUT_SECONDS</c> when set, else 300 s — long
/// enough for a slow rank to finish a large step, short enough that a dead peer does not hang a job for hours.
/// </summary>
public static class CommunicatorTimeout
{
    public const string EnvironmentVariable = "SHARDWISE_COMM_TIMEOUT_SECONDS";

    public static readonly TimeSpan Default = TimeSpan.FromSeconds(300);

    /// <summary>Reads <see cref="EnvironmentVariable"/>; a malformed or non-positive value is an error, not ignored.</summary>
    public static TimeSpan FromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(text)) return Default;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds)
            || !double.IsFinite(seconds) || seconds <= 0)
        {
            throw new ArgumentException(
                $"{EnvironmentVariable}='{text}' is not a positive number of seconds.", EnvironmentVariable);
        }
        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>"10 s" or "0.5 s": how messages print a timeout.</summary>
    public static string Format(TimeSpan timeout) =>
        timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";
}
