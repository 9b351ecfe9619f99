namespace Shardwise;

/// <summary>
/// Marks the forward method of a model or layer. The body runs eagerly as written (debuggable), and the
/// generator traces the same body into a static op list from which it derives the backward pass.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Method, Inherited = false)]
public sealed class ForwardAttribute : global::System.Attribute
{
}
