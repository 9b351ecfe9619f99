using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Shardwise.Training.Config;
using Shardwise.Training.Offload;
using Shardwise.Training.Optim;

/// <summary>
/// The optimizer step of offload_optimizer "cpu" (Adam over host arrays) against "nvme" (the same step streamed
/// through the swap file in chunks), over GPT-2 124M's 124,475,904 parameters on one rank, fp32 masters and moments:
/// ms per step, the swap's throughput (each step reads and writes the 1.5 GB state once) and the ratio, measured in
/// the same run. The swap file is fresh, so the operating system's page cache may still hold it: the numbers bound the
/// swap's own overhead (copies, system calls, the pipeline) and say nothing of a cold NVMe drive.
/// </summary>
internal static class OffloadBench
{
    private const int Elements = 124_475_904;
    private const int Steps = 5;

    public static void Run(string directory)
    {
        var random = new Random(7);
        var parameters = new float[Elements];
        var gradients = new float[Elements];
        for (int i = 0; i < Elements; i++)
        {
            parameters[i] = (float)(random.NextDouble() * 0.04 - 0.02);
            gradients[i] = (float)(random.NextDouble() * 2e-3 - 1e-3);
        }
        var options = new AdamOptions { WeightDecay = 0.1, AdamWMode = true };

        var inMemory = new AdamOptimizer(Elements, options);
        double memoryMs = Time(() => inMemory.Step(parameters, gradients, 1e-4));

        Console.WriteLine($"| optimizer step, {Elements:N0} fp32 elements, one rank | ms/step | state GB/s | vs host memory |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| offload_optimizer \"cpu\" (host arrays) | {memoryMs:F0} | | 1.00× |");
        foreach (var (buffers, pipelined) in new[] { (1, false), (4, false), (4, true) })
        {
            var offload = OffloadConfig.Disabled(forParameters: false) with
            {
                Device = OffloadDevice.Nvme, NvmePath = directory, BufferCount = buffers, PipelineRead = pipelined, PipelineWrite = pipelined,
            };
            using var swap = SwappedOptimizerState.Create(offload, subGroupSize: ConfigDefaults.SubGroupSize, parameters, rank: 0);
            var swapped = new AdamOptimizer(Elements, options);
            var working = new float[Elements];
            double swapMs = Time(() =>
            {
                var scalars = swapped.NextChunkedStep(1e-4);
                using var pass = swap.Begin(SwapPassMode.Update);
                while (pass.Next(out long start, out var master, out var expAvg, out var expAvgSq))
                {
                    swapped.StepChunk(master, gradients.AsSpan((int)start, master.Length), expAvg, expAvgSq, scalars);
                    master.CopyTo(working.AsSpan((int)start)); // the engine rounds into the working copy here
                }
            });
            double gbPerSecond = 2.0 * swap.FileBytes / (swapMs / 1000) / 1e9;
            Console.WriteLine($"| offload_optimizer \"nvme\", {swap.Chunks} chunks of {swap.ChunkElements:N0}, {buffers} buffer(s){(pipelined ? ", pipeline_read + pipeline_write" : "")} | {swapMs:F0} | {gbPerSecond:F2} | {swapMs / memoryMs:F2}× |");
        }
        Console.WriteLine($"swap directory: {directory} ({MemoryFormat(SwapFileFree(directory))} free); machine: {Environment.ProcessorCount} cores");
    }

    private static double Time(Action step)
    {
        step(); // warm-up: JIT, first touch of the buffers
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < Steps; i++) step();
        return clock.Elapsed.TotalMilliseconds / Steps;
    }

    private static long SwapFileFree(string directory) => new DriveInfo(Path.GetFullPath(directory)).AvailableFreeSpace;

    private static string MemoryFormat(long bytes) => Shardwise.Training.Engine.MemoryReport.Format(bytes);
}
