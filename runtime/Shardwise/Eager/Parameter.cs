namespace Shardwise;

/// <summary>A trainable tensor owned by an eager layer (float32). Its place in the flat buffer comes from the generated layout.</summary>
public sealed class Parameter
{
    public Parameter(params int[] shape)
    {
        Shape = shape;
        long count = 1;
        foreach (int d in shape) count *= d;
        Data = new float[count];
    }

    public int[] Shape { get; }

    public float[] Data { get; }
}
