namespace Shardwise.Training.Cli;

/// <summary>The three fp32 layout-sized tensors a checkpoint holds for the optimizer to continue.</summary>
public enum CheckpointStateTensor
{
    /// <summary>The fp32 master weights.</summary>
    Master,

    /// <summary>Adam's first moment.</summary>
    ExpAvg,

    /// <summary>Adam's second moment.</summary>
    ExpAvgSq,
}
