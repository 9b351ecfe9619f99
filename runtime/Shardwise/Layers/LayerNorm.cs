using Shardwise.Cpu;

namespace Shardwise;

/// <summary>Layer normalisation over the last dimension with a learned scale (Weight) and shift (Bias).</summary>
public sealed class LayerNorm
{
    public LayerNorm(int dim)
    {
        EagerShapes.RequirePositive(dim, nameof(dim));
        Dim = dim;
        Weight = new Parameter(dim);
        Bias = new Parameter(dim);
    }

    public int Dim { get; }

    public Parameter Weight { get; }

    public Parameter Bias { get; }

    public Tensor Forward(Tensor x)
    {
        int rows = EagerShapes.RowsOver(x, Dim, nameof(LayerNorm));
        var y = Tensor.Zeros(x.Shape);
        // Eager code has no backward pass, so the saved statistics are dropped.
        var mean = new float[rows];
        var rstd = new float[rows];
        LayerNormKernels.Forward<float>(x.Data, Weight.Data, Bias.Data, y.Data, mean, rstd, rows, Dim);
        return y;
    }
}
