namespace Shardwise.Training.Precision;

/// <summary>
/// The loss scaler the training step talks to: multiply the loss by <see cref="Scale"/>, check the
/// gradients for overflow, report it through <see cref="Update"/>, and skip the optimizer step when
/// told to. Static and dynamic scaling both skip overflowed steps, as DeepSpeed's ZeRO optimizers do.
/// </summary>
public interface ILossScaler
{
    double Scale { get; }

    bool IsDynamic { get; }

    /// <summary>Optimizer steps skipped because of overflow so far.</summary>
    long SkippedSteps { get; }

    /// <summary>Records one step's overflow result; returns true when the optimizer step must be skipped.</summary>
    bool Update(bool overflow);
}
