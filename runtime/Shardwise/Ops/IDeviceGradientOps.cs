namespace Shardwise.Ops;

/// <summary>
/// Implemented by a backend whose gradient arena lives on a GPU: a data-parallel step can sum it over the ranks with
/// an <see cref="IDeviceAllReduce"/> on that GPU, and then run the fused optimizer step there
/// (<see cref="IFusedOptimizerOps"/>) on every rank, instead of moving every gradient and parameter through the host.
/// </summary>
public interface IDeviceGradientOps
{
    /// <summary>Whether <paramref name="collective"/> works on this backend's device.</summary>
    bool SharesDevice(IDeviceAllReduce collective);

    /// <summary>
    /// gradients = Σ over ranks of each rank's gradient arena, in place, in the arena's storage type (the engine folds
    /// the 1/ranks of the average into its unscale and clip factor). Every rank calls it at the same step.
    /// </summary>
    void SumGradients(IDeviceAllReduce collective);
}
