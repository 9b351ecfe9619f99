namespace Shardwise.Training.Optim;

/// <summary>
/// A learning-rate schedule as a pure function of the step, so resuming from a checkpoint needs only
/// the step count. <c>step</c> is DeepSpeed's <c>last_batch_iteration</c>: the number of completed
/// scheduler steps, 0 for the first value after the schedule starts.
/// </summary>
public interface ILearningRateSchedule
{
    double LearningRate(long step);
}
