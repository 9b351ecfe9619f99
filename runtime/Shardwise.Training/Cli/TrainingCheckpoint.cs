using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shardwise.Checkpoints;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Engine;
using Shardwise.Training.Precision;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>
/// Saves and restores everything a run needs to continue bit for bit: fp32 master weights (model.safetensors, named
/// by the generated layout, readable by Python's safetensors), Adam moments and step (optimizer.safetensors), counters,
/// loss scaler and data position (state.json), and the tokenizer. Atomicity comes from <see cref="CheckpointStore"/>.
/// Layout: docs/checkpoints.md.
/// </summary>
public sealed class TrainingCheckpoint
{
    public const string ModelFile = "model.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string StateFile = "state.json";
    public const string TokenizerFile = "tokenizer.json";

    private readonly CheckpointStore _store;

    public TrainingCheckpoint(string directory) => _store = new CheckpointStore(directory);

    /// <summary>The path of the newest committed checkpoint under <paramref name="directory"/>, or null.</summary>
    public static string? FindLatest(string directory) => new CheckpointStore(directory).OpenLatest();

    public static ITokenizer LoadTokenizer(string checkpoint) => Data.TokenizerFile.Load(Path.Combine(checkpoint, TokenizerFile));

    /// <summary>
    /// Saves a checkpoint atomically. One process, or plain data parallelism: rank 0 writes named full-layout files.
    /// With ZeRO partitions on several ranks this is a collective: rank 0 opens the checkpoint, every rank writes its
    /// own partition file into it in parallel (fsynced), and after a barrier rank 0 adds the state and commits — a
    /// crash anywhere before that leaves the previous checkpoint as `latest`. Returns the path on rank 0, null elsewhere.
    /// </summary>
    public string? Save(TrainingEngine engine, BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
    {
        var communicator = engine.Sharding.Communicator;
        if (engine.Scheme is { } scheme && communicator.Size > 1) return SavePartitioned(engine, scheme, sampler, tokenizer, settings);
        if (engine.OptimizerStateOnNvme && communicator.Size == 1) return SaveSwapped(engine, sampler, tokenizer, settings);

        var (master, expAvg, expAvgSq) = engine.ExportFullState();
        if (engine.Sharding.Rank != 0) return null;
        return SaveFull(engine.Program.Layout, master, expAvg, expAvgSq, engine.OneBit?.CheckpointState, engine, sampler, tokenizer, settings);
    }

    /// <summary>
    /// The one-process format for a state swapped to NVMe, streamed from the swap file a chunk at a time: each chunk of
    /// the partition is mapped to its place in the layout and cut along the parameters' named tensors.
    /// </summary>
    private string SaveSwapped(TrainingEngine engine, BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
    {
        var layout = engine.Program.Layout;
        var segments = engine.OwnedSegments();
        return WriteFull(layout, null, engine, sampler, tokenizer, settings, (model, optimizer) => engine.StreamOwnedState((start, master, expAvg, expAvgSq) =>
        {
            foreach (var (place, at, count) in OwnedRanges.Within(segments, start, master.Length))
            {
                WriteLayoutRange(model, layout, "", place, master.Slice(at, count));
                WriteLayoutRange(optimizer, layout, ".exp_avg", place, expAvg.Slice(at, count));
                WriteLayoutRange(optimizer, layout, ".exp_avg_sq", place, expAvgSq.Slice(at, count));
            }
        }));
    }

    /// <summary>Writes layout elements [offset, offset + values.Length) into the named tensors they belong to (padding between them is skipped).</summary>
    private static void WriteLayoutRange(SafeTensorsWriter file, ParameterLayout layout, string suffix, long offset, ReadOnlySpan<float> values)
    {
        long end = offset + values.Length;
        foreach (var slot in layout.Slots)
        {
            long from = Math.Max(offset, slot.Offset), to = Math.Min(end, slot.Offset + slot.Length);
            if (from < to) file.WritePart(slot.Name + suffix, from - slot.Offset, values.Slice((int)(from - offset), (int)(to - from)));
        }
    }

    /// <summary>
    /// Writes a checkpoint in the one-process format from full-layout fp32 state the caller assembled
    /// (<paramref name="layout"/> is the whole model's, whatever program <paramref name="engine"/> trains): named
    /// model and optimizer files (with a 1-bit optimizer's own state, <paramref name="oneBitState"/>, in the same
    /// layout), state.json with <paramref name="engine"/>'s counters, loss scaler and Adam step, and the tokenizer.
    /// Called by one process only; the pipelined trainer calls it on world rank 0 after gathering.
    /// </summary>
    public string SaveFull(ParameterLayout layout, float[] master, float[] expAvg, float[] expAvgSq, IReadOnlyList<Optim.OptimizerStateTensor>? oneBitState,
        TrainingEngine engine, BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
        => WriteFull(layout, oneBitState, engine, sampler, tokenizer, settings, (model, optimizer) =>
        {
            foreach (var slot in layout.Slots) model.Write(slot.Name, Slice(master, slot));
            foreach (var slot in layout.Slots) optimizer.Write(slot.Name + ".exp_avg", Slice(expAvg, slot));
            foreach (var slot in layout.Slots) optimizer.Write(slot.Name + ".exp_avg_sq", Slice(expAvgSq, slot));
        });

    /// <summary>
    /// The one-process format around <paramref name="writeState"/>, which writes the masters into the model file and the
    /// moments into the optimizer file (both declared, open together, written in any order, whole or in parts); the
    /// step, any 1-bit state, state.json and the tokenizer are added here, then the checkpoint is committed. The
    /// pipelined trainer streams its stages' parameters in through it.
    /// </summary>
    /// <param name="compressionMasks">The run's pruning masks: the engine's, or a pipeline's gathered from its stages.</param>
    /// <param name="compressionScores">topk's scores: the engine's when null, or a pipeline's gathered from its stages.</param>
    public string WriteFull(ParameterLayout layout, IReadOnlyList<Optim.OptimizerStateTensor>? oneBitState, TrainingEngine engine,
        BatchSampler sampler, ITokenizer tokenizer, RunSettings settings, Action<SafeTensorsWriter, SafeTensorsWriter> writeState,
        IReadOnlyDictionary<(string Module, ModelCompression.PruningKind Kind), byte[]>? compressionMasks = null,
        CompressionScoreCheckpoint.Snapshot? compressionScores = null)
    {
        using var writer = _store.BeginSave(CheckpointTag.ForStep(engine.GlobalStep));
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["global_step"] = engine.GlobalStep.ToString(CultureInfo.InvariantCulture),
        };

        var optimizerSpecs = new List<SafeTensorSpec>(Specs(layout, ".exp_avg"));
        optimizerSpecs.AddRange(Specs(layout, ".exp_avg_sq"));
        optimizerSpecs.Add(new SafeTensorSpec("step", SafeTensorDType.I64));
        if (oneBitState is not null) optimizerSpecs.AddRange(OneBitStateCheckpoint.Specs(layout, oneBitState));
        using (var model = writer.CreateSafeTensors(ModelFile, Specs(layout, ""), metadata))
        using (var optimizer = writer.CreateSafeTensors(OptimizerFile, optimizerSpecs, metadata))
        {
            writeState(model, optimizer);
            optimizer.Write("step", stackalloc long[] { engine.Optimizer.State.Step });
            if (oneBitState is not null) OneBitStateCheckpoint.Write(optimizer, layout, oneBitState);
            model.Complete();
            optimizer.Complete();
        }

        writer.WriteAllText(StateFile, StateJson(engine, layout, sampler, settings));
        CompressionMaskCheckpoint.Write(writer, compressionMasks ?? engine.Compression?.Masks);
        CompressionScoreCheckpoint.Write(writer, compressionScores ?? CompressionScoreCheckpoint.Of(engine.Compression?.Learned));
        tokenizer.Save(writer.GetFilePath(TokenizerFile));
        return writer.Commit();
    }

    private string? SavePartitioned(TrainingEngine engine, PartitionScheme scheme, BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
    {
        var communicator = engine.Sharding.Communicator;
        int rank = communicator.Rank, ranks = communicator.Size;
        using var writer = rank == 0 ? _store.BeginSave(CheckpointTag.ForStep(engine.GlobalStep)) : null;
        string directory = Broadcast.Text(communicator, writer?.DirectoryPath);

        var metadata = new Dictionary<string, string>
        {
            ["rank"] = rank.ToString(CultureInfo.InvariantCulture),
            ["ranks"] = ranks.ToString(CultureInfo.InvariantCulture),
            ["scheme"] = scheme.ToString(),
            ["adam_step"] = engine.Optimizer.State.Step.ToString(CultureInfo.InvariantCulture),
            ["global_step"] = engine.GlobalStep.ToString(CultureInfo.InvariantCulture),
        };
        long owned = engine.OwnedElements;
        var specs = new[]
        {
            new SafeTensorSpec("master", SafeTensorDType.F32, owned),
            new SafeTensorSpec("exp_avg", SafeTensorDType.F32, owned),
            new SafeTensorSpec("exp_avg_sq", SafeTensorDType.F32, owned),
        };
        using (var file = SafeTensorsWriter.Create(Path.Combine(directory, PartitionFile(rank, ranks)), specs, metadata))
        {
            if (engine.OptimizerStateOnNvme)
            {
                // From the swap file a chunk at a time: ZeRO-Infinity's state never has to fit in host memory at once.
                engine.StreamOwnedState((start, master, expAvg, expAvgSq) =>
                {
                    file.WritePart("master", start, master);
                    file.WritePart("exp_avg", start, expAvg);
                    file.WritePart("exp_avg_sq", start, expAvgSq);
                });
            }
            else
            {
                var (master, expAvg, expAvgSq) = engine.OwnedState();
                file.Write("master", master);
                file.Write("exp_avg", expAvg);
                file.Write("exp_avg_sq", expAvgSq);
            }
            file.Complete(); // fsynced before the barrier, so the commit never names a partial file
        }
        communicator.Barrier();
        if (writer is null) return null;

        writer.WriteAllText(StateFile, StateJson(engine, engine.Program.Layout, sampler, settings));
        CompressionMaskCheckpoint.Write(writer, engine.Compression?.Masks);
        CompressionScoreCheckpoint.Write(writer, CompressionScoreCheckpoint.Of(engine.Compression?.Learned));
        tokenizer.Save(writer.GetFilePath(TokenizerFile));
        return writer.Commit();
    }

    /// <summary>A rank's partition file: its fp32 masters and Adam moments, as it holds them.</summary>
    public static string PartitionFile(int rank, int ranks)
        => string.Format(CultureInfo.InvariantCulture, "zero_partition.rank-{0:00000}-of-{1:00000}.safetensors", rank, ranks);

    /// <summary>
    /// The full-layout fp32 masters and Adam moments of a checkpoint, whichever way it was written (for consolidation and
    /// the pipelined trainer's gathers; resuming a data-parallel run reads only each rank's ranges, <see cref="Load"/>).
    /// </summary>
    public static (float[] Master, float[] ExpAvg, float[] ExpAvgSq, long AdamStep) ReadFullState(string checkpoint, ParameterLayout layout)
    {
        using var state = CheckpointStateReader.Open(checkpoint, layout);
        return (state.ReadAll(CheckpointStateTensor.Master), state.ReadAll(CheckpointStateTensor.ExpAvg), state.ReadAll(CheckpointStateTensor.ExpAvgSq), state.AdamStep);
    }

    /// <summary>The data file the checkpointed run trained on, or null for the built-in task.</summary>
    public static string? ReadDataPath(string checkpoint)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, StateFile)));
        return json.RootElement.TryGetProperty("data_path", out var path) && path.ValueKind == JsonValueKind.String ? path.GetString() : null;
    }

    /// <summary>
    /// The block-sparse attention the checkpointed run trained with; null for dense attention (and for checkpoints written
    /// before Shardwise had sparse attention, which were all dense).
    /// </summary>
    public static Sparsity.SparseAttentionPattern? ReadSparseAttention(string checkpoint)
    {
        string path = Path.Combine(checkpoint, StateFile);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        return json.RootElement.TryGetProperty("sparse_attention", out var section) && section.ValueKind == JsonValueKind.Object
            ? Config.SparseAttentionConfig.Parse(section.GetRawText(), path)
            : null;
    }

    /// <summary>Loads only the fp32 weights into a flat buffer (for sampling and evaluation).</summary>
    public static void LoadWeights(string checkpoint, ParameterLayout layout, Span<float> flat)
    {
        using var state = CheckpointStateReader.Open(checkpoint, layout, weightsOnly: true);
        state.Read(CheckpointStateTensor.Master, 0, flat);
    }

    /// <summary>
    /// Restores a checkpoint on any number of ranks: each rank reads only the layout ranges its partition holds, straight
    /// into its optimizer state (a swap chunk at a time when that state lives on NVMe).
    /// </summary>
    public static void Load(string checkpoint, TrainingEngine engine, BatchSampler sampler, TextWriter? log = null)
    {
        // Masks first: importing the weights recompresses the working copy, which would otherwise take masks anew.
        if (engine.Compression is { } compression)
        {
            CompressionMaskCheckpoint.Restore(checkpoint, compression, engine.Program.Layout, log);
            CompressionScoreCheckpoint.Restore(checkpoint, compression.Learned, log);
        }
        using (var state = CheckpointStateReader.Open(checkpoint, engine.Program.Layout))
        {
            var segments = engine.OwnedSegments();
            engine.ImportOwnedState(state.AdamStep, (start, master, expAvg, expAvgSq) => state.ReadOwned(segments, start, master, expAvg, expAvgSq));
        }
        if (engine.OneBit is { } oneBit) OneBitStateCheckpoint.Restore(checkpoint, engine.Program.Layout, oneBit, log);
        RestoreProgress(checkpoint, engine, sampler, log);
    }

    /// <summary>
    /// Restores what state.json holds: the step counters, the loss scaler and the data position (weights and optimizer
    /// state are the caller's: <see cref="Load"/>, or the pipelined trainer, which imports each stage's slices).
    /// </summary>
    public static void RestoreProgress(string checkpoint, TrainingEngine engine, BatchSampler sampler, TextWriter? log = null)
    {
        var path = Path.Combine(checkpoint, StateFile);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var root = json.RootElement;
        engine.RestoreCounters(root.GetProperty("global_step").GetInt64(), root.GetProperty("micro_step").GetInt64());
        long skipped = root.GetProperty("skipped_steps").GetInt64();
        switch (engine.LossScaler)
        {
            case DynamicLossScaler dynamic when root.TryGetProperty("loss_scaler", out var scaler) && scaler.ValueKind == JsonValueKind.Object:
                dynamic.RestoreState(JsonSerializer.Deserialize<LossScalerState>(scaler.GetRawText())
                    ?? throw new InvalidDataException($"{path}: $.loss_scaler is empty"));
                break;
            case StaticLossScaler fixedScale:
                fixedScale.RestoreSkippedSteps(skipped);
                break;
        }
        var trained = ReadSparseAttention(checkpoint);
        if (trained != engine.Config.SparseAttention)
            log?.WriteLine($"note: the checkpoint trained with {DescribeAttention(trained)} attention, this run uses {DescribeAttention(engine.Config.SparseAttention)}");
        var saved = SamplerState.ReadFrom(root.GetProperty("sampler"));
        if (saved.BatchSize == sampler.BatchSize && saved.ContextLength == sampler.ContextLength)
        {
            try
            {
                sampler.RestoreState(saved);
            }
            catch (SamplerStateMismatchException mismatch)
            {
                // Other data, or the same examples drawn another way: continuing would not be the run that was saved.
                throw new CliException($"--resume {checkpoint}: {mismatch.Reason}");
            }
        }
        else
            log?.WriteLine($"note: the checkpoint's global batch had {saved.BatchSize} rows, this run has {sampler.BatchSize} " +
                           "(a different number of ranks); the data order restarts from the seed");
    }

    private static string DescribeAttention(Sparsity.SparseAttentionPattern? pattern) =>
        pattern is null ? "dense" : $"block-sparse ({pattern.Describe()})";

    private static string StateJson(TrainingEngine engine, ParameterLayout layout, BatchSampler sampler, RunSettings settings)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("global_step", engine.GlobalStep);
            json.WriteNumber("micro_step", engine.MicroStep);
            json.WriteNumber("skipped_steps", engine.LossScaler.SkippedSteps);
            json.WriteNumber("parameters", layout.ParameterCount);
            json.WriteString("precision", engine.Storage.ToString());
            if (settings.DataPath is null) json.WriteNull("data_path");
            else json.WriteString("data_path", Path.GetFullPath(settings.DataPath));
            json.WriteNumber("seed", settings.Seed);
            // The attention the weights were trained with: sample and eval apply it again.
            json.WritePropertyName("sparse_attention");
            if (engine.Config.SparseAttention is { } sparse) Config.SparseAttentionConfig.Write(json, sparse);
            else json.WriteNullValue();
            if (engine.LossScaler is DynamicLossScaler dynamic)
            {
                json.WritePropertyName("loss_scaler");
                JsonSerializer.Serialize(json, dynamic.CaptureState());
            }
            json.WritePropertyName("sampler");
            sampler.SaveState().WriteTo(json);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>One float32 tensor per parameter, named <c>NAME + suffix</c>, shaped like it.</summary>
    internal static IEnumerable<SafeTensorSpec> Specs(ParameterLayout layout, string suffix)
    {
        foreach (var slot in layout.Slots)
            yield return new SafeTensorSpec(slot.Name + suffix, SafeTensorDType.F32, Array.ConvertAll(slot.Shape, d => (long)d));
    }

    internal static Span<float> Slice(float[] flat, ParameterSlot slot) => flat.AsSpan(checked((int)slot.Offset), checked((int)slot.Length));
}
