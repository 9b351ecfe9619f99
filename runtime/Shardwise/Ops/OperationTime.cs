namespace Shardwise.Ops;

/// <summary>
/// The time of one kind of backend operation (or, on CUDA, of one launch inside it) over a profiled run:
/// <see cref="Milliseconds"/> is the device time on CUDA (<c>Shardwise.Cuda.CudaOpsProfiler</c>) and the wall-clock time
/// of the calls on the CPU (<c>Shardwise.Cpu.CpuOpsProfiler</c>); <see cref="HostMilliseconds"/> is the host's time from
/// the operation's mark to the next one (on CUDA, where it is near the device time the host sets the pace; on the CPU
/// the same as <see cref="Milliseconds"/>).
/// </summary>
public sealed record OperationTime(string Operation, long Calls, double Milliseconds, double HostMilliseconds);
