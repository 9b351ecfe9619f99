namespace Shardwise;

/// <summary>Helpers for composing layers in field initializers.</summary>
public static class Layers
{
    /// <summary>
    /// <paramref name="count"/> independent instances made by <paramref name="factory"/>. The generator reads the
    /// count (a constant) and the factory's constructor call, and unrolls the instances.
    /// </summary>
    public static TLayer[] Repeat<TLayer>(int count, global::System.Func<TLayer> factory)
    {
        var layers = new TLayer[count];
        for (int i = 0; i < count; i++) layers[i] = factory();
        return layers;
    }
}
