using System;
using System.Linq;
using System.Numerics;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>A CpuOps with roomy arenas and a bump allocator for slices, exchanging values as double.</summary>
internal sealed class OpHarness<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private long nextParameter, nextActivation, nextIndex;

    public OpHarness(int capacity = 1 << 17)
    {
        Ops.Allocate(Arena.Parameters, capacity);
        Ops.Allocate(Arena.Gradients, capacity);
        Ops.Allocate(Arena.Activations, capacity);
        Ops.AllocateIndices(capacity);
    }

    public CpuOps<T> Ops { get; } = new();

    public Slice Parameter(double[] values)
    {
        var slice = new Slice(Arena.Parameters, nextParameter, values.Length);
        nextParameter += values.Length;
        Write(slice, values);
        return slice;
    }

    /// <summary>A parameter's gradient lives at the same offset of the gradient arena.</summary>
    public static Slice GradientOf(Slice parameter) => parameter with { Arena = Arena.Gradients };

    public Slice Activation(long length)
    {
        var slice = new Slice(Arena.Activations, nextActivation, length);
        nextActivation += length;
        return slice;
    }

    public Slice Activation(double[] values)
    {
        Slice slice = Activation(values.Length);
        Write(slice, values);
        return slice;
    }

    public IndexSlice Indices(int[] values)
    {
        var slice = new IndexSlice(nextIndex, values.Length);
        nextIndex += values.Length;
        Ops.LoadIndices(values, slice);
        return slice;
    }

    public double[] Read(Slice slice)
    {
        var values = new T[slice.Length];
        Ops.Store(slice, values);
        return values.Select(double.CreateChecked).ToArray();
    }

    public void Write(Slice slice, double[] values) =>
        Ops.Load(values.Select(T.CreateChecked).ToArray(), slice);

    public double Read(Slice slice, int index) => double.CreateChecked(Ops.View(slice.Arena)[(int)slice.Offset + index]);

    public void Write(Slice slice, int index, double value) =>
        Ops.View(slice.Arena)[(int)slice.Offset + index] = T.CreateChecked(value);

    /// <summary>Σ y·r, the loss whose gradient with respect to y is r.</summary>
    public double Dot(Slice y, double[] r)
    {
        double[] values = Read(y);
        double sum = 0;
        for (int i = 0; i < values.Length; i++) sum += values[i] * r[i];
        return sum;
    }
}
