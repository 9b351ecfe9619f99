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
/// <c>consolidate</c> (DeepSpeed's zero_to_fp32): the full weights of a checkpoint in --resume (the latest, or --tag),
/// whatever the rank count that wrote it, as one safetensors file named by the layout, ready for Python's safetensors
/// and Hugging Face's <c>from_pretrained</c>. --dtype writes bf16 or fp16 instead of fp32; --max-shard-size cuts the
/// weights into several files with an index (<see cref="WeightShards"/>). Read and written a parameter at a time, so
/// a model of any size consolidates in the memory of its largest parameter.
/// </summary>
public static class ConsolidateCommand
{
    public static int Run<TModel>(CliArguments args, TextWriter log) where TModel : ILanguageModelDefinition
    {
        string directory = args.String("resume") ?? throw new CliException("consolidate needs --resume DIR (a training output directory)");
        string output = args.String("output") ?? throw new CliException("consolidate needs --output FILE.safetensors");
        string? tag = args.String("tag");
        var dtype = (args.String("dtype") ?? "fp32") switch
        {
            "fp32" => SafeTensorDType.F32,
            "bf16" => SafeTensorDType.BF16,
            "fp16" => SafeTensorDType.F16,
            var other => throw new CliException($"--dtype '{other}': fp32, bf16 or fp16"),
        };
        long? maxShardBytes = args.String("max-shard-size") is { } size ? WeightShards.ParseSize(size, "max-shard-size") : null;
        string? compressedConfig = args.String("compressed");
        args.RejectUnknown();

        var store = new CheckpointStore(directory);
        string checkpoint;
        try
        {
            checkpoint = tag is null
                ? store.OpenLatest() ?? throw new CliException($"--resume {directory}: no committed checkpoint there")
                : store.Open(tag);
        }
        catch (Exception e) when (e is CheckpointException or ArgumentException)
        {
            throw new CliException($"--resume {directory} --tag {tag}: {e.Message}; committed: {string.Join(", ", store.ListCommitted())}");
        }

        var layout = TModel.ParameterLayout;
        int bytesPerElement = dtype.ElementSize();
        string outputDirectory = Path.GetDirectoryName(Path.GetFullPath(output))!;
        var shards = WeightShards.Plan(layout, bytesPerElement, maxShardBytes ?? long.MaxValue, Path.GetFileName(output));
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["source"] = checkpoint };
        float[]? compressed = compressedConfig is null ? null : CompressedWeights.Read(checkpoint, layout, compressedConfig, log);
        if (compressed is not null) metadata["compressed_with"] = Path.GetFileName(compressedConfig!);
        using (var state = CheckpointStateReader.Open(checkpoint, layout, weightsOnly: true))
        {
            var values = new float[layout.Slots.Count == 0 ? 0 : layout.Slots.Max(slot => slot.Length)];
            var bits = dtype == SafeTensorDType.BF16 ? new ushort[values.Length] : [];
            var halves = dtype == SafeTensorDType.F16 ? new Half[values.Length] : [];
            foreach (var shard in shards)
            {
                NamedWeightsFile.Write(Path.Combine(outputDirectory, shard.FileName), shard.Parameters, dtype, metadata, file =>
                {
                    foreach (var slot in shard.Parameters)
                    {
                        var fp32 = values.AsSpan(0, checked((int)slot.Length));
                        if (compressed is not null) compressed.AsSpan(checked((int)slot.Offset), fp32.Length).CopyTo(fp32);
                        else state.Read(CheckpointStateTensor.Master, slot.Offset, fp32);
                        switch (dtype)
                        {
                            case SafeTensorDType.BF16:
                                BFloat16Conversion.ToBFloat16(fp32, bits.AsSpan(0, fp32.Length));
                                file.WriteBFloat16(slot.Name, bits.AsSpan(0, fp32.Length));
                                break;
                            case SafeTensorDType.F16:
                                file.Write(slot.Name, ToHalf(slot, fp32, halves.AsSpan(0, fp32.Length)));
                                break;
                            default:
                                file.Write(slot.Name, fp32);
                                break;
                        }
                    }
                });
            }
        }
        if (shards.Count > 1) WriteIndex(Path.Combine(outputDirectory, WeightShards.IndexFileName(output)), shards);

        string precision = dtype switch { SafeTensorDType.BF16 => "bf16", SafeTensorDType.F16 => "fp16", _ => "fp32" };
        log.WriteLine(shards.Count == 1
            ? $"wrote {layout.ParameterCount:N0} {precision} parameters in {layout.Slots.Count} tensors from {checkpoint} to {output}"
            : $"wrote {layout.ParameterCount:N0} {precision} parameters in {layout.Slots.Count} tensors from {checkpoint} to {shards.Count} files " +
              $"({string.Join(", ", shards.Select(s => s.FileName))}) indexed by {Path.Combine(outputDirectory, WeightShards.IndexFileName(output))}");
        return 0;
    }

    /// <summary>fp16 holds magnitudes up to 65,504; a weight beyond that is an error naming the parameter, not an infinity in the file.</summary>
    private static ReadOnlySpan<Half> ToHalf(ParameterSlot slot, ReadOnlySpan<float> values, Span<Half> halves)
    {
        for (int i = 0; i < values.Length; i++)
        {
            halves[i] = (Half)values[i];
            if (Half.IsInfinity(halves[i]) && float.IsFinite(values[i]))
                throw new CliException($"--dtype fp16: parameter '{slot.Name}' holds {values[i]:G6} at element {i}, beyond fp16's range (±65504); use --dtype bf16 or fp32");
        }
        return halves;
    }

    /// <summary>Hugging Face's index: the total size and which file holds each parameter; written last, through a temporary file.</summary>
    private static void WriteIndex(string path, IReadOnlyList<WeightShard> shards)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", shards.Sum(s => s.Bytes));
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var shard in shards)
            foreach (var slot in shard.Parameters)
                json.WriteString(slot.Name, shard.FileName);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        File.WriteAllBytes(path + ".tmp", buffer.ToArray());
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
