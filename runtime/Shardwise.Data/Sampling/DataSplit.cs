namespace Shardwise.Data;

/// <summary>Which part of a <see cref="TokenDataset"/>: the first fraction trains, the rest validates (nanoGPT's layout).</summary>
public enum DataSplit
{
    Train,
    Validation,
}
