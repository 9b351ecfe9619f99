using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>
/// Random-LTD's token gather and scatter (DeepSpeed's GatherTokens / ScatterTokens): a layer runs on each sample's
/// kept tokens packed at the front; the tokens it skips keep their input. Kept indices are <c>[batch, keptCount]</c>,
/// each row strictly increasing, so "is token t kept" is a binary search of its sample's row. Every method checks the
/// indices before it writes anything (a bad index would touch another sample's rows), as CudaOps does.
/// </summary>
public static class TokenDropKernels
{
    /// <summary>y[b, j, :] = x[b, kept[b, j], :].</summary>
    public static void Gather<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> kept, Span<T> y, int batch, int sequence, int keptCount, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckKept(kept, batch, sequence, keptCount);
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < keptCount; j++)
            {
                int t = kept[(b * keptCount) + j];
                x.Slice(((b * sequence) + t) * dim, dim).CopyTo(y.Slice(((b * keptCount) + j) * dim, dim));
            }
        }
    }

    /// <summary>dx[b, kept[b, j], :] (=|+=) dy[b, j, :]; overwriting zeroes the rows not kept.</summary>
    public static void GatherBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<int> kept, Span<T> dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckKept(kept, batch, sequence, keptCount);
        if (!accumulate) dx.Slice(0, batch * sequence * dim).Clear();
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < keptCount; j++)
            {
                int t = kept[(b * keptCount) + j];
                var source = dy.Slice(((b * keptCount) + j) * dim, dim);
                var target = dx.Slice(((b * sequence) + t) * dim, dim);
                if (accumulate) TensorPrimitives.Add(target, source, target);
                else source.CopyTo(target);
            }
        }
    }

    /// <summary>y[b, t, :] = layer[b, j, :] where t = kept[b, j], else x[b, t, :].</summary>
    public static void Scatter<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> layer, ReadOnlySpan<int> kept, Span<T> y, int batch, int sequence, int keptCount, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckKept(kept, batch, sequence, keptCount);
        for (int b = 0; b < batch; b++)
        {
            var row = kept.Slice(b * keptCount, keptCount);
            for (int t = 0; t < sequence; t++)
            {
                int j = row.BinarySearch(t);
                var source = j >= 0 ? layer.Slice(((b * keptCount) + j) * dim, dim) : x.Slice(((b * sequence) + t) * dim, dim);
                source.CopyTo(y.Slice(((b * sequence) + t) * dim, dim));
            }
        }
    }

    /// <summary>dx[b, t, :] (=|+=) dy[b, t, :] for the tokens not kept; overwriting zeroes the kept rows.</summary>
    public static void ScatterBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<int> kept, Span<T> dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckKept(kept, batch, sequence, keptCount);
        for (int b = 0; b < batch; b++)
        {
            var row = kept.Slice(b * keptCount, keptCount);
            for (int t = 0; t < sequence; t++)
            {
                var target = dx.Slice(((b * sequence) + t) * dim, dim);
                var source = dy.Slice(((b * sequence) + t) * dim, dim);
                bool isKept = row.BinarySearch(t) >= 0;
                if (accumulate)
                {
                    if (!isKept) TensorPrimitives.Add(target, source, target);
                }
                else if (isKept) target.Clear();
                else source.CopyTo(target);
            }
        }
    }

    /// <summary>Each sample's <paramref name="keptCount"/> indices rise strictly within [0, <paramref name="sequence"/>).</summary>
    public static void CheckKept(ReadOnlySpan<int> kept, int batch, int sequence, int keptCount)
    {
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < keptCount; j++)
            {
                int t = kept[(b * keptCount) + j];
                if ((uint)t >= (uint)sequence || (j > 0 && t <= kept[(b * keptCount) + j - 1]))
                    throw new ArgumentException($"kept token indices of sample {b} must rise strictly within [0, {sequence}); index {j} is {t}.", nameof(kept));
            }
        }
    }
}
