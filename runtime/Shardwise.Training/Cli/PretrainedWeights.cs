using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>train --init-from PATH</c>: a new run (step 0, fresh optimizer state) that starts from trained weights instead of
/// the seed's initialisation: what fine-tuning, and compressing a trained model, start from. PATH is what Shardwise
/// writes: a training output directory (its latest checkpoint) or one checkpoint directory (its fp32 masters), a
/// <c>consolidate</c> file (fp32, bf16 or fp16 safetensors named by the layout), or the index of a sharded one
/// (<c>*.safetensors.index.json</c>, Hugging Face's layout). Every parameter must be there with its shape; tensors the
/// model does not have are reported and skipped, as <c>from_pretrained</c> does.
/// </summary>
internal static class PretrainedWeights
{
    /// <summary>
    /// The checkpoint a directory PATH names (itself, or a run's latest); null for a file. The trainer takes its
    /// tokenizer too, so that the new run encodes text as the trained one did.
    /// </summary>
    public static string? CheckpointOf(string path)
    {
        if (!Directory.Exists(path)) return null;
        return (File.Exists(Path.Combine(path, TrainingCheckpoint.StateFile)) ? path : TrainingCheckpoint.FindLatest(path))
            ?? throw new CliException($"--init-from {path}: a directory, but neither a checkpoint (no {TrainingCheckpoint.StateFile}) nor a training output directory with a committed checkpoint ('latest')");
    }

    /// <summary>Fills <paramref name="flat"/> (laid out as <paramref name="layout"/>) from <paramref name="path"/>; returns a line saying what was read.</summary>
    public static string Load(string path, ParameterLayout layout, Span<float> flat, string model)
    {
        if (CheckpointOf(path) is { } checkpoint)
        {
            TrainingCheckpoint.LoadWeights(checkpoint, layout, flat);
            return $"initialized from the fp32 masters of {checkpoint}: {layout.Slots.Count} tensors, {layout.ParameterCount:N0} parameters (step 0, fresh optimizer state)";
        }
        if (!File.Exists(path)) throw new CliException($"--init-from {path}: no such file or directory");
        var files = path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) ? ShardsOf(path) : new Dictionary<string, string>();
        var readers = new Dictionary<string, SafeTensorsReader>(StringComparer.Ordinal);
        try
        {
            SafeTensorsReader Open(string file)
            {
                if (!readers.TryGetValue(file, out var reader))
                {
                    if (!File.Exists(file)) throw new CliException($"--init-from {path}: names {file}, which does not exist");
                    readers[file] = reader = SafeTensorsReader.Open(file);
                }
                return reader;
            }

            var missing = new List<string>();
            var dtypes = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var slot in layout.Slots)
            {
                string file = files.Count == 0 ? path : files.GetValueOrDefault(slot.Name, "");
                var reader = file.Length == 0 ? null : Open(file);
                if (reader is null || !reader.Contains(slot.Name))
                {
                    missing.Add(slot.Name);
                    continue;
                }
                var info = reader.GetInfo(slot.Name);
                if (!info.Shape.SequenceEqual(slot.Shape.Select(d => (long)d)))
                    throw new CliException($"--init-from {file}: {slot.Name} is [{string.Join(", ", info.Shape)}] there; {model}'s is [{string.Join(", ", slot.Shape)}]");
                ReadAsFloat(reader, info, flat.Slice(checked((int)slot.Offset), checked((int)slot.Length)), file);
                dtypes.Add(info.DType.ToString());
            }
            if (missing.Count > 0)
                throw new CliException($"--init-from {path}: no tensor for {missing.Count} of {model}'s {layout.Slots.Count} parameters: " +
                                       string.Join(", ", missing.Take(5)) + (missing.Count > 5 ? ", …" : ""));

            var names = layout.Slots.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            var unexpected = readers.Values.SelectMany(r => r.Tensors).Select(t => t.Name).Where(n => !names.Contains(n)).ToList();
            string skipped = unexpected.Count == 0 ? "" : $"; {unexpected.Count} tensor(s) {model} does not have were skipped (first: {unexpected[0]})";
            return $"initialized from {path} ({string.Join("/", dtypes)} in {readers.Count} file(s)): {layout.Slots.Count} tensors, {layout.ParameterCount:N0} parameters (step 0, fresh optimizer state){skipped}";
        }
        finally
        {
            foreach (var reader in readers.Values) reader.Dispose();
        }
    }

    /// <summary>Hugging Face's index: weight_map names each tensor's file, relative to the index.</summary>
    private static Dictionary<string, string> ShardsOf(string index)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(index))!;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(index));
            if (!json.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CliException($"--init-from {index}: no \"weight_map\" object (a sharded checkpoint's index names each tensor's file there)");
            return map.EnumerateObject().ToDictionary(p => p.Name, p => Path.Combine(directory, p.Value.GetString() ?? ""), StringComparer.Ordinal);
        }
        catch (JsonException error)
        {
            throw new CliException($"--init-from {index}: not JSON: {error.Message}");
        }
    }

    private static void ReadAsFloat(SafeTensorsReader reader, SafeTensorInfo info, Span<float> destination, string file)
    {
        switch (info.DType)
        {
            case SafeTensorDType.F32:
                reader.Read(info.Name, destination);
                break;
            case SafeTensorDType.BF16:
                var bits = new ushort[destination.Length];
                reader.ReadBFloat16(info.Name, bits);
                BFloat16Conversion.ToSingle(bits, destination);
                break;
            case SafeTensorDType.F16:
                var halves = new Half[destination.Length];
                reader.Read(info.Name, halves);
                for (int i = 0; i < halves.Length; i++) destination[i] = (float)halves[i];
                break;
            default:
                throw new CliException($"--init-from {file}: {info.Name} is {info.DType}; weights are read from F32, BF16 or F16");
        }
    }
}
