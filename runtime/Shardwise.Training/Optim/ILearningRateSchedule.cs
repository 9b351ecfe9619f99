namespace Shardwise.Training.Optim;

/// <summary>
/// A learning-rate schedule as a pure function of the step, so resuming from a checkpoint needs only
/// the step count. <c>step</c> is DeepSpeed's <c>last_batch_iteration</c>: the number of completed
/// scheduler steps, 0 for the first value after the schedule starts.
/// </summary>
public interface ILearningRateSchedule
{
    double LearningRate(long step);

    /// <summary>
    /// Adam's (β1, β2) for the step where the schedule sets them (OneCycle's cyclic momentum), else null: the
    /// optimizer keeps its own.
    /// </summary>
    (double Beta1, double Beta2)? Betas(long step) => null;
}
