namespace Shardwise.Ops;

/// <summary>The separately allocated regions a compiled program addresses.</summary>
public enum Arena : byte
{
    /// <summary>All parameters, in the generated parameter layout.</summary>
    Parameters,
    /// <summary>Parameter gradients, same layout as <see cref="Parameters"/>.</summary>
    Gradients,
    /// <summary>Activations, saved tensors and activation gradients, placed by the activation memory plan.</summary>
    Activations,
}

/// <summary>A contiguous run of real-valued elements inside one arena.</summary>
public readonly record struct Slice(Arena Arena, long Offset, long Length);

/// <summary>A contiguous run of token indices inside the backend's index arena.</summary>
public readonly record struct IndexSlice(long Offset, long Length);
