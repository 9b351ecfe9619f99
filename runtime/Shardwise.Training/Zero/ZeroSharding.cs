using System;
using Shardwise.Distributed;
using Shardwise.Training.Config;
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
    private float[]? _padded;    // communication buffer: the layout padded to ranks × partition (stage 1, several ranks)
    private float[]? _partition; // communication buffer: one partition, sent or received
    private readonly long _bucketElements;
    private readonly GradientReduction _reduction;

    /// <param name="communication">communication_data_type, prescale_gradients, gradient_predivide_factor (null: the defaults).</param>
    public ZeroSharding(ShardMap map, ICommunicator communicator, int stage, long reduceBucketElements, GradientCommunicationConfig? communication = null)
    {
        if (map.Ranks != communicator.Size)
            throw new ArgumentException($"the shard map has {map.Ranks} partitions but the communicator {communicator.Size} ranks");
        Map = map;
        Stage = stage;
        _communicator = communicator;
        _bucketElements = Math.Max(1, reduceBucketElements);
        _reduction = new GradientReduction(communicator, communication ?? GradientCommunicationConfig.Default, LargestReduction(map, stage, reduceBucketElements));
    }

    /// <summary>The most elements one gradient reduction takes: stage 0 reduces buckets of the layout, stage 1 the padded layout at once.</summary>
    public static long LargestReduction(ShardMap map, int stage, long reduceBucketElements)
        => stage == 0 ? Math.Min(Math.Max(1, reduceBucketElements), map.Layout.TotalElements) : map.PaddedElements;

    /// <summary>The sums behind the averages (communication_data_type and the scaling around the wire).</summary>
    public GradientReduction Reduction => _reduction;

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

    /// <summary>
    /// Set by the engine when the backend exchanges gradients and parameters in device memory (NCCL on the arenas):
    /// then this class only gathers partitions for checkpoints, and its host buffers are not counted.
    /// </summary>
    public bool ExchangesInDeviceMemory { get; set; }

    /// <summary>
    /// Bytes of communication buffers the training step needs: stage 1 on several ranks exchanging through host memory
    /// holds the padded layout and one partition (allocated at the first exchange).
    /// </summary>
    public long BufferBytes => (Stage == 1 && _communicator.Size > 1 && !ExchangesInDeviceMemory
        ? (Map.PaddedElements + Map.PartitionElements) * sizeof(float)
        : 0) + _reduction.BufferBytes;

    /// <summary>Stage 1's host buffers (stage 2 partitions per slot, in SlotSharding).</summary>
    private (float[] Padded, float[] Partition) Buffers()
    {
        _padded ??= new float[Map.PaddedElements];
        _partition ??= new float[Map.PartitionElements];
        return (_padded, _partition);
    }

    public Span<float> Owned(Span<float> full) => full.Slice(checked((int)OwnedStart), checked((int)OwnedLength));

    /// <summary>After this, <see cref="Owned"/>(gradients) holds the gradient averaged over ranks.</summary>
    public void ReduceGradients(Span<float> gradients)
    {
        int ranks = _communicator.Size;
        if (ranks == 1) return;
        if (!Partitioned)
        {
            for (long start = 0; start < gradients.Length; start += _bucketElements)
                _reduction.AllReduceAverage(gradients.Slice((int)start, (int)Math.Min(_bucketElements, gradients.Length - start)));
            return;
        }

        var (padded, partition) = Buffers();
        gradients.CopyTo(padded);
        padded.AsSpan(gradients.Length).Clear();
        _reduction.ReduceScatterSum(padded, partition);
        var owned = Owned(gradients);
        partition.AsSpan(0, owned.Length).CopyTo(owned);
        GradientClipping.Scale(owned, 1f / ranks);
    }

    /// <summary>After each rank updated its partition, gives every rank the full parameters.</summary>
    public void GatherParameters(Span<float> parameters)
    {
        if (!Partitioned || _communicator.Size == 1) return;
        var (padded, partition) = Buffers();
        var owned = Owned(parameters);
        owned.CopyTo(partition);
        partition.AsSpan(owned.Length).Clear();
        _communicator.AllGather(partition, padded);
        padded.AsSpan(0, parameters.Length).CopyTo(parameters);
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
        var (padded, partition) = Buffers();
        owned.CopyTo(partition);
        partition.AsSpan(owned.Length).Clear();
        _communicator.AllGather(partition, padded);
        padded.AsSpan(0, full.Length).CopyTo(full);
        return full;
    }

    /// <summary>Σ over ranks of a per-rank partial sum of squares (for the global gradient norm).</summary>
    public double SumOverRanks(double local) => Partitioned ? RankAgreement.Sum(_communicator, local) : local;

    /// <summary>True when any rank saw an overflow (DeepSpeed all-reduces the flag with MAX).</summary>
    public bool AnyRank(bool local) => RankAgreement.Any(_communicator, local);

}
