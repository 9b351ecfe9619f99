using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Where random-LTD acts in one program (the whole model or one pipeline stage). <see cref="Layers"/> names every
/// <c>[TokenDrop]</c> element of the model, in model order: an element's index there is the argument of the program's
/// <c>KeptTokens(i, …)</c> and <c>KeptTokenIndices(i, …)</c>, the same on every stage. <see cref="Element"/>[k] is the
/// element whose kept tokens forward op k runs on (−1 for an op over every token, the gather and scatter included):
/// its row counts, and attention's sequence, are the element's kept count at run time.
/// </summary>
internal sealed record TokenDropPlan(
    EquatableArray<string> Layers,
    EquatableArray<int> Element,
    EquatableArray<TokenDropProblem> Problems)
{
    public static TokenDropPlan None(int ops) => new(EquatableArray<string>.Empty, System.Linq.Enumerable.Repeat(-1, ops).ToEquatableArray(),
        EquatableArray<TokenDropProblem>.Empty);

    public bool IsEmpty => Layers.Count == 0;
}

/// <summary>Why a <c>[TokenDrop]</c> element cannot run on a subset of its tokens (SW0021), at the attribute.</summary>
internal sealed record TokenDropProblem(string Layer, string Reason, LocationInfo? Location);
