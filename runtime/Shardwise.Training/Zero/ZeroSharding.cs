using System;
using Shardwise.Distributed;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Zero;

/// <summary>
/// Moves gradients and parameters between the full flat layout and this rank's ZeRO partition.
/// Stage 0 (plain data parallelism) all-reduces the whole gradient in buckets of reduce_bucket_size and every rank
/// keeps everything; stages 1 and 2 reduce-scatter the gradient so each rank receives the reduced gradient of its
/// own partition, update only that partition, and all-gather the updated parameters. Gradients are averaged over
/// ranks, as DeepSpeed does.
/// </summary>
public sealed class ZeroSharding
{
    private readonly ICommunicator _communicator;
    private readonly float[] _padded;    // communication buffer: the layout padded to ranks × partition (stages ≥ 1)
    private readonly float[] _partition; // communication buffer: one partition, sent or received
    private readonly long _bucketElements;

    public ZeroSharding(ShardMap map, ICommunicator communicator, int stage, long reduceBucketElements)
    {
        if (map.Ranks != communicator.Size)
            throw new ArgumentException($"the shard map has {map.Ranks} partitions but the communicator {communicator.Size} ranks");
        Map = map;
        Stage = stage;
        _communicator = communicator;
        _bucketElements = Math.Max(1, reduceBucketElements);
        // Stage 2 partitions per slot (SlotSharding); this class's buffers serve stage 1's flat partitions.
        bool exchange = stage == 1 && communicator.Size > 1;
        _padded = exchange ? new float[map.PaddedElements] : Array.Empty<float>();
        _partition = exchange ? new float[map.PartitionElements] : Array.Empty<float>();
    }

    public ShardMap Map { get; }

    public int Stage { get; }

    public int Rank => _communicator.Rank;

    public ICommunicator Communicator => _communicator;

    /// <summary>Whether this rank keeps optimizer state for its partition only.</summary>
    public bool Partitioned => Stage >= 1;

    /// <summary>Start of the elements whose optimizer state this rank holds (0 for stage 0).</summary>
    public long OwnedStart => Partitioned ? Map.Start(Rank) : 0;

    /// <summary>How many elements this rank updates.</summary>
    public long OwnedLength => Partitioned ? Map.OwnedLength(Rank) : Map.Layout.TotalElements;

    /// <summary>Bytes of communication buffers this rank holds.</summary>
    public long BufferBytes => (_padded.LongLength + _partition.LongLength) * sizeof(float);

    public Span<float> Owned(Span<float> full) => full.Slice(checked((int)OwnedStart), checked((int)OwnedLength));

    /// <summary>After this, <see cref="Owned"/>(gradients) holds the gradient averaged over ranks.</summary>
    public void ReduceGradients(Span<float> gradients)
    {
        int ranks = _communicator.Size;
        if (ranks == 1) return;
        float average = 1f / ranks;
        if (!Partitioned)
        {
            for (long start = 0; start < gradients.Length; start += _bucketElements)
            {
                var bucket = gradients.Slice((int)start, (int)Math.Min(_bucketElements, gradients.Length - start));
                _communicator.AllReduceSum(bucket);
                GradientClipping.Scale(bucket, average);
            }
            return;
        }

        gradients.CopyTo(_padded);
        _padded.AsSpan(gradients.Length).Clear();
        _communicator.ReduceScatterSum(_padded, _partition);
        var owned = Owned(gradients);
        _partition.AsSpan(0, owned.Length).CopyTo(owned);
        GradientClipping.Scale(owned, average);
    }

    /// <summary>After each rank updated its partition, gives every rank the full parameters.</summary>
    public void GatherParameters(Span<float> parameters)
    {
        if (!Partitioned || _communicator.Size == 1) return;
        var owned = Owned(parameters);
        owned.CopyTo(_partition);
        _partition.AsSpan(owned.Length).Clear();
        _communicator.AllGather(_partition, _padded);
        _padded.AsSpan(0, parameters.Length).CopyTo(parameters);
    }

    /// <summary>
    /// Assembles a full-layout copy of per-rank partition data (master weights, Adam moments) on every rank, for
    /// checkpoints. Allocates the full buffer: it is called only when saving.
    /// </summary>
    public float[] GatherFull(ReadOnlySpan<float> owned)
    {
        var full = new float[Map.Layout.TotalElements];
        if (!Partitioned || _communicator.Size == 1)
        {
            owned.CopyTo(full);
            return full;
        }
        owned.CopyTo(_partition);
        _partition.AsSpan(owned.Length).Clear();
        _communicator.AllGather(_partition, _padded);
        _padded.AsSpan(0, full.Length).CopyTo(full);
        return full;
    }

    /// <summary>Σ over ranks of a per-rank partial sum of squares (for the global gradient norm).</summary>
    public double SumOverRanks(double local) => Partitioned ? RankAgreement.Sum(_communicator, local) : local;

    /// <summary>True when any rank saw an overflow (DeepSpeed all-reduces the flag with MAX).</summary>
    public bool AnyRank(bool local) => RankAgreement.Any(_communicator, local);

}
