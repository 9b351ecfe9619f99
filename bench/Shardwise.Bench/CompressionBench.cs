using System;
using System.Diagnostics;
using Shardwise.Training.Compression;

/// <summary>
/// The passes of 1-bit compression (OneBitAdam's and OneBitLamb's momentum average) on one thread, over 16M fp32
/// elements: the worker's (Σx² for the scale, then signs and error), a server's (adding one worker's signs) and the
/// rebuild (signs to values), each as 256-bit vectors against its one-value-at-a-time form, measured in the same run.
/// Both forms give the same bits (SignBitsTests), so the ratio is the vectors' alone. Then ZeRO++'s block quantizer
/// (qwZ's int8, qgZ's int4) the same way (BlockQuantizerTests holds its forms equal).
/// </summary>
internal static class CompressionBench
{
    private const int Elements = 16 << 20;
    private const int Runs = 5;

    public static void Run()
    {
        var random = new Random(11);
        var x = new float[Elements];
        for (int i = 0; i < Elements; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        var error = new float[Elements];
        var bits = new byte[Elements / 8];
        var sum = new float[Elements];

        Console.WriteLine($"| 1-bit compression pass, {Elements:N0} fp32 elements, one thread | vectors ns/element | scalar ns/element | speed-up |");
        Console.WriteLine("|---|---|---|---|");
        Row("worker: Σx², then signs and error", () =>
        {
            float scale = (float)Math.Sqrt(SignBits.SumOfSquares(x) / Elements);
            SignBits.Compress(x, scale, error, bits);
        }, () =>
        {
            float scale = (float)Math.Sqrt(SignBits.SumOfSquaresScalar(x) / Elements);
            SignBits.CompressScalar(x, scale, error, bits);
        });
        Row("server: add one worker's signs", () => SignBits.Accumulate(sum, bits, 0.5f), () => SignBits.AccumulateScalar(sum, bits, 0.5f));
        Row("rebuild: signs to values", () => SignBits.Expand(sum, bits, 0.5f), () => SignBits.ExpandScalar(sum, bits, 0.5f));

        // ZeRO++'s block quantizer: qwZ encodes and decodes int8, qgZ encodes int4 and adds each sender's decode.
        foreach (int width in new[] { 8, 4 })
        {
            var quantizer = new Shardwise.Training.Zero.BlockQuantizer(width);
            var encoded = new float[quantizer.EncodedLength(Elements)];
            Row($"ZeRO++ block quantizer: encode int{width}", () => quantizer.Encode(x, encoded), () => quantizer.EncodeScalar(x, encoded));
            Row($"ZeRO++ block quantizer: decode int{width}{(width == 4 ? " and add" : "")}",
                () => { if (width == 4) quantizer.DecodeAdd(encoded, sum); else quantizer.Decode(encoded, sum); },
                () => quantizer.DecodeScalar(encoded, sum, accumulate: width == 4));
        }
    }

    private static void Row(string name, Action vectors, Action scalar)
    {
        double vectorNs = Time(vectors), scalarNs = Time(scalar);
        Console.WriteLine($"| {name} | {vectorNs:F2} | {scalarNs:F2} | {scalarNs / vectorNs:F1}× |");
    }

    // Best of the runs after one untimed run, in ns per element.
    private static double Time(Action pass)
    {
        pass();
        double best = double.MaxValue;
        for (int run = 0; run < Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            pass();
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds * 1e6 / Elements);
        }
        return best;
    }
}
