namespace Shardwise.Training.Optim;

/// <summary>The schedule used when the config has no "scheduler" section: the optimizer's lr throughout.</summary>
public sealed record ConstantLearningRate(double Value) : ILearningRateSchedule
{
    public double LearningRate(long step) => Value;
}
