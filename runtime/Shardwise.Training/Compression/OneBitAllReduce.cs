using System;
using System.Collections.Generic;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Shardwise.Distributed;

namespace Shardwise.Training.Compression;

/// <summary>
/// Averages a buffer over the ranks with 1-bit compression and error feedback, DeepSpeed's <c>compressed_allreduce</c>
/// (the communication of 1-bit Adam), tensor by tensor:
/// <list type="number">
/// <item>Worker: each tensor, padded to a multiple of 8 × ranks and plus this rank's worker error, is sent as its signs
/// and one scale ‖x‖/√n; what that loses is kept as the new worker error. Rank r receives every worker's signs of chunk r
/// (an all-to-all) and every worker's scales (an all-gather).</item>
/// <item>Server: rank r averages its chunk (Σ scale·sign / ranks), adds its server error, and compresses the result the
/// same way, keeping the new server error. Every rank all-gathers the servers' signs and scales and rebuilds the
/// average, so all ranks end with the same values.</item>
/// </list>
/// A rank sends about 2 bits per element instead of an fp32 all-reduce's 64 (each way, large ranks counts). Signs travel
/// packed in the float messages of <see cref="ICommunicator"/>, which only copies them.
/// </summary>
public sealed class OneBitAllReduce
{
    private readonly ICommunicator _communicator;
    private readonly Range[] _tensors;
    private readonly int[] _padded;       // N_t: the tensor's length rounded up to a multiple of 8 × ranks
    private readonly int[] _chunk;        // N_t / ranks: one server's share, a multiple of 8
    private readonly int[] _bitOffset;    // where tensor t's chunk starts in a message, in bits
    private readonly int[] _workerErrorOffset;
    private readonly int[] _serverErrorOffset;
    private readonly float[] _workerError;
    private readonly float[] _serverError;
    private readonly int _block;          // floats per message block (one server chunk of every tensor, packed)
    private readonly float[] _send, _receive, _serverSigns, _gatheredSigns;
    private readonly float[] _scales, _gatheredScales, _serverScales, _gatheredServerScales;
    private readonly float[] _worker, _compensated;

    public OneBitAllReduce(ICommunicator communicator, IReadOnlyList<Range> tensors)
    {
        _communicator = communicator;
        _tensors = [.. tensors];
        int size = communicator.Size, count = _tensors.Length;
        (_padded, _chunk, _bitOffset, _workerErrorOffset, _serverErrorOffset) = (new int[count], new int[count], new int[count], new int[count], new int[count]);
        int bits = 0, worker = 0, server = 0, largest = 0;
        for (int t = 0; t < count; t++)
        {
            int length = _tensors[t].GetOffsetAndLength(int.MaxValue).Length;
            int unit = 8 * size;
            _padded[t] = (length + unit - 1) / unit * unit;
            _chunk[t] = _padded[t] / size;
            (_bitOffset[t], _workerErrorOffset[t], _serverErrorOffset[t]) = (bits, worker, server);
            bits += _chunk[t];
            worker += _padded[t];
            server += _chunk[t];
            largest = Math.Max(largest, _padded[t]);
        }
        _block = (bits / 8 + 3) / 4;
        _workerError = new float[worker];
        _serverError = new float[server];
        _send = new float[size * _block];
        _receive = new float[size * _block];
        _serverSigns = new float[_block];
        _gatheredSigns = new float[size * _block];
        _scales = new float[count];
        _gatheredScales = new float[size * count];
        _serverScales = new float[count];
        _gatheredServerScales = new float[size * count];
        _worker = new float[largest];
        _compensated = new float[largest];
    }

    /// <summary>Host bytes this holds: the worker and server errors, the messages and the scratch.</summary>
    public long BufferBytes => sizeof(float) * ((long)_workerError.Length + _serverError.Length + _send.Length + _receive.Length + _serverSigns.Length
        + _gatheredSigns.Length + _scales.Length + _gatheredScales.Length + _serverScales.Length + _gatheredServerScales.Length + _worker.Length + _compensated.Length);

    /// <summary>What <see cref="BufferBytes"/> will be, for the memory plan.</summary>
    public static long BufferBytesFor(IReadOnlyList<long> tensorLengths, int ranks)
    {
        long bits = 0, worker = 0, largest = 0;
        foreach (long length in tensorLengths)
        {
            long unit = 8L * ranks, padded = (length + unit - 1) / unit * unit;
            bits += padded / ranks;
            worker += padded;
            largest = Math.Max(largest, padded);
        }
        long block = (bits / 8 + 3) / 4, count = tensorLengths.Count;
        return sizeof(float) * (worker + bits + 3L * ranks * block + block + count + 2L * ranks * count + count + 2 * largest);
    }

    /// <summary>Forgets the accumulated compression errors (DeepSpeed drops them when it loads a checkpoint too).</summary>
    public void ResetErrors()
    {
        Array.Clear(_workerError);
        Array.Clear(_serverError);
    }

    /// <summary>Replaces <paramref name="values"/> (every tensor's range of it) by the compressed average over the ranks.</summary>
    public void Average(Span<float> values)
    {
        int size = _communicator.Size, count = _tensors.Length;
        int blockBytes = _block * sizeof(float);
        var send = MemoryMarshal.AsBytes(_send.AsSpan());
        send.Clear();

        // Worker: compress each tensor against its error; chunk r of its signs goes in block r. Chunks are whole bytes
        // (multiples of 8 elements, byte-aligned in the block), so the signs are packed a byte at a time.
        for (int t = 0; t < count; t++)
        {
            var tensor = values[_tensors[t]];
            var x = _worker.AsSpan(0, _padded[t]);
            var error = _workerError.AsSpan(_workerErrorOffset[t], _padded[t]);
            tensor.CopyTo(x);
            x[tensor.Length..].Clear();
            TensorPrimitives.Add(x, error, x);
            float scale = (float)(Math.Sqrt(SignBits.SumOfSquares(x)) / Math.Sqrt(x.Length));
            _scales[t] = scale;
            int chunk = _chunk[t], firstByte = _bitOffset[t] / 8;
            for (int server = 0; server < size; server++)
            {
                SignBits.Compress(x.Slice(server * chunk, chunk), scale, error.Slice(server * chunk, chunk),
                    send.Slice(server * blockBytes + firstByte, chunk / 8));
            }
        }
        PairwiseAllToAll.Exchange(_communicator, _send, _receive, _block);
        _communicator.AllGather(_scales, _gatheredScales);

        // Server: average this rank's chunk of every tensor from the workers' signs (Σ over workers in rank order),
        // then compress it against its error.
        var received = MemoryMarshal.AsBytes(_receive.AsSpan());
        var serverSigns = MemoryMarshal.AsBytes(_serverSigns.AsSpan());
        serverSigns.Clear();
        float inverseSize = 1f / size;
        for (int t = 0; t < count; t++)
        {
            int chunk = _chunk[t], firstByte = _bitOffset[t] / 8;
            var average = _compensated.AsSpan(0, chunk);
            average.Clear();
            for (int w = 0; w < size; w++)
                SignBits.Accumulate(average, received.Slice(w * blockBytes + firstByte, chunk / 8), _gatheredScales[w * count + t]);
            var error = _serverError.AsSpan(_serverErrorOffset[t], chunk);
            TensorPrimitives.Multiply(average, inverseSize, average);
            TensorPrimitives.Add(average, error, average);
            float serverScale = (float)(Math.Sqrt(SignBits.SumOfSquares(average)) / Math.Sqrt(chunk));
            _serverScales[t] = serverScale;
            SignBits.Compress(average, serverScale, error, serverSigns.Slice(firstByte, chunk / 8));
        }
        _communicator.AllGather(_serverSigns, _gatheredSigns);
        _communicator.AllGather(_serverScales, _gatheredServerScales);

        // Every rank rebuilds the same average from the servers' chunks.
        var gathered = MemoryMarshal.AsBytes(_gatheredSigns.AsSpan());
        for (int t = 0; t < count; t++)
        {
            var tensor = values[_tensors[t]];
            int chunk = _chunk[t], firstByte = _bitOffset[t] / 8;
            for (int server = 0; server < size; server++)
            {
                float scale = _gatheredServerScales[server * count + t];
                var bits = gathered.Slice(server * blockBytes + firstByte, chunk / 8);
                int start = server * chunk, end = Math.Min(chunk, tensor.Length - start);
                if (end > 0) SignBits.Expand(tensor.Slice(start, end), bits, scale);
            }
        }
    }
}
