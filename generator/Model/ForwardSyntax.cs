namespace Shardwise.Generator.Model;

// The subset of C# a [Forward] body may use, as value-equatable records. The parser translates Roslyn syntax into
// these, so later stages never see syntax nodes; anything outside the subset becomes an SW0002 diagnostic instead.

internal abstract record ForwardStatement(LocationInfo? Location);

/// <summary><c>var x = value;</c> or <c>x = value;</c></summary>
internal sealed record AssignStatement(string Variable, ForwardExpression Value, LocationInfo? Location)
    : ForwardStatement(Location);

/// <summary><c>foreach (var item in field) { body }</c> over a layer array, unrolled at build time.</summary>
internal sealed record ForEachStatement(string Variable, ForwardExpression Collection, EquatableArray<ForwardStatement> Body, LocationInfo? Location)
    : ForwardStatement(Location);

/// <summary><c>return value;</c></summary>
internal sealed record ReturnStatement(ForwardExpression Value, LocationInfo? Location) : ForwardStatement(Location);

internal abstract record ForwardExpression(LocationInfo? Location);

/// <summary>A local variable or a parameter of the forward method.</summary>
internal sealed record NameExpression(string Name, LocationInfo? Location) : ForwardExpression(Location);

/// <summary>A [Layer] field of the enclosing class (<c>field</c> or <c>this.field</c>).</summary>
internal sealed record FieldExpression(string Field, LocationInfo? Location) : ForwardExpression(Location);

/// <summary><c>collection[index]</c> with a constant index.</summary>
internal sealed record ElementExpression(ForwardExpression Collection, int Index, LocationInfo? Location)
    : ForwardExpression(Location);

/// <summary><c>receiver.Method(args)</c>, where the receiver is a layer or a tensor.</summary>
internal sealed record MethodCallExpression(ForwardExpression Receiver, string Method, EquatableArray<ForwardExpression> Arguments, LocationInfo? Location)
    : ForwardExpression(Location);

/// <summary><c>Type.Method(args)</c> on a runtime static class such as <c>Activations</c> or <c>Loss</c>.</summary>
internal sealed record StaticCallExpression(string Type, string Method, EquatableArray<ForwardExpression> Arguments, LocationInfo? Location)
    : ForwardExpression(Location);

/// <summary><c>left + right</c>: a residual add.</summary>
internal sealed record AddExpression(ForwardExpression Left, ForwardExpression Right, LocationInfo? Location)
    : ForwardExpression(Location);
