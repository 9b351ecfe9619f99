using System;
using Shardwise.Cpu;

namespace Shardwise;

/// <summary>Causal multi-head self-attention: Projection(attention(Qkv(x))) with q, k, v side by side in Qkv's output.</summary>
public sealed class CausalSelfAttention
{
    public CausalSelfAttention(int dim, int heads, bool bias = true)
    {
        EagerShapes.RequirePositive(dim, nameof(dim));
        EagerShapes.RequirePositive(heads, nameof(heads));
        if (dim % heads != 0)
        {
            throw new ArgumentException($"Attention dim {dim} is not divisible into {heads} heads.", nameof(heads));
        }

        Dim = dim;
        Heads = heads;
        Qkv = new Linear(dim, 3 * dim, bias);
        Projection = new Linear(dim, dim, bias);
    }

    public int Dim { get; }

    public int Heads { get; }

    public Linear Qkv { get; }

    public Linear Projection { get; }

    /// <summary>x <c>[batch, seq, dim]</c> → <c>[batch, seq, dim]</c>.</summary>
    public Tensor Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 3 || x.Shape[2] != Dim)
        {
            throw new ArgumentException(
                $"{nameof(CausalSelfAttention)} needs [batch, seq, {Dim}], but got shape {Tensor.Describe(x.Shape)}.");
        }

        int batch = x.Shape[0], sequence = x.Shape[1];
        Tensor qkv = Qkv.Forward(x);
        var attended = Tensor.Zeros(x.Shape);
        var logSumExp = new float[(long)batch * Heads * sequence];
        var scores = new float[(long)sequence * sequence];
        AttentionKernels.Forward<float>(qkv.Data, attended.Data, logSumExp, scores, batch, sequence, Heads, Dim);
        return Projection.Forward(attended);
    }
}
