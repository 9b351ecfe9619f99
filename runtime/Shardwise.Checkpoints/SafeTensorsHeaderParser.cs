using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Text.Unicode;

namespace Shardwise.Checkpoints;

/// <summary>
/// Parses and validates a safetensors JSON header. Everything the reference implementation rejects is
/// rejected here too (bad UTF-8/JSON, unknown dtype, size mismatch, gaps, overlaps, data not covering the
/// file), plus a few things it lets through silently (duplicate keys, unknown fields), because a checkpoint
/// that is subtly wrong is worse than one that fails to load.
/// </summary>
internal static class SafeTensorsHeaderParser
{
    public sealed record Result(IReadOnlyList<SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata);

    /// <param name="header">The N header bytes (after the 8-byte length).</param>
    /// <param name="dataLength">Bytes in the file after the header; tensors must cover exactly this.</param>
    /// <param name="filePath">Used only in error messages.</param>
    public static Result Parse(ReadOnlySpan<byte> header, long dataLength, string filePath)
    {
        if (header.Length == 0 || header[0] != (byte)'{')
        {
            throw Fail(filePath, null, "header does not start with '{'; this is not a safetensors file");
        }

        if (!Utf8.IsValid(header))
        {
            throw Fail(filePath, null, "header is not valid UTF-8");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            throw Fail(filePath, null, $"header is not well-formed JSON ({e.Message})");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Fail(filePath, null, "header JSON is not an object");
            }

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw Fail(filePath, property.Name, "appears twice in the header");
                }

                if (property.Name == SafeTensorsHeader.MetadataKey)
                {
                    ParseMetadata(property.Value, metadata, filePath);
                }
                else
                {
                    tensors.Add(ParseTensor(property.Name, property.Value, filePath));
                }
            }

            ValidateLayout(tensors, dataLength, filePath);
            return new Result(tensors, metadata);
        }
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, string filePath)
    {
        // The reference type is Option<HashMap<String, String>>, so null is allowed and means "none".
        if (value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Fail(filePath, null, $"'{SafeTensorsHeader.MetadataKey}' must be an object of strings, found {value.ValueKind}");
        }

        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw Fail(filePath, null, $"'{SafeTensorsHeader.MetadataKey}' entry '{entry.Name}' must be a string, found {entry.Value.ValueKind}");
            }

            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
            {
                throw Fail(filePath, null, $"'{SafeTensorsHeader.MetadataKey}' entry '{entry.Name}' appears twice");
            }
        }
    }

    private static SafeTensorInfo ParseTensor(string name, JsonElement value, string filePath)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Fail(filePath, name, $"entry must be an object with dtype, shape and data_offsets, found {value.ValueKind}");
        }

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype": dtypeElement = Once(dtypeElement, field); break;
                case "shape": shapeElement = Once(shapeElement, field); break;
                case "data_offsets": offsetsElement = Once(offsetsElement, field); break;
                default: throw Fail(filePath, name, $"unknown field '{field.Name}' (expected dtype, shape, data_offsets)");
            }
        }

        JsonElement Once(JsonElement? existing, JsonProperty field) =>
            existing is null ? field.Value : throw Fail(filePath, name, $"field '{field.Name}' appears twice");

        if (dtypeElement is not { ValueKind: JsonValueKind.String } dtypeValue)
        {
            throw Fail(filePath, name, "missing or non-string 'dtype'");
        }

        var dtypeName = dtypeValue.GetString()!;
        if (!SafeTensorDTypes.TryParseHeaderName(dtypeName, out var dtype))
        {
            throw Fail(filePath, name, $"unknown dtype \"{dtypeName}\"");
        }

        if (shapeElement is not { ValueKind: JsonValueKind.Array } shapeValue)
        {
            throw Fail(filePath, name, "missing 'shape' array");
        }

        var shape = shapeValue.EnumerateArray().Select(d => ReadNonNegative(d, name, "shape", filePath)).ToArray();

        if (offsetsElement is not { ValueKind: JsonValueKind.Array } offsetsValue || offsetsValue.GetArrayLength() != 2)
        {
            throw Fail(filePath, name, "missing 'data_offsets' pair [begin, end]");
        }

        var begin = ReadNonNegative(offsetsValue[0], name, "data_offsets", filePath);
        var end = ReadNonNegative(offsetsValue[1], name, "data_offsets", filePath);
        if (end < begin)
        {
            throw Fail(filePath, name, $"data_offsets [{begin}, {end}] end before they begin");
        }

        var expected = SafeTensorsHeader.ByteLength(dtype, shape)
            ?? throw Fail(filePath, name, $"shape [{string.Join(", ", shape)}] overflows a 64-bit byte count");
        if (end - begin != expected)
        {
            throw Fail(filePath, name, $"data_offsets [{begin}, {end}] span {end - begin} bytes but {dtypeName} x shape [{string.Join(", ", shape)}] needs {expected}");
        }

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long ReadNonNegative(JsonElement element, string tensor, string field, string filePath)
    {
        if (element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out var value) && value >= 0)
        {
            return value;
        }

        throw Fail(filePath, tensor, $"'{field}' holds {element.GetRawText()}, expected a non-negative integer");
    }

    /// <summary>Sorted by offset, tensors must tile [0, dataLength) exactly: no gap, no overlap, no trailing bytes.</summary>
    private static void ValidateLayout(List<SafeTensorInfo> tensors, long dataLength, string filePath)
    {
        // Writers may list tensors in any order (older ones sorted by name); only the byte ranges matter.
        tensors.Sort((a, b) => a.DataBegin != b.DataBegin ? a.DataBegin.CompareTo(b.DataBegin) : a.DataEnd.CompareTo(b.DataEnd));
        long position = 0;
        SafeTensorInfo? previous = null;
        foreach (var tensor in tensors)
        {
            if (tensor.DataBegin > position)
            {
                throw Fail(filePath, tensor.Name, previous is null
                    ? $"data_offsets begin at {tensor.DataBegin}; the first tensor must begin at 0 (gap of {tensor.DataBegin} bytes)"
                    : $"data_offsets begin at {tensor.DataBegin} but '{previous.Name}' ends at {position} (gap of {tensor.DataBegin - position} bytes)");
            }

            if (tensor.DataBegin < position)
            {
                throw Fail(filePath, tensor.Name, $"data_offsets [{tensor.DataBegin}, {tensor.DataEnd}] overlap '{previous!.Name}' which ends at {position}");
            }

            position = tensor.DataEnd;
            previous = tensor;
        }

        if (position > dataLength)
        {
            throw Fail(filePath, previous!.Name, $"data_offsets end at {position} but the file holds only {dataLength} data bytes (truncated?)");
        }

        if (position < dataLength)
        {
            throw Fail(filePath, null, $"tensors cover {position} data bytes but the file holds {dataLength} ({dataLength - position} trailing bytes)");
        }
    }

    private static SafeTensorsFormatException Fail(string filePath, string? tensor, string problem) => new(filePath, tensor, problem);
}
