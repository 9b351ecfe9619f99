namespace Shardwise.PipelineBench;

/// <summary>
/// One line of the table: a run of <see cref="Stages"/> stages (1: the whole program in one process) over
/// <see cref="MicroBatches"/> micro-batches of <see cref="MicroBatch"/> sequences per step.
/// </summary>
/// <param name="MillisecondsPerStep">Mean wall-clock time of a timed step, over the steps and the ranks.</param>
/// <param name="IdlePerStage">Each stage's time blocked in receives over its step time (empty for one process).</param>
/// <param name="WaitPerStage">Each stage's time in receives, sends and collectives over its step time (empty for one process).</param>
/// <param name="Loss">The last step's mean loss (the same model on the same batches: runs of one row set agree).</param>
internal sealed record BenchRow(int Stages, int MicroBatches, int MicroBatch, double MillisecondsPerStep, double[] IdlePerStage, double[] WaitPerStage, double Loss)
{
    public int TokensPerStep => MicroBatches * MicroBatch * BenchGptShape.Context;

    public double TokensPerSecond => TokensPerStep / (MillisecondsPerStep / 1000);

    public double MeanIdle => Mean(IdlePerStage);

    public double MeanWait => Mean(WaitPerStage);

    private static double Mean(double[] values)
    {
        double sum = 0;
        foreach (double value in values) sum += value;
        return values.Length == 0 ? 0 : sum / values.Length;
    }
}
