using System;

namespace Shardwise.Data;

/// <summary>
/// A saved sampler state that does not fit the sampler asked to continue from it (another batch shape, other data, or
/// the examples drawn another way). <see cref="Reason"/> is the sentence without the parameter name, for a CLI message.
/// </summary>
public sealed class SamplerStateMismatchException(string reason) : ArgumentException(reason, "state")
{
    public string Reason { get; } = reason;
}
