namespace Shardwise;

/// <summary>
/// A forward input holding token indices, shaped <c>[batch, ..dims]</c>. The batch dimension is chosen at run time;
/// every other dimension is a compile-time constant.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Parameter, Inherited = false)]
public sealed class TokensAttribute : global::System.Attribute
{
    public TokensAttribute(params int[] dims) => Dims = dims;

    public int[] Dims { get; }
}

/// <summary>A real-valued forward input shaped <c>[batch, ..dims]</c>; its gradient is computed too.</summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Parameter, Inherited = false)]
public sealed class ShapeAttribute : global::System.Attribute
{
    public ShapeAttribute(params int[] dims) => Dims = dims;

    public int[] Dims { get; }
}
