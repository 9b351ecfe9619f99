using System;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Zero;

/// <summary>
/// DeepSpeed's overlap_comm for data parallelism: during the backward pass of an accumulation boundary, each bucket of
/// reduce_bucket_size gradients is all-reduced as soon as the generated code announces it final
/// (<see cref="IGradientListener"/>, from the static schedule), while backward goes on with earlier layers. Buckets
/// are cut from the end of the layout, the order in which gradients finish. <see cref="Finish"/> reduces the rest.
/// </summary>
public sealed class OverlappedAllReduce : IGradientListener
{
    /// <summary>Gives the current gradient buffer (a span cannot be stored, so it is asked for when needed).</summary>
    public delegate Span<float> GradientBuffer();

    private readonly ICommunicator _communicator;
    private readonly GradientBuffer _gradients;
    private readonly long _bucketElements;
    private readonly StorageType _storage;
    private long _reducedFrom; // gradients at offsets ≥ this are already reduced

    public OverlappedAllReduce(ICommunicator communicator, GradientBuffer gradients, long bucketElements, StorageType storage)
    {
        _communicator = communicator;
        _gradients = gradients;
        _bucketElements = Math.Max(1, bucketElements);
        _storage = storage;
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

    /// <summary>Reduces whatever backward left, in buckets, down to offset 0.</summary>
    public void Finish()
    {
        while (_reducedFrom > 0) Reduce(Math.Max(0, _reducedFrom - _bucketElements), Math.Min(_bucketElements, _reducedFrom));
    }

    private void Reduce(long start, long length)
    {
        var bucket = _gradients().Slice(checked((int)start), checked((int)length));
        StorageRounding.RoundInPlace(bucket, _storage); // communicate what 16-bit gradient storage holds
        _communicator.AllReduceSum(bucket);
        GradientClipping.Scale(bucket, 1f / _communicator.Size);
        _reducedFrom = start;
    }
}
