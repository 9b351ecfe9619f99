namespace Shardwise;

/// <summary>
/// Marks a partial class as a trainable model. The source generator emits, into the same class, the parameter
/// layout, the activation memory plan and a compiled forward/backward program (<c>Compiled&lt;T&gt;</c>).
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Class, Inherited = false)]
public sealed class ModelAttribute : global::System.Attribute
{
    /// <summary>Pipeline-parallel degree the static plan is made for.</summary>
    public int Pipeline { get; set; } = 1;

    /// <summary>Tensor-parallel degree the static plan is made for.</summary>
    public int Tensor { get; set; } = 1;
}
