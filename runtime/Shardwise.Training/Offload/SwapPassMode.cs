namespace Shardwise.Training.Offload;

/// <summary>What a pass over the swapped state does with each chunk.</summary>
public enum SwapPassMode
{
    /// <summary>Read each chunk; nothing is written back.</summary>
    Read,

    /// <summary>Read each chunk, let the caller change it, write it back.</summary>
    Update,

    /// <summary>Write each chunk without reading it first: the caller fills all three spans.</summary>
    Overwrite,
}
