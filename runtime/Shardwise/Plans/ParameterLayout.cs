namespace Shardwise.Plans;

/// <summary>How a parameter is initialised before training.</summary>
public enum ParameterInit
{
    /// <summary>Normal(0, 0.02), GPT-2's initialisation for weights and embeddings.</summary>
    Normal,
    Zeros,
    Ones,
}

/// <summary>One parameter's name, shape and place in the flat parameter buffer.</summary>
public sealed record ParameterSlot(string Name, int[] Shape, long Offset, long Length, ParameterInit Init);

/// <summary>
/// Every parameter of a model in one contiguous buffer, as the generator laid it out (execution order, each slot
/// aligned). ZeRO partitions this same buffer, so the shard map is a pure function of the layout.
/// </summary>
public sealed class ParameterLayout
{
    public ParameterLayout(ParameterSlot[] slots, long totalElements)
    {
        Slots = slots;
        TotalElements = totalElements;
        long count = 0;
        foreach (var slot in slots) count += slot.Length;
        ParameterCount = count;
    }

    public global::System.Collections.Generic.IReadOnlyList<ParameterSlot> Slots { get; }

    /// <summary>Elements in the flat buffer, alignment padding included.</summary>
    public long TotalElements { get; }

    /// <summary>Trainable scalars (Ψ), padding excluded.</summary>
    public long ParameterCount { get; }

    /// <summary>Copies eager parameters (in layout order, as the generated <c>GetParameters()</c> returns them) into a flat buffer.</summary>
    public void Pack<T>(Parameter[] parameters, global::System.Span<T> flat) where T : unmanaged, global::System.Numerics.INumberBase<T>
    {
        CheckCount(parameters);
        for (int i = 0; i < parameters.Length; i++)
        {
            var data = parameters[i].Data;
            var destination = flat.Slice(checked((int)Slots[i].Offset), data.Length);
            for (int j = 0; j < data.Length; j++) destination[j] = T.CreateChecked(data[j]);
        }
    }

    /// <summary>Copies a flat buffer back into eager parameters.</summary>
    public void Unpack<T>(global::System.ReadOnlySpan<T> flat, Parameter[] parameters) where T : unmanaged, global::System.Numerics.INumberBase<T>
    {
        CheckCount(parameters);
        for (int i = 0; i < parameters.Length; i++)
        {
            var data = parameters[i].Data;
            var source = flat.Slice(checked((int)Slots[i].Offset), data.Length);
            for (int j = 0; j < data.Length; j++) data[j] = float.CreateChecked(source[j]);
        }
    }

    /// <summary>Fills a flat buffer with each slot's initialisation, deterministically from <paramref name="seed"/>.</summary>
    public void Initialize<T>(global::System.Span<T> flat, int seed) where T : unmanaged, global::System.Numerics.INumberBase<T>
    {
        var random = new global::System.Random(seed);
        flat.Clear();
        foreach (var slot in Slots)
        {
            var destination = flat.Slice(checked((int)slot.Offset), checked((int)slot.Length));
            for (int j = 0; j < destination.Length; j++)
            {
                destination[j] = slot.Init switch
                {
                    ParameterInit.Normal => T.CreateChecked(0.02 * NextGaussian(random)),
                    ParameterInit.Ones => T.One,
                    _ => T.Zero,
                };
            }
        }
    }

    private static double NextGaussian(global::System.Random random)
    {
        // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1].
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return global::System.Math.Sqrt(-2.0 * global::System.Math.Log(u1)) * global::System.Math.Cos(2.0 * global::System.Math.PI * u2);
    }

    private void CheckCount(Parameter[] parameters)
    {
        if (parameters.Length != Slots.Count)
            throw new global::System.ArgumentException($"Expected {Slots.Count} parameters in layout order but got {parameters.Length}.", nameof(parameters));
        for (int i = 0; i < parameters.Length; i++)
        {
            if (parameters[i].Data.Length != Slots[i].Length)
                throw new global::System.ArgumentException($"Parameter '{Slots[i].Name}' has {parameters[i].Data.Length} elements; the layout says {Slots[i].Length}.", nameof(parameters));
        }
    }
}
