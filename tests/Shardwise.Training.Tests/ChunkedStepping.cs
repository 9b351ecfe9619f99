using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>
/// An element-wise optimizer stepped chunk by chunk (as the NVMe swap steps it) against the same optimizer stepped over
/// the whole buffer: parameters and both state tensors equal bit for bit, over several steps and a ragged last chunk.
/// </summary>
internal static class ChunkedStepping
{
    public static void AssertChunksMatchTheWholeBuffer(AdamOptions options, int length, int chunk, double learningRate, int seed)
    {
        var random = new Random(seed);
        AdamOptimizer whole = new(length, options), chunked = new(length, options);
        float[] a = RandomData.NonZero(random, length, 0.1, 1), b = (float[])a.Clone();
        float[] expAvg = new float[length], expAvgSq = new float[length];
        for (int step = 0; step < 3; step++)
        {
            float[] g = RandomData.NonZero(random, length, 1e-3, 1);
            whole.Step(a, g, learningRate);
            var scalars = chunked.NextChunkedStep(learningRate);
            for (int start = 0; start < length; start += chunk)
            {
                int n = Math.Min(chunk, length - start);
                chunked.StepChunk(b.AsSpan(start, n), g.AsSpan(start, n), expAvg.AsSpan(start, n), expAvgSq.AsSpan(start, n), scalars);
            }
        }
        CollectionAssert.AreEqual(a, b, "parameters");
        CollectionAssert.AreEqual(whole.State.ExpAvg, expAvg, "exp_avg");
        CollectionAssert.AreEqual(whole.State.ExpAvgSq, expAvgSq, "exp_avg_sq");
    }
}
