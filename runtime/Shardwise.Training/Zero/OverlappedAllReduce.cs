using System;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.Training.Zero;

/// <summary>
/// DeepSpeed's overlap_comm for data parallelism: during the backward pass of an accumulation boundary, each bucket of
/// reduce_bucket_size gradients is all-reduced as soon as the generated code announces it final
/// (<see cref="IGradientListener"/>, from the static schedule), while backward goes on with earlier layers. Buckets
/// are cut from the end of the layout, the order in which gradients finish. <see cref="Finish"/> reduces the rest.
/// On the host (<see cref="OnHost"/>) each bucket is reduced at once through the communicator; on a GPU
/// (<see cref="OnDevice"/>) each is queued on the collective's stream and backward's kernels go on meanwhile, and
/// <see cref="Finish"/> waits for the last.
/// </summary>
public sealed class OverlappedAllReduce : IGradientListener
{
    /// <summary>Gives the current gradient buffer (a span cannot be stored, so it is asked for when needed).</summary>
    public delegate Span<float> GradientBuffer();

    private readonly Action<long, long> _reduce; // (start, length) of one bucket
    private readonly Action _complete;           // after the last bucket: every reduction is done when it returns
    private readonly long _bucketElements;
    private long _reducedFrom; // gradients at offsets ≥ this are already reduced (or queued)

    private OverlappedAllReduce(long bucketElements, Action<long, long> reduce, Action complete)
    {
        _bucketElements = Math.Max(1, bucketElements);
        _reduce = reduce;
        _complete = complete;
    }

    /// <summary>Host gradients: each bucket rounded to the storage type, summed over the ranks and averaged.</summary>
    public static OverlappedAllReduce OnHost(GradientReduction reduction, GradientBuffer gradients, long bucketElements, StorageType storage)
        => new(bucketElements, (start, length) =>
        {
            var bucket = gradients().Slice(checked((int)start), checked((int)length));
            StorageRounding.RoundInPlace(bucket, storage); // communicate what 16-bit gradient storage holds
            reduction.AllReduceAverage(bucket);
        }, complete: () => { });

    /// <summary>A backend's gradient arena on a GPU: each bucket averaged in place by a queued device collective (NCCL).</summary>
    public static OverlappedAllReduce OnDevice(IDeviceGradientOps ops, IDeviceCollective collective, long bucketElements)
    {
        DeviceCollectiveTicket last = DeviceCollectiveTicket.None;
        return new(bucketElements, (start, length) => last = ops.AverageGradientRange(collective, start, length),
            complete: () => collective.Complete(last));
    }

    /// <summary>Buckets reduced during the current backward pass (for tests and progress).</summary>
    public int BucketsDuringBackward { get; private set; }

    /// <summary>Starts a backward pass whose gradients will be reduced.</summary>
    public void Begin(long totalElements)
    {
        _reducedFrom = totalElements;
        BucketsDuringBackward = 0;
    }

    public void GradientsReady(long fromOffset)
    {
        while (_reducedFrom - fromOffset >= _bucketElements)
        {
            Reduce(_reducedFrom - _bucketElements, _bucketElements);
            BucketsDuringBackward++;
        }
    }

    /// <summary>Reduces whatever backward left, in buckets, down to offset 0, and returns when every bucket is reduced.</summary>
    public void Finish()
    {
        while (_reducedFrom > 0) Reduce(Math.Max(0, _reducedFrom - _bucketElements), Math.Min(_bucketElements, _reducedFrom));
        _complete();
    }

    private void Reduce(long start, long length)
    {
        _reduce(start, length);
        _reducedFrom = start;
    }
}
