using System;
using System.Text.Json;

namespace Shardwise.Data;

/// <summary>
/// Everything a <see cref="BatchSampler"/> needs to continue exactly where it stopped: the RNG words and the number
/// of batches drawn (the data position). The shape and token count are recorded so restoring into a sampler over
/// different data or a different batch shape fails instead of silently changing the run.
/// </summary>
public readonly record struct SamplerState(RngState Rng, long Step, int BatchSize, int ContextLength, int TokenCount)
{
    /// <summary>The examples drawn one per row; 0 for windows at any offset (and in checkpoints written before examples).</summary>
    public int ExampleCount { get; init; }

    /// <summary>Writes this state as a JSON object (for embedding in a checkpoint's JSON).</summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("algorithm", "xoshiro256**");
        writer.WriteStartArray("rng");
        foreach (var word in Rng.ToHex())
        {
            writer.WriteStringValue(word);
        }

        writer.WriteEndArray();
        writer.WriteNumber("step", Step);
        writer.WriteNumber("batchSize", BatchSize);
        writer.WriteNumber("contextLength", ContextLength);
        writer.WriteNumber("tokenCount", TokenCount);
        if (ExampleCount > 0) writer.WriteNumber("exampleCount", ExampleCount);
        writer.WriteEndObject();
    }

    public static SamplerState ReadFrom(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("a sampler state is a JSON object");
        }

        var algorithm = Required(element, "algorithm", JsonValueKind.String).GetString();
        if (algorithm != "xoshiro256**")
        {
            throw new FormatException($"sampler state uses RNG \"{algorithm}\", this build knows only xoshiro256**");
        }

        var rng = Required(element, "rng", JsonValueKind.Array);
        var words = new string[rng.GetArrayLength()];
        var i = 0;
        foreach (var word in rng.EnumerateArray())
        {
            words[i++] = word.ValueKind == JsonValueKind.String ? word.GetString()! : throw new FormatException("RNG words are hex strings");
        }

        return new SamplerState(
            RngState.FromHex(words),
            Required(element, "step", JsonValueKind.Number).GetInt64(),
            Required(element, "batchSize", JsonValueKind.Number).GetInt32(),
            Required(element, "contextLength", JsonValueKind.Number).GetInt32(),
            Required(element, "tokenCount", JsonValueKind.Number).GetInt32())
        {
            ExampleCount = element.TryGetProperty("exampleCount", out var examples) && examples.ValueKind == JsonValueKind.Number ? examples.GetInt32() : 0,
        };
    }

    public string ToJson()
    {
        using var buffer = new System.IO.MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static SamplerState FromJson(string json)
    {
        using var document = JsonDocument.Parse(json);
        return ReadFrom(document.RootElement);
    }

    private static JsonElement Required(JsonElement element, string name, JsonValueKind kind) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value
            : throw new FormatException($"sampler state needs field \"{name}\" of kind {kind}");
}
