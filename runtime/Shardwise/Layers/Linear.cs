using System;
using Shardwise.Cpu;

namespace Shardwise;

/// <summary>y = x · Weightᵀ + Bias over the last dimension; Weight is <c>[out, in]</c> as in PyTorch.</summary>
public sealed class Linear
{
    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        EagerShapes.RequirePositive(inFeatures, nameof(inFeatures));
        EagerShapes.RequirePositive(outFeatures, nameof(outFeatures));
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(outFeatures, inFeatures);
        Bias = bias ? new Parameter(outFeatures) : null;
    }

    public int InFeatures { get; }

    public int OutFeatures { get; }

    public Parameter Weight { get; }

    public Parameter? Bias { get; }

    public Tensor Forward(Tensor x)
    {
        int rows = EagerShapes.RowsOver(x, InFeatures, nameof(Linear));
        var y = Tensor.Zeros(EagerShapes.WithLast(x.Shape, OutFeatures));
        LinearKernels.Forward<float>(x.Data, Weight.Data, Bias is null ? ReadOnlySpan<float>.Empty : Bias.Data,
            y.Data, rows, InFeatures, OutFeatures);
        return y;
    }
}
