namespace Shardwise.Ops;

/// <summary>
/// A backend cannot hold what the plan asks of it (a CPU arena past what one .NET array holds): the trainer reports it
/// as an error line with what to change, not a stack trace.
/// </summary>
public sealed class BackendCapacityException(string message) : System.InvalidOperationException(message);
