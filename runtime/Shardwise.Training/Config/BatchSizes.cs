namespace Shardwise.Training.Config;

/// <summary>
/// The batch triple after DeepSpeed's batch rule:
/// TrainBatchSize == MicroBatchPerGpu × GradientAccumulationSteps × DataParallelSize.
/// </summary>
public sealed record BatchSizes(int TrainBatchSize, int MicroBatchPerGpu, int GradientAccumulationSteps, int DataParallelSize);
