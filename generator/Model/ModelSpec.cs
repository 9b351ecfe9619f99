namespace Shardwise.Generator.Model;

/// <summary>Everything the generator needs about one [Model] class, as plain values.</summary>
internal sealed record ModelSpec(
    string Namespace,
    string ClassName,
    EquatableArray<string> ContainingTypes,
    string Accessibility,
    int Pipeline,
    int Tensor,
    ForwardMethod Forward,
    EquatableArray<ForwardMethod> LayerForwards,
    LayerNode Root);

/// <summary>A [Forward] method: the declaring type, its inputs and its body.</summary>
internal sealed record ForwardMethod(
    string TypeName,
    EquatableArray<ForwardInput> Inputs,
    EquatableArray<ForwardStatement> Body,
    LocationInfo? Location);

/// <summary>An input of a [Forward] method. For the model's own forward, <see cref="Dims"/> is the per-sample shape.</summary>
internal sealed record ForwardInput(string Name, bool IsTokens, EquatableArray<int> Dims, LocationInfo? Location);
