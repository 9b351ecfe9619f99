using System;

namespace Shardwise.Data;

/// <summary>
/// One materialised batch, row-major [BatchSize, ContextLength]: Targets[b, t] is the token after Inputs[b, t].
/// Used for the fixed evaluation set; training batches are written into caller buffers instead.
/// </summary>
public sealed class TokenBatch
{
    public TokenBatch(int batchSize, int contextLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        BatchSize = batchSize;
        ContextLength = contextLength;
        Inputs = new int[batchSize * contextLength];
        Targets = new int[batchSize * contextLength];
    }

    public int BatchSize { get; }

    public int ContextLength { get; }

    public int[] Inputs { get; }

    public int[] Targets { get; }
}
