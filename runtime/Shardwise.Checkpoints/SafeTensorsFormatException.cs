using System.IO;

namespace Shardwise.Checkpoints;

/// <summary>
/// A safetensors file is malformed, or a read/write does not match its header. The message always starts with
/// the file path and, when one tensor is at fault, names it: "model.safetensors: tensor 'w': ...".
/// </summary>
public sealed class SafeTensorsFormatException : IOException
{
    public SafeTensorsFormatException(string filePath, string? tensorName, string problem)
        : base(tensorName is null ? $"{filePath}: {problem}" : $"{filePath}: tensor '{tensorName}': {problem}")
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    public string FilePath { get; }

    /// <summary>The tensor at fault, or null when the problem is with the file as a whole.</summary>
    public string? TensorName { get; }
}
