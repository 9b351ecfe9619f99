namespace Shardwise;

/// <summary>
/// On a field: the field holds a layer (a built-in layer, a user <c>[Layer]</c> class, or an array of them).
/// On a class: the class is a user layer composed of other layers, with its own <c>[Forward]</c> method.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field | global::System.AttributeTargets.Class, Inherited = false)]
public sealed class LayerAttribute : global::System.Attribute
{
}
