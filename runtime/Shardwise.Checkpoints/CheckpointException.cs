using System.IO;

namespace Shardwise.Checkpoints;

/// <summary>A checkpoint is missing, was never committed, or fails its COMPLETE-marker check.</summary>
public sealed class CheckpointException : IOException
{
    public CheckpointException(string message)
        : base(message)
    {
    }
}
