namespace Shardwise.Training.Pipeline;

/// <summary>What a stage does for each kind of <see cref="PipeInstruction"/>; <see cref="PipelineExecutor"/> dispatches to it.</summary>
public interface IPipelineStageOperations
{
    void LoadMicroBatch(int microBatch, int buffer);

    void Forward(int microBatch, int buffer);

    void Backward(int microBatch, int buffer);

    void SendActivation(int microBatch, int buffer);

    void ReceiveActivation(int microBatch, int buffer);

    void SendGradient(int microBatch, int buffer);

    void ReceiveGradient(int microBatch, int buffer);

    void ReduceTiedGradients();

    void ReduceGradients();

    void OptimizerStep();
}
