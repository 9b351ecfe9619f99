using System;

namespace Shardwise.Training.Engine;

/// <summary>
/// Makes the engine's two whole-model scalars — the global gradient norm (for clipping) and the fp16 overflow flag —
/// span a model split over several ranks (pipeline stages, tensor ranks). The engine computes both over its own
/// gradients and its data-parallel group; with this hook it counts only the elements this rank owns once in the model
/// and then reduces over the model-parallel group. Null (the default) means this rank holds the whole model.
/// </summary>
public interface IModelParallelReduction
{
    /// <summary>
    /// Σ of squares of the elements of <paramref name="gradients"/> (which start at <paramref name="layoutOffset"/> of
    /// this rank's layout) that this rank counts: a parameter held by several ranks is counted on one of them.
    /// </summary>
    double SumOfSquares(ReadOnlySpan<float> gradients, long layoutOffset);

    /// <summary>Σ over the model-parallel group.</summary>
    double Sum(double local);

    /// <summary>True on every rank when any rank of the model-parallel group passes true.</summary>
    bool Any(bool local);
}
