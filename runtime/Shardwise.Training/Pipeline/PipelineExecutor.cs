using System;
using System.Collections.Generic;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// Runs a stage's schedule: the instruction list (<see cref="OneFOneBSchedule"/>) is data, interpreted in order. The
/// schedule decides what runs and when; the operations decide how. Keeping the two apart is what lets
/// <see cref="ScheduleVerifier"/> prove the order deadlock-free without running a model.
/// </summary>
public static class PipelineExecutor
{
    public static void Run(IReadOnlyList<PipeInstruction> program, IPipelineStageOperations stage)
    {
        foreach (PipeInstruction instruction in program) Execute(instruction, stage);
    }

    public static void Execute(PipeInstruction instruction, IPipelineStageOperations stage)
    {
        switch (instruction)
        {
            case LoadMicroBatch i: stage.LoadMicroBatch(i.MicroBatch, i.Buffer); break;
            case Forward i: stage.Forward(i.MicroBatch, i.Buffer); break;
            case Backward i: stage.Backward(i.MicroBatch, i.Buffer); break;
            case SendActivation i: stage.SendActivation(i.MicroBatch, i.Buffer); break;
            case ReceiveActivation i: stage.ReceiveActivation(i.MicroBatch, i.Buffer); break;
            case SendGradient i: stage.SendGradient(i.MicroBatch, i.Buffer); break;
            case ReceiveGradient i: stage.ReceiveGradient(i.MicroBatch, i.Buffer); break;
            case ReduceTiedGradients: stage.ReduceTiedGradients(); break;
            case ReduceGradients: stage.ReduceGradients(); break;
            case OptimizerStep: stage.OptimizerStep(); break;
            default: throw new ArgumentException($"the executor does not know the instruction {instruction}", nameof(instruction));
        }
    }
}
