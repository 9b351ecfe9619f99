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
        long freezeStep = parameters.Integer("freeze_step", AutoRule.NotAllowed, min: 0) ?? ConfigDefaults.OneBitFreezeStep;
        var (cudaAware, backend) = ReadTransport(parameters);
        return new OneBitAdamConfig { FreezeStep = freezeStep, CudaAware = cudaAware, CommBackendName = backend };
    }

    /// <summary>cuda_aware and comm_backend_name, which every 1-bit optimizer takes.</summary>
    internal static (bool CudaAware, string Backend) ReadTransport(JsonSection parameters)
    {
        bool cudaAware = parameters.Bool("cuda_aware") ?? false;
        string backend = parameters.String("comm_backend_name") ?? "nccl";
        if (backend is not ("nccl" or "mpi" or "hccl" or "compressed"))
        {
            parameters.Warning("comm_backend_name", $"\"{backend}\" is not one of DeepSpeed's (nccl, mpi, hccl, compressed); the job's communicator is used either way");
        }

        return (cudaAware, backend);
    }
}
