using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

// Checkpointed inputs kept in host memory ([Checkpoint(InputsOnHost = true)], DeepSpeed's cpu_checkpointing): a pinned
// store per activation window, filled and read by asynchronous copies on the legacy default stream, so they take
// their place in the kernels' order without a host wait. The copies share the stream with the kernels (no overlap yet).
public sealed partial class CudaOps
{
    private PinnedHostMemory? hostActivations;
    private PinnedHostMemory?[] hostWindows = [];
    private long hostActivationElements;

    public void AllocateHostActivations(long elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        EnsureCurrent();
        DisposeHostActivations();
        hostActivationElements = elements;
        hostActivations = elements == 0 ? null : PinnedHostMemory.Allocate(context, elements * elementBytes);
        hostWindows = [hostActivations];
    }

    public void StashActivation(Slice source, long hostOffset)
    {
        Begin();
        CheckSlice(source, source.Length, nameof(source));
        Arena(source.Arena).StashTo(HostStore(hostOffset, source.Length), hostOffset, source.Offset, source.Length);
    }

    public void RestoreActivation(long hostOffset, Slice destination)
    {
        Begin();
        CheckSlice(destination, destination.Length, nameof(destination));
        Arena(destination.Arena).RestoreFrom(HostStore(hostOffset, destination.Length), hostOffset, destination.Offset, destination.Length);
    }

    /// <summary>Pinned bytes of the host activation stores, every window's.</summary>
    public long HostActivationBytes => hostActivationElements * elementBytes * Math.Max(1, hostWindows.Length);

    private PinnedHostMemory HostStore(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > hostActivationElements || hostActivations is null)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is outside the {hostActivationElements}-element host activation store");
        return hostActivations;
    }

    /// <summary>AllocateActivationWindows: a store for every window; window 0 keeps the current one.</summary>
    private void AllocateHostWindows(int count)
    {
        var windows = new PinnedHostMemory?[count];
        windows[0] = hostActivations;
        for (int w = 1; w < count; w++)
            windows[w] = hostActivationElements == 0 ? null : PinnedHostMemory.Allocate(context, hostActivationElements * elementBytes);
        foreach (var old in hostWindows) if (old is not null && Array.IndexOf(windows, old) < 0) old.Dispose();
        hostWindows = windows;
    }

    private void DisposeHostActivations()
    {
        foreach (var window in hostWindows) window?.Dispose();
        if (hostActivations is not null && Array.IndexOf(hostWindows, hostActivations) < 0) hostActivations.Dispose();
        hostWindows = [];
        hostActivations = null;
    }
}
