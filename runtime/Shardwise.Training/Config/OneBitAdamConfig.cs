namespace Shardwise.Training.Config;

/// <summary>
/// What DeepSpeed's OneBitAdam adds to Adam's parameters. freeze_step: the steps of plain Adam (full-precision gradient
/// averaging) before the variance is frozen and the momentum is averaged with 1-bit compression. cuda_aware and
/// comm_backend_name choose DeepSpeed's transport; Shardwise compresses over the job's own communicator (MPI, NCCL or
/// in-process), so they are read and reported, not acted on.
/// </summary>
public sealed record OneBitAdamConfig
{
    public long FreezeStep { get; init; } = ConfigDefaults.OneBitFreezeStep;

    public bool CudaAware { get; init; }

    public string CommBackendName { get; init; } = "nccl";

    internal static OneBitAdamConfig Read(JsonSection parameters)
    {
        var config = new OneBitAdamConfig
        {
            FreezeStep = parameters.Integer("freeze_step", AutoRule.NotAllowed, min: 0) ?? ConfigDefaults.OneBitFreezeStep,
            CudaAware = parameters.Bool("cuda_aware") ?? false,
            CommBackendName = parameters.String("comm_backend_name") ?? "nccl",
        };
        if (config.CommBackendName is not ("nccl" or "mpi" or "hccl" or "compressed"))
        {
            parameters.Warning("comm_backend_name", $"\"{config.CommBackendName}\" is not one of DeepSpeed's (nccl, mpi, hccl, compressed); the job's communicator is used either way");
        }

        return config;
    }
}
