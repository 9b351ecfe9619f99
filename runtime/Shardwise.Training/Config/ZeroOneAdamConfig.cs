namespace Shardwise.Training.Config;

/// <summary>
/// DeepSpeed's ZeroOneAdam (0/1 Adam, arXiv:2202.06009). Before var_freeze_step the variance is updated only on steps
/// whose gradients are averaged in full, at an interval that doubles every var_update_scaler such steps; on the steps
/// between, the gradient is averaged with 1-bit compression. After it the variance is frozen and each rank takes local
/// steps, synchronising the accumulated update (1-bit compressed) every local_step_interval steps, an interval that
/// doubles every local_step_scaler steps up to local_step_clipper. cuda_aware and comm_backend_name as for OneBitAdam.
/// </summary>
public sealed record ZeroOneAdamConfig
{
    public long VarFreezeStep { get; init; } = 100_000;

    public long VarUpdateScaler { get; init; } = 16;

    public long LocalStepScaler { get; init; } = 32_678;

    public long LocalStepClipper { get; init; } = 16;

    public bool CudaAware { get; init; }

    public string CommBackendName { get; init; } = "nccl";

    internal static ZeroOneAdamConfig Read(JsonSection parameters)
    {
        var (cudaAware, backend) = OneBitAdamConfig.ReadTransport(parameters);
        return new ZeroOneAdamConfig
        {
            VarFreezeStep = parameters.Integer("var_freeze_step", AutoRule.NotAllowed, min: 0) ?? 100_000,
            VarUpdateScaler = parameters.Integer("var_update_scaler", AutoRule.NotAllowed, min: 1) ?? 16,
            // DeepSpeed's default, 32678, as its code spells it.
            LocalStepScaler = parameters.Integer("local_step_scaler", AutoRule.NotAllowed, min: 1) ?? 32_678,
            LocalStepClipper = parameters.Integer("local_step_clipper", AutoRule.NotAllowed, min: 1) ?? 16,
            CudaAware = cudaAware,
            CommBackendName = backend,
        };
    }
}
