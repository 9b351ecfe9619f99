using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

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

    /// <summary>
    /// Fills <paramref name="flat"/> (laid out as <paramref name="layout"/>) from <paramref name="path"/>; returns a line
    /// saying what was read. When <paramref name="config"/> turns layer reduction on, PATH is the teacher and only the
    /// parameters its map names are read (<see cref="LoadStudent"/>).
    /// </summary>
    public static string Load(string path, ParameterLayout layout, Span<float> flat, string model, DeepSpeedConfig? config = null)
    {
        if (config?.CompressionTraining?.LayerReduction is { Enabled: true } reduction) return LoadStudent(path, layout, flat, model, reduction, config.SourceName);
        if (CheckpointOf(path) is { } checkpoint)
        {
            TrainingCheckpoint.LoadWeights(checkpoint, layout, flat);
            return $"initialized from the fp32 masters of {checkpoint}: {layout.Slots.Count} tensors, {layout.ParameterCount:N0} parameters (step 0, fresh optimizer state)";
        }
        using var files = NamedTensorFiles.Open(path);
        var missing = new List<string>();
        foreach (var slot in layout.Slots)
        {
            if (files.Find(slot.Name) is not { } found)
            {
                missing.Add(slot.Name);
                continue;
            }
            files.Read(found, slot, flat, model);
        }
        if (missing.Count > 0)
            throw new CliException($"--init-from {path}: no tensor for {missing.Count} of {model}'s {layout.Slots.Count} parameters: " +
                                   string.Join(", ", missing.Take(5)) + (missing.Count > 5 ? ", …" : ""));

        var names = layout.Slots.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var unexpected = files.Names.Where(n => !names.Contains(n)).ToList();
        string skipped = unexpected.Count == 0 ? "" : $"; {unexpected.Count} tensor(s) {model} does not have were skipped (first: {unexpected[0]})";
        return $"initialized from {path} ({files.DTypes} in {files.FileCount} file(s)): {layout.Slots.Count} tensors, {layout.ParameterCount:N0} parameters (step 0, fresh optimizer state){skipped}";
    }

    /// <summary>
    /// Layer reduction: the student's parameters that <see cref="StudentInitialization"/> maps are read from the
    /// teacher's tensors of the mapped names; the others keep the seed's initialisation. The teacher must name its
    /// tensors: a one-process checkpoint, a consolidated file or a sharded index (a ZeRO checkpoint's partition files
    /// hold layout ranges of the teacher's layout, which this trainer does not have).
    /// </summary>
    private static string LoadStudent(string path, ParameterLayout layout, Span<float> flat, string model, LayerReductionConfig reduction, string configSource)
    {
        var map = StudentInitialization.For(reduction, layout, model);
        if (map.Problems.Count > 0) throw new ConfigException(configSource, map.Problems);
        string file = path;
        if (CheckpointOf(path) is { } checkpoint)
        {
            file = Path.Combine(checkpoint, TrainingCheckpoint.ModelFile);
            if (!File.Exists(file))
                throw new CliException($"--init-from {checkpoint}: a ZeRO-partitioned checkpoint, whose files hold ranges of the teacher's layout rather than named tensors; " +
                                       $"write the teacher's weights with its own trainer first ('consolidate --resume {path} --output teacher.safetensors') and pass that file");
        }
        using var files = NamedTensorFiles.Open(file);
        foreach (var copy in map.Copies)
        {
            if (files.Find(copy.TeacherName) is not { } found)
                throw new CliException($"--init-from {path}: the teacher has no tensor {copy.TeacherName}, which {copy.Source} asks for {model}'s {copy.Student.Name}");
            files.Read(found, copy.Student, flat, model, $"(the teacher's {copy.TeacherName}, for {copy.Source})");
        }
        long copied = map.Copies.Sum(c => c.Student.Length);
        return $"initialized {map.Copies.Count} of {model}'s {layout.Slots.Count} tensors ({copied:N0} of {layout.ParameterCount:N0} parameters) from the teacher {path} " +
               $"({reduction.Describe()}); the rest keep the seed's initialization (step 0, fresh optimizer state)";
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

    /// <summary>The safetensors file, or the files of a sharded index, that --init-from reads tensors from by name.</summary>
    private sealed class NamedTensorFiles : IDisposable
    {
        private readonly string _path;
        private readonly Dictionary<string, string> _shards;   // tensor → file; empty for one file
        private readonly Dictionary<string, SafeTensorsReader> _open = new(StringComparer.Ordinal);
        private readonly SortedSet<string> _dtypes = new(StringComparer.Ordinal);

        private NamedTensorFiles(string path, Dictionary<string, string> shards)
        {
            _path = path;
            _shards = shards;
        }

        public static NamedTensorFiles Open(string path)
        {
            if (!File.Exists(path)) throw new CliException($"--init-from {path}: no such file or directory");
            return new NamedTensorFiles(path, path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) ? ShardsOf(path) : new Dictionary<string, string>());
        }

        /// <summary>The tensors of the files read so far.</summary>
        public IEnumerable<string> Names => _open.Values.SelectMany(r => r.Tensors).Select(t => t.Name);

        public int FileCount => _open.Count;

        public string DTypes => string.Join("/", _dtypes);

        public (SafeTensorsReader Reader, SafeTensorInfo Info, string File)? Find(string name)
        {
            string file = _shards.Count == 0 ? _path : _shards.GetValueOrDefault(name, "");
            if (file.Length == 0) return null;
            if (!_open.TryGetValue(file, out var reader))
            {
                if (!File.Exists(file)) throw new CliException($"--init-from {_path}: names {file}, which does not exist");
                _open[file] = reader = SafeTensorsReader.Open(file);
            }
            return reader.Contains(name) ? (reader, reader.GetInfo(name), file) : null;
        }

        /// <summary>Reads a found tensor into <paramref name="slot"/>'s range of <paramref name="flat"/>, widened to fp32.</summary>
        public void Read((SafeTensorsReader Reader, SafeTensorInfo Info, string File) found, ParameterSlot slot, Span<float> flat, string model, string what = "")
        {
            var (reader, info, file) = found;
            if (!info.Shape.SequenceEqual(slot.Shape.Select(d => (long)d)))
                throw new CliException($"--init-from {file}: {info.Name} is [{string.Join(", ", info.Shape)}] there{(what.Length == 0 ? $"; {model}'s" : $" {what}; {model}'s {slot.Name}")} is [{string.Join(", ", slot.Shape)}]");
            var destination = flat.Slice(checked((int)slot.Offset), checked((int)slot.Length));
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
            _dtypes.Add(info.DType.ToString());
        }

        public void Dispose()
        {
            foreach (var reader in _open.Values) reader.Dispose();
        }
    }
}
