using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>Data-parallel gradient sums in device memory (<see cref="IDeviceGradientOps"/>): NCCL on the gradient arena itself.</summary>
public sealed partial class CudaOps : IDeviceGradientOps
{
    public bool SharesDevice(IDeviceAllReduce collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        return collective.DeviceOrdinal == context.DeviceOrdinal;
    }

    public void SumGradients(IDeviceAllReduce collective)
    {
        if (!SharesDevice(collective))
            throw new ArgumentException($"the collective runs on device {collective.DeviceOrdinal}, this backend on {context.DeviceOrdinal}", nameof(collective));
        Begin(); // a host view written since the last operation goes to the device first
        DeviceArena gradients = Arena(Ops.Arena.Gradients);
        if (gradients.Length == 0) return;
        // The collective runs on a stream of its own: the backward's kernels on this backend's stream finish first.
        context.Synchronize();
        collective.SumInPlace(gradients.Address(0), gradients.Length, Storage);
    }
}
