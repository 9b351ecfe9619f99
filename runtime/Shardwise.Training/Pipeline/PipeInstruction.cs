namespace Shardwise.Training.Pipeline;

/// <summary>
/// One instruction of a pipeline schedule, as data (DeepSpeed's <c>pipe/schedule.py</c>): a schedule says what runs,
/// an executor decides how. Instructions on a micro-batch name the micro-batch and the stage-local buffer slot that
/// holds its activations and gradients.
/// </summary>
public abstract record PipeInstruction;

/// <summary>An instruction on one micro-batch, held in buffer slot <see cref="Buffer"/> of this stage.</summary>
public abstract record BufferInstruction(int MicroBatch, int Buffer) : PipeInstruction;

/// <summary>Load the micro-batch's inputs (first stage) or labels (last stage) from the data loader.</summary>
public sealed record LoadMicroBatch(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Run this stage's layers forward on the micro-batch.</summary>
public sealed record Forward(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Run this stage's layers backward on the micro-batch (parameter gradients accumulate).</summary>
public sealed record Backward(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Send the stage's output activation to the next stage.</summary>
public sealed record SendActivation(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Receive the input activation from the previous stage.</summary>
public sealed record ReceiveActivation(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Send the gradient of the stage's input to the previous stage.</summary>
public sealed record SendGradient(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>Receive the gradient of the stage's output from the next stage.</summary>
public sealed record ReceiveGradient(int MicroBatch, int Buffer) : BufferInstruction(MicroBatch, Buffer);

/// <summary>All-reduce the gradients of parameters held by several stages (a tied embedding and output head).</summary>
public sealed record ReduceTiedGradients : PipeInstruction;

/// <summary>All-reduce (or reduce-scatter, under ZeRO) the stage's gradients across its data-parallel group.</summary>
public sealed record ReduceGradients : PipeInstruction;

/// <summary>Apply the optimizer to the stage's parameters; ends the batch.</summary>
public sealed record OptimizerStep : PipeInstruction;
