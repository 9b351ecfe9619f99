using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Engine;
using Shardwise.Training.LayerDrop;
using Shardwise.Training.TokenDrop;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>The bench verb's own options (the shared ones are in <see cref="RunSettings"/>).</summary>
/// <param name="WarmupSteps">Untimed optimizer steps first (<c>--warmup</c>): kernel compilation, scratch growth, caches.</param>
/// <param name="PeakTflops">The card's dense 16-bit peak for MFU (<c>--peak-tflops</c>); null: look the device up in <see cref="GpuPeaks"/>.</param>
/// <param name="JsonPath">Where to write the result as JSON (<c>--json</c>), for scripts/gpu-suite.sh's report; null: nowhere.</param>
/// <param name="MaxSeconds">
/// Ends the timed steps early once they have taken this long (<c>--max-seconds</c>; at least one step is timed), so a
/// slow backend still reports within a scripted time limit; null: all of <c>--steps</c>.
/// </param>
/// <param name="Profile">
/// Times every backend operation over the timed steps and prints the table (<c>--profile</c>): device time on CUDA
/// (<see cref="CudaOpsProfiler"/>, an event per operation, so the step time printed with it is a little higher), wall-clock
/// time of each call on the CPU (<see cref="CpuOpsProfiler"/>).
/// </param>
public sealed record BenchOptions(int WarmupSteps = BenchCommand.WarmupSteps, double? PeakTflops = null, string? JsonPath = null,
    double? MaxSeconds = null, bool Profile = false)
{
    public static BenchOptions Read(CliArguments args)
    {
        long warmup = args.Long("warmup") ?? BenchCommand.WarmupSteps;
        double? peak = args.Double("peak-tflops");
        if (peak is <= 0) throw new CliException($"--peak-tflops needs a positive number of TFLOP/s; got {peak}");
        double? maxSeconds = args.Double("max-seconds");
        if (maxSeconds is <= 0) throw new CliException($"--max-seconds needs a positive number of seconds; got {maxSeconds}");
        return new BenchOptions(checked((int)warmup), peak, args.String("json"), maxSeconds, args.Flag("profile"));
    }
}

/// <summary>
/// <c>bench</c>: full training steps (forward, backward, optimizer) on random tokens: ms/step, tokens/s, and, for the
/// configured ZeRO stage and rank count (run it under mpirun), memory by category and bytes moved per step. With
/// <c>--device cuda</c> it also reports the device memory in use at the peak and the MFU against the card's dense
/// fp16/bf16 peak (<see cref="TrainingFlops"/>, <see cref="GpuPeaks"/>).
/// </summary>
public static class BenchCommand
{
    public const int WarmupSteps = 5;

    public static int Run<TModel>(RunSettings settings, TextWriter output) where TModel : ILanguageModelDefinition
        => Run<TModel>(settings, new BenchOptions(), output);

    public static int Run<TModel>(RunSettings settings, BenchOptions options, TextWriter output) where TModel : ILanguageModelDefinition
    {
        using var communicator = Communicators.Create(gpuJob: settings.Device == BackendKind.Cuda);
        var log = communicator.Rank == 0 ? output : TextWriter.Null;
        log.WriteLine(settings.DeviceChoice.Description);
        var batch = settings.Config.Resolve(communicator.Size);
        var program = TModel.Compile(TrainingEngine.CreateBackend(settings.Config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
        TModel.ParameterLayout.Initialize(program.Parameters, seed: 1);
        var engine = TrainingEngine.Initialize(program, settings.Config, communicator);
        if (SparseAttentionCheck.Describe(settings.Config, program.SequenceLength) is { } sparse) log.WriteLine(sparse);
        var layerDrop = ProgressiveLayerDrop.For(settings.Config, TModel.DroppableLayers, typeof(TModel).Name, settings.Seed);
        if (layerDrop is not null) log.WriteLine(layerDrop.Describe());
        var tokenDrop = RandomLtd.For(settings.Config, TModel.TokenDropLayers, typeof(TModel).Name, settings.Seed);
        if (tokenDrop is not null) log.WriteLine(tokenDrop.Describe(program.SequenceLength));
        bool dropping = layerDrop is not null || tokenDrop is not null;
        if (engine.Compression is { } compression) foreach (var line in compression.Describe()) log.WriteLine(line);
        long blocksRun = 0, blocksDrawn = 0, layerTokensRun = 0, layerTokensDrawn = 0;
        var cuda = FindOps<CudaOps>(program.Ops);
        var cpu = cuda is null ? FindOps<CpuOps<float>>(program.Ops) : null;
        var (inputs, targets) = RandomTokens(batch.MicroBatchPerGpu * program.SequenceLength, TModel.VocabularySize, settings.Seed);

        long steps = Math.Max(1, Math.Min(settings.TotalSteps, 50));
        float loss = float.NaN;
        int skipped = 0;
        for (int i = 0; i < options.WarmupSteps; i++) Step();
        cuda?.Synchronize();
        cuda?.SampleDeviceMemory();
        communicator.Traffic.Reset();
        engine.HpzGroupTraffic?.Reset();
        engine.AcrossNodesTraffic?.Reset();
        HostDeviceTraffic? trafficBefore = cuda?.HostDeviceTraffic; // after warm-up: arenas and state are already on the device
        skipped = 0;
        blocksRun = blocksDrawn = layerTokensRun = layerTokensDrawn = 0;
        if (options.Profile)
        {
            cuda?.StartProfiling();
            cpu?.StartProfiling();
        }
        var clock = Stopwatch.StartNew();
        for (long i = 0; i < steps; i++)
        {
            Step();
            cuda?.SampleDeviceMemory(); // between steps, without waiting: what is allocated is allocated when queued
            if (options.MaxSeconds is { } limit && clock.Elapsed.TotalSeconds > limit && i + 1 < steps)
            {
                log.WriteLine($"--max-seconds {limit}: timed {i + 1} of {steps} steps");
                steps = i + 1;
            }
        }
        cuda?.Synchronize();
        double ms = clock.Elapsed.TotalMilliseconds / steps;
        IReadOnlyList<OperationTime>? profile = options.Profile ? cuda?.StopProfiling() ?? cpu?.StopProfiling() : null;
        double tokens = batch.TrainBatchSize * program.SequenceLength / (ms / 1000);

        int stage = settings.Config.ZeroOptimization.Stage, ranks = communicator.Size;
        var result = new BenchResult
        {
            Model = typeof(TModel).Name,
            Precision = PrecisionName(engine.Storage),
            MicroBatch = batch.MicroBatchPerGpu,
            GradientAccumulation = batch.GradientAccumulationSteps,
            Ranks = ranks,
            ZeroStage = stage,
            WarmupSteps = options.WarmupSteps,
            TimedSteps = steps,
            MsPerStep = ms,
            TokensPerSecond = tokens,
            Flops = TrainingFlops.Of(TModel.ParameterLayout, TModel.ActivationPlan),
            LastLoss = loss,
            SkippedSteps = skipped,
        };

        if (cuda is null)
        {
            log.WriteLine("| model | ranks | ZeRO | global batch | precision | ms/step | tokens/s |");
            log.WriteLine("|---|---|---|---|---|---|---|");
            log.WriteLine($"| {typeof(TModel).Name} ({TModel.ParameterLayout.ParameterCount:N0} params) | {ranks} | {stage} | {batch.TrainBatchSize} × {program.SequenceLength} | {engine.Storage} | {ms:F1} | {tokens:N0} |");
            log.WriteLine("memory per rank: " + engine.DescribeMemory());
            if (profile is not null)
            {
                log.WriteLine($"wall-clock time per operation (--profile; the timed steps, {steps} of them):");
                log.WriteLine(CpuOpsProfiler.Describe(profile, steps, ms));
            }
            else if (options.Profile) log.WriteLine("--profile: this backend times no operations; ignored");
        }
        else
        {
            result = result with
            {
                Device = cuda.Device.Name,
                PeakDeviceBytesInUse = cuda.PeakDeviceBytesInUse,
                DeviceBytesAllocated = cuda.DeviceBytesAllocated,
                DeviceTotalBytes = (long)cuda.Device.TotalMemory,
                HostDeviceTrafficPerStep = PerStep(cuda.HostDeviceTraffic - trafficBefore!.Value, steps),
            };
            result = WithPeak(result, options.PeakTflops);
            WriteCudaReport(result, program.SequenceLength, engine, log);
            if (profile is not null)
            {
                log.WriteLine($"device time per operation (--profile; the timed steps, {steps} of them):");
                log.WriteLine(CudaOpsProfiler.Describe(profile, steps, ms));
            }
        }

        if (ranks > 1)
        {
            long psi = engine.CommunicatedElements;
            int factor = stage == 3 ? 3 : 2; // ZeRO-3 gathers parameters again for backward
            log.WriteLine($"traffic per rank per step (fp32 elements; formula {factor}Ψ(N−1)/N = {factor * (double)psi * (ranks - 1) / ranks:N0}):");
            log.WriteLine($"  sent {communicator.Traffic.TotalSent / 4.0 / steps:N0}, received {communicator.Traffic.TotalReceived / 4.0 / steps:N0}");
            foreach (var line in communicator.Traffic.Describe().Split('\n', StringSplitOptions.RemoveEmptyEntries)) log.WriteLine($"  {line} (total over {steps} steps)");
            if (engine.HpzGroupTraffic is { } group)
                log.WriteLine($"  and within the hpZ group of {engine.Config.ZeroOptimization.HpzPartitionSize} ranks (backward's gathers, qgZ's first hop): sent {group.TotalSent / 4.0 / steps:N0}, received {group.TotalReceived / 4.0 / steps:N0}");
            if (engine.AcrossNodesTraffic is { TotalSent: > 0 } across)
                log.WriteLine($"  and between the groups (qgZ's second hop): sent {across.TotalSent / 4.0 / steps:N0}, received {across.TotalReceived / 4.0 / steps:N0}");
        }
        if (cuda is null)
            log.WriteLine($"CPU backend, {Environment.ProcessorCount} cores, {steps} timed steps after {options.WarmupSteps} warm-up steps");
        else
        {
            log.WriteLine($"CUDA backend, {cuda.Device.Name}, {steps} timed steps after {options.WarmupSteps} warm-up steps; last loss {loss:F4}, {skipped} timed steps skipped (fp16 overflow)");
            if (cuda.TunedGemmPlans > 0)
                log.WriteLine($"GEMM tuning ({CudaOpsOptions.GemmTuningVariable}): {cuda.TunedGemmPlans} shapes took the fastest of cuBLASLt's candidates, timed at their first call");
            log.WriteLine($"backend working memory outside the plan: {cuda.DescribeWorkingMemory()}");
        }

        if (options.JsonPath is not null && communicator.Rank == 0)
        {
            File.WriteAllText(options.JsonPath, result.ToJson());
            log.WriteLine($"wrote {options.JsonPath}");
        }
        // Last: its extra steps must not enter the traffic, memory and loss reported above.
        if (dropping) WriteDropComparison();
        if (engine.Compression is not null || program.Ops.ActivationQuantizer is not null) WriteCompressionComparison();
        return 0;

        // The reference, in the same process: a second program and engine without compression_training, timed in
        // rounds alternating with the compressed one, so that a noisy machine slows both alike; the median round's
        // ratio is reported. (Step closes over the engine and program locals, so swapping them in drives either.)
        void WriteCompressionComparison()
        {
            var plain = settings.Config with { CompressionTraining = null };
            var compressed = (engine, program);
            var reference = TModel.Compile(TrainingEngine.CreateBackend(plain, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
            TModel.ParameterLayout.Initialize(reference.Parameters, seed: 1);
            var uncompressed = (TrainingEngine.Initialize(reference, plain, communicator), reference);
            (engine, program) = uncompressed;
            for (int i = 0; i < options.WarmupSteps; i++) Step();
            const int Rounds = 5;
            long perRound = Math.Max(1, steps / Rounds);
            var ratios = new double[Rounds];
            double withMs = 0, withoutMs = 0;
            for (int round = 0; round < Rounds; round++)
            {
                (engine, program) = compressed;
                double with = TimeSteps(perRound);
                (engine, program) = uncompressed;
                double without = TimeSteps(perRound);
                ratios[round] = with / without;
                (withMs, withoutMs) = (withMs + with / Rounds, withoutMs + without / Rounds);
            }
            Array.Sort(ratios);
            log.WriteLine($"compression: {withMs:F1} ms/step against {withoutMs:F1} ms/step without compression_training, in {Rounds} alternating rounds of {perRound} steps " +
                          $"after the timed steps; median round {ratios[Rounds / 2]:F3}× (rounds {ratios[0]:F3}–{ratios[^1]:F3}×)");
        }

        double TimeSteps(long count)
        {
            var clock = Stopwatch.StartNew();
            for (long i = 0; i < count; i++) Step();
            cuda?.Synchronize();
            return clock.Elapsed.TotalMilliseconds / count;
        }

        // The reference, in the same process: as many steps again with every block run on every token.
        void WriteDropComparison()
        {
            dropping = false;
            program.LayerKeep = null;
            program.TokenKeep = null;
            double every = TimeSteps(steps);
            if (layerDrop is not null)
            {
                log.WriteLine($"progressive layer drop: {blocksRun:N0} of {blocksDrawn:N0} block passes run " +
                    $"({100.0 * blocksRun / Math.Max(1, blocksDrawn):F1}%; θ {layerDrop.Theta(engine.GlobalStep):F3} at the end)");
            }
            if (tokenDrop is not null)
            {
                log.WriteLine($"random-LTD: the [TokenDrop] layers ran on {layerTokensRun:N0} of {layerTokensDrawn:N0} tokens " +
                    $"({100.0 * layerTokensRun / Math.Max(1, layerTokensDrawn):F1}%; {tokenDrop.Schedule.ReservedLength(engine.GlobalStep)} kept at the end)");
            }
            log.WriteLine($"dropping: {ms:F1} ms/step against {every:F1} ms/step with every block on every token, timed next in this run: {ms / every:F3}×");
        }

        void Step()
        {
            for (int micro = 0; micro < batch.GradientAccumulationSteps; micro++)
            {
                if (dropping && layerDrop is not null)
                {
                    program.LayerKeep = layerDrop.Sample(engine.GlobalStep, micro);
                    blocksRun += program.LayerKeep.Count - program.LayerKeep.Skipped;
                    blocksDrawn += program.LayerKeep.Count;
                }
                if (dropping && tokenDrop is not null)
                {
                    program.TokenKeep = tokenDrop.Keep(engine.GlobalStep, micro, batch.MicroBatchPerGpu, program.SequenceLength);
                    for (int layer = 0; layer < program.TokenKeep.Count; layer++)
                    {
                        layerTokensRun += (long)batch.MicroBatchPerGpu * program.TokenKeep.KeptCount(layer);
                        layerTokensDrawn += (long)batch.MicroBatchPerGpu * program.SequenceLength;
                    }
                }
                loss = engine.ForwardBackward(inputs, targets);
                if (engine.Step() == StepOutcome.SkippedOverflow) skipped++;
            }
        }
    }

    /// <summary>The MFU inputs: <c>--peak-tflops</c> when given, else the table's entry for the device, else none.</summary>
    public static BenchResult WithPeak(BenchResult result, double? peakTflops)
    {
        if (peakTflops is { } given)
            return result with { PeakTflops = given, PeakSource = "--peak-tflops" };
        if (result.Device is { } device && GpuPeaks.Find(device) is { } peak)
            return result with { PeakTflops = peak.Tflops, PeakSource = $"{peak.Card}, bench/gpu-peaks.json" };
        return result with { PeakTflops = null, PeakSource = null };
    }

    private static void WriteCudaReport(BenchResult r, int sequence, TrainingEngine engine, TextWriter log)
    {
        log.WriteLine("| model | device | ZeRO | global batch | precision | ms/step | tokens/s | peak device memory | MFU |");
        log.WriteLine("|---|---|---|---|---|---|---|---|---|");
        log.WriteLine($"| {r.Model} ({r.Flops.Parameters:N0} params) | {r.Device} | {r.ZeroStage} | {r.MicroBatch * r.GradientAccumulation * r.Ranks} × {sequence} | {r.Precision} | {r.MsPerStep:F1} | {r.TokensPerSecond:N0} | {Gib(r.PeakDeviceBytesInUse)} | {r.DescribeMfu()} |");
        log.WriteLine($"MFU = tokens/s × (6N + 12·L·d·T) / peak; {r.Flops.Describe()}; peak " +
                      (r.PeakTflops is { } peak ? $"{peak:0.#} TFLOP/s dense fp16/bf16 ({r.PeakSource})" : "unknown for this card"));
        log.WriteLine($"device memory: {Gib(r.PeakDeviceBytesInUse)} in use at the peak (cuMemGetInfo total − free between steps: CUDA context, " +
                      $"libraries and kernels included) of {Gib(r.DeviceTotalBytes)}; {Gib(r.DeviceBytesAllocated)} allocated by the backend (cuMemAlloc, cumulative)");
        if (r.HostDeviceTrafficPerStep is { } traffic)
            log.WriteLine($"host↔device per step: {Megabytes(traffic.BytesDown)} MB down, {Megabytes(traffic.BytesUp)} MB up, {traffic.Copies} copies " +
                          $"({traffic.BytesDown:N0} bytes down, {traffic.BytesUp:N0} bytes up)");
        log.WriteLine("planned memory per rank (engine accounting): " + engine.Memory.Describe());
    }

    /// <summary>The CUDA backend under the ZeRO-2/3 streaming wrapper, if the program runs on one.</summary>
    /// <summary>Megabytes (10⁶ bytes) with three decimals: a step's few kilobytes of tokens still show.</summary>
    private static string Megabytes(long bytes) => (bytes / 1e6).ToString("F3", CultureInfo.InvariantCulture);

    /// <summary>A counter difference over <paramref name="steps"/> steps, per step (rounded down).</summary>
    private static HostDeviceTraffic PerStep(HostDeviceTraffic total, long steps) =>
        new(total.BytesDown / steps, total.CopiesDown / steps, total.BytesUp / steps, total.CopiesUp / steps);

    /// <summary>
    /// One micro-batch of uniformly random inputs and targets: timing needs real work, not real text (the loss stays
    /// near ln V, so no fp16 overflow skips a timed step).
    /// </summary>
    internal static (int[] Inputs, int[] Targets) RandomTokens(int count, int vocabulary, ulong seed)
    {
        var random = Xoshiro256StarStar.FromSeed(seed);
        var inputs = new int[count];
        var targets = new int[count];
        for (int i = 0; i < count; i++)
        {
            inputs[i] = random.NextInt(vocabulary);
            targets[i] = random.NextInt(vocabulary);
        }

        return (inputs, targets);
    }

    /// <summary>The backend of type <typeparamref name="TOps"/> under the engine's wrappers, or null.</summary>
    internal static TOps? FindOps<TOps>(ITensorOps<float> ops) where TOps : class => ops switch
    {
        TOps found => found,
        GradientStreamingOps<float> streaming => FindOps<TOps>(streaming.Inner),
        _ => null,
    };

    public static string PrecisionName(StorageType storage) => storage switch
    {
        StorageType.Float16 => "fp16",
        StorageType.BFloat16 => "bf16",
        _ => "fp32",
    };

    private static string Gib(long bytes) => $"{bytes / (double)(1L << 30):F2} GiB";
}
