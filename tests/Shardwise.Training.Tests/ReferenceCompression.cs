using System;
using System.Linq;

namespace Shardwise.Training.Tests;

/// <summary>
/// DeepSpeed's compressed_allreduce for all ranks at once, on plain arrays: the worker and server errors per rank, the
/// scales per tensor, signs as ±1 floats. The arithmetic is written in the same order as the implementation's, so the
/// two agree exactly; what it does not share is the packing, the message layout and the exchange.
/// </summary>
internal sealed class ReferenceCompression(int ranks, Range[] tensors)
{
    private readonly float[][][] _workerError = Enumerable.Range(0, ranks).Select(_ => new float[tensors.Length][]).ToArray();
    private readonly float[][][] _serverError = Enumerable.Range(0, ranks).Select(_ => new float[tensors.Length][]).ToArray();

    public float[] Average(float[][] inputs)
    {
        var output = new float[inputs[0].Length];
        for (int t = 0; t < tensors.Length; t++)
        {
            var (offset, n) = tensors[t].GetOffsetAndLength(output.Length);
            int padded = (n + 8 * ranks - 1) / (8 * ranks) * (8 * ranks), chunk = padded / ranks;
            var signs = new float[ranks][];
            var scales = new float[ranks];
            for (int w = 0; w < ranks; w++)
            {
                var error = _workerError[w][t] ??= new float[padded];
                var x = new float[padded];
                for (int i = 0; i < padded; i++) x[i] = (i < n ? inputs[w][offset + i] : 0f) + error[i];
                scales[w] = (float)(Math.Sqrt(SumOfSquares(x)) / Math.Sqrt(padded));
                signs[w] = x.Select(v => v < 0 ? -1f : 1f).ToArray();
                for (int i = 0; i < padded; i++) error[i] = x[i] - scales[w] * signs[w][i];
            }
            for (int r = 0; r < ranks; r++)
            {
                var error = _serverError[r][t] ??= new float[chunk];
                var average = new float[chunk];
                for (int i = 0; i < chunk; i++)
                {
                    float sum = 0;
                    for (int w = 0; w < ranks; w++) sum += signs[w][r * chunk + i] * scales[w];
                    average[i] = sum * (1f / ranks) + error[i];
                }
                float scale = (float)(Math.Sqrt(SumOfSquares(average)) / Math.Sqrt(chunk));
                for (int i = 0; i < chunk; i++)
                {
                    float sign = average[i] < 0 ? -1f : 1f;
                    error[i] = average[i] - scale * sign;
                    if (r * chunk + i < n) output[offset + r * chunk + i] = scale * sign;
                }
            }
        }
        return output;
    }

    /// <summary>Σx² in double in the order the compression promises: four sums by i mod 4, (s0 + s1) + (s2 + s3).</summary>
    private static double SumOfSquares(float[] x)
    {
        var sums = new double[4];
        int whole = x.Length / 4 * 4;
        for (int i = 0; i < whole; i++) sums[i % 4] += (double)x[i] * x[i];
        double total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        for (int i = whole; i < x.Length; i++) total += (double)x[i] * x[i];
        return total;
    }
}
