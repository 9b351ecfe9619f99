using System;
using System.Collections.Generic;
using Shardwise.Ops;

namespace Shardwise.Cuda;

// Checkpointed inputs kept in host memory ([Checkpoint(InputsOnHost = true)], DeepSpeed's cpu_checkpointing): a pinned
// store per activation window, filled and read by asynchronous copies on a copy stream of their own, so they run beside
// the kernels. Each copy waits for the kernels queued before it (an event recorded on the kernels' stream), and the
// kernels wait for the copy only where the generated program says (WaitForStash before the memory is reused,
// WaitForRestore before it is read): the activation planner placed both waits.
public sealed partial class CudaOps
{
    private PinnedHostMemory? hostActivations;
    private PinnedHostMemory?[] hostWindows = [];
    private long hostActivationElements;
    private CudaStream? copyStream;
    private CudaEvent? copyOrder;                                   // recorded on the kernels' stream before each copy
    private readonly Dictionary<long, CudaEvent> stashDone = new();   // by host offset: the last stash's completion
    private readonly Dictionary<long, CudaEvent> restoreDone = new();

    public void AllocateHostActivations(long elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        EnsureCurrent();
        DisposeHostActivations();
        hostActivationElements = elements;
        hostActivations = elements == 0 ? null : PinnedHostMemory.Allocate(context, elements * elementBytes);
        hostWindows = [hostActivations];
    }

    public void StashActivation(Slice source, long hostOffset) => QueueHostCopy(source, hostOffset, toHost: true, nameof(StashActivation));

    public void WaitForStash(long hostOffset) => WaitFor(stashDone, hostOffset);

    public void RestoreActivation(long hostOffset, Slice destination) => QueueHostCopy(destination, hostOffset, toHost: false, nameof(RestoreActivation));

    public void WaitForRestore(long hostOffset) => WaitFor(restoreDone, hostOffset);

    /// <summary>Queues the copy between <paramref name="slice"/> and the host store on the copy stream, and records its completion.</summary>
    private void QueueHostCopy(Slice slice, long hostOffset, bool toHost, string operation)
    {
        Begin(operation);
        CheckSlice(slice, slice.Length, nameof(slice), operation);
        PinnedHostMemory store = HostStore(hostOffset, slice.Length);
        CudaStream copies = OrderCopyAfterKernels();
        DeviceArena arena = Arena(slice.Arena);
        if (toHost) arena.StashTo(store, hostOffset, slice.Offset, slice.Length, copies);
        else arena.RestoreFrom(store, hostOffset, slice.Offset, slice.Length, copies);
        Done(toHost ? stashDone : restoreDone, hostOffset).Record(copies);
    }

    /// <summary>Pinned bytes of the host activation stores, every window's.</summary>
    public long HostActivationBytes => hostActivationElements * elementBytes * Math.Max(1, hostWindows.Length);

    /// <summary>The copy stream, made to wait for every kernel queued so far (they produced, or last used, the slice).</summary>
    private CudaStream OrderCopyAfterKernels()
    {
        copyStream ??= CudaStream.Create(context);
        copyOrder ??= CudaEvent.Create(context, timing: false);
        copyOrder.Record();
        copyOrder.MakeStreamWait(copyStream);
        return copyStream;
    }

    private CudaEvent Done(Dictionary<long, CudaEvent> events, long hostOffset)
    {
        if (!events.TryGetValue(hostOffset, out var done)) events[hostOffset] = done = CudaEvent.Create(context, timing: false);
        return done;
    }

    // Waits on the event's last record. With several activation windows in flight that may be a later micro-batch's
    // copy at the same offset: it is behind this one on the copy stream, so waiting for it waits for this one too.
    private void WaitFor(Dictionary<long, CudaEvent> events, long hostOffset)
    {
        EnsureCurrent();
        if (!events.TryGetValue(hostOffset, out var done))
            throw new InvalidOperationException($"no copy at host offset {hostOffset} was queued to wait for");
        done.MakeStreamWait(null);
    }

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
        // The copies read or write the stores: they finish first.
        copyStream?.Synchronize();
        foreach (var window in hostWindows) window?.Dispose();
        if (hostActivations is not null && Array.IndexOf(hostWindows, hostActivations) < 0) hostActivations.Dispose();
        hostWindows = [];
        hostActivations = null;
    }

    private void DisposeCopyStream()
    {
        foreach (var done in stashDone.Values) done.Dispose();
        foreach (var done in restoreDone.Values) done.Dispose();
        copyOrder?.Dispose();
        copyStream?.Dispose();
    }
}
