using System.Collections.Generic;

namespace Shardwise.Checkpoints;

/// <summary>A tensor's entry in a safetensors header, with its byte range in the data section.</summary>
/// <param name="DataBegin">Offset of the first byte, relative to the start of the data section (not the file).</param>
/// <param name="DataEnd">Offset one past the last byte, relative to the start of the data section.</param>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, IReadOnlyList<long> Shape, long DataBegin, long DataEnd)
{
    public long ByteLength => DataEnd - DataBegin;

    public long ElementCount => ByteLength / DType.ElementSize();
}
