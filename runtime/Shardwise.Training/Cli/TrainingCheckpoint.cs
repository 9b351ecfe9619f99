using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text.Json;
using Shardwise.Checkpoints;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Engine;
using Shardwise.Training.Precision;

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
    /// Saves a checkpoint. With several ranks this is a collective: every rank contributes its ZeRO partition of the
    /// master weights and Adam moments, and rank 0 writes full-layout files (so any number of ranks can resume).
    /// Returns the committed path on rank 0, null elsewhere.
    /// </summary>
    public string? Save(TrainingEngine engine, BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
    {
        var layout = engine.Program.Layout;
        var (master, expAvg, expAvgSq) = engine.ExportFullState();
        if (engine.Sharding.Rank != 0) return null;
        using var writer = _store.BeginSave(CheckpointTag.ForStep(engine.GlobalStep));
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["global_step"] = engine.GlobalStep.ToString(CultureInfo.InvariantCulture),
        };

        using (var model = writer.CreateSafeTensors(ModelFile, Specs(layout, ""), metadata))
        {
            foreach (var slot in layout.Slots) model.Write(slot.Name, Slice(master, slot));
            model.Complete();
        }

        var optimizerSpecs = new List<SafeTensorSpec>(Specs(layout, ".exp_avg"));
        optimizerSpecs.AddRange(Specs(layout, ".exp_avg_sq"));
        optimizerSpecs.Add(new SafeTensorSpec("step", SafeTensorDType.I64));
        using (var optimizer = writer.CreateSafeTensors(OptimizerFile, optimizerSpecs, metadata))
        {
            foreach (var slot in layout.Slots) optimizer.Write(slot.Name + ".exp_avg", Slice(expAvg, slot));
            foreach (var slot in layout.Slots) optimizer.Write(slot.Name + ".exp_avg_sq", Slice(expAvgSq, slot));
            optimizer.Write("step", stackalloc long[] { engine.Optimizer.State.Step });
            optimizer.Complete();
        }

        writer.WriteAllText(StateFile, StateJson(engine, sampler, settings));
        tokenizer.Save(writer.GetFilePath(TokenizerFile));
        return writer.Commit();
    }

    /// <summary>The data file the checkpointed run trained on, or null for the built-in task.</summary>
    public static string? ReadDataPath(string checkpoint)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, StateFile)));
        return json.RootElement.TryGetProperty("data_path", out var path) && path.ValueKind == JsonValueKind.String ? path.GetString() : null;
    }

    /// <summary>Loads only the fp32 weights into a flat buffer (for sampling and evaluation).</summary>
    public static void LoadWeights(string checkpoint, ParameterLayout layout, Span<float> flat)
    {
        using var model = SafeTensorsReader.Open(Path.Combine(checkpoint, ModelFile));
        foreach (var slot in layout.Slots) model.Read(CheckShape(model, slot.Name, slot), Slice(flat, slot));
    }

    /// <summary>Restores a checkpoint on any number of ranks: each rank reads the full files and keeps its partition.</summary>
    public static void Load(string checkpoint, TrainingEngine engine, BatchSampler sampler, TextWriter? log = null)
    {
        var layout = engine.Program.Layout;
        var master = new float[layout.TotalElements];
        var expAvg = new float[layout.TotalElements];
        var expAvgSq = new float[layout.TotalElements];
        LoadWeights(checkpoint, layout, master);
        long adamStep;
        using (var optimizer = SafeTensorsReader.Open(Path.Combine(checkpoint, OptimizerFile)))
        {
            foreach (var slot in layout.Slots) optimizer.Read(CheckShape(optimizer, slot.Name + ".exp_avg", slot), Slice(expAvg, slot));
            foreach (var slot in layout.Slots) optimizer.Read(CheckShape(optimizer, slot.Name + ".exp_avg_sq", slot), Slice(expAvgSq, slot));
            Span<long> step = stackalloc long[1];
            optimizer.Read("step", step);
            adamStep = step[0];
        }
        engine.ImportFullState(master, expAvg, expAvgSq, adamStep);

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
        var saved = SamplerState.ReadFrom(root.GetProperty("sampler"));
        if (saved.BatchSize == sampler.BatchSize && saved.ContextLength == sampler.ContextLength)
            sampler.RestoreState(saved);
        else
            log?.WriteLine($"note: the checkpoint's global batch had {saved.BatchSize} rows, this run has {sampler.BatchSize} " +
                           "(a different number of ranks); the data order restarts from the seed");
    }

    private static string StateJson(TrainingEngine engine, BatchSampler sampler, RunSettings settings)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("global_step", engine.GlobalStep);
            json.WriteNumber("micro_step", engine.MicroStep);
            json.WriteNumber("skipped_steps", engine.LossScaler.SkippedSteps);
            json.WriteNumber("parameters", engine.Program.Layout.ParameterCount);
            json.WriteString("precision", engine.Storage.ToString());
            if (settings.DataPath is null) json.WriteNull("data_path");
            else json.WriteString("data_path", Path.GetFullPath(settings.DataPath));
            json.WriteNumber("seed", settings.Seed);
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

    private static IEnumerable<SafeTensorSpec> Specs(ParameterLayout layout, string suffix)
    {
        foreach (var slot in layout.Slots)
            yield return new SafeTensorSpec(slot.Name + suffix, SafeTensorDType.F32, Array.ConvertAll(slot.Shape, d => (long)d));
    }

    private static string CheckShape(SafeTensorsReader reader, string name, ParameterSlot slot)
    {
        if (!reader.Contains(name))
            throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is missing; was the checkpoint written by a different model?");
        var info = reader.GetInfo(name);
        if (info.ElementCount != slot.Length)
            throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}]; the model's layout says [{string.Join(", ", slot.Shape)}]");
        return name;
    }

    private static Span<float> Slice(Span<float> flat, ParameterSlot slot) => flat.Slice(checked((int)slot.Offset), checked((int)slot.Length));

    private static Span<float> Slice(float[] flat, ParameterSlot slot) => flat.AsSpan(checked((int)slot.Offset), checked((int)slot.Length));
}
