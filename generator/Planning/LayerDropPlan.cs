using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Where progressive layer drop acts in one program (the whole model or one pipeline stage). <see cref="Layers"/>
/// names every <c>[LayerDrop]</c> element of the model, in model order: an element's index there is its depth for the
/// keep probability and the argument of the program's <c>Keeps(i)</c>, the same on every stage. Per forward op:
/// <see cref="Owner"/> is the element it belongs to (−1 for none); <see cref="BranchInput"/> is, for a residual add
/// <c>y = x + f(x)</c> of an element, which input is the branch f(x) (−1 for every other op). An op of an element that
/// is not such an add is a branch op: skipped with its element. <see cref="BranchEnd"/>[k] is 1 where op k computes a
/// branch's output (scaled by 1/keep, or zeroed when the element is skipped).
/// </summary>
internal sealed record LayerDropPlan(
    EquatableArray<string> Layers,
    EquatableArray<int> Owner,
    EquatableArray<int> BranchInput,
    EquatableArray<int> BranchEnd,
    EquatableArray<LayerDropProblem> Problems)
{
    public static LayerDropPlan None(int ops) => new(EquatableArray<string>.Empty, Repeat(-1, ops), Repeat(-1, ops), Repeat(0, ops),
        EquatableArray<LayerDropProblem>.Empty);

    private static EquatableArray<int> Repeat(int value, int count) => System.Linq.Enumerable.Repeat(value, count).ToEquatableArray();

    public bool IsEmpty => Layers.Count == 0;

    /// <summary>Whether forward op <paramref name="op"/> runs only when its element is kept.</summary>
    public bool IsBranchOp(int op) => Owner[op] >= 0 && BranchInput[op] < 0;
}

/// <summary>Why a <c>[LayerDrop]</c> element cannot be skipped (SW0020), at the attribute.</summary>
internal sealed record LayerDropProblem(string Layer, string Reason, LocationInfo? Location);
