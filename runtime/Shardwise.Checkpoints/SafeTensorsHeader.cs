using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Shardwise.Checkpoints;

/// <summary>
/// Builds the JSON header exactly as the reference Rust writer (which Python's <c>safetensors</c> calls) does:
/// compact serde_json output, <c>__metadata__</c> first, then tensors in data order, keys in the order
/// dtype / shape / data_offsets, padded with spaces to a multiple of 8 bytes. Hand-written rather than
/// System.Text.Json so the escaping matches serde_json byte for byte (no \u escapes for non-ASCII or HTML).
/// </summary>
internal static class SafeTensorsHeader
{
    public const string MetadataKey = "__metadata__";

    /// <summary>The reference implementation refuses headers above 100 MB; so do we, on both sides.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Bytes needed by <paramref name="shape"/> of <paramref name="dtype"/>, or null on 64-bit overflow.</summary>
    public static long? ByteLength(SafeTensorDType dtype, IReadOnlyList<long> shape)
    {
        try
        {
            long elements = 1;
            foreach (var dimension in shape)
            {
                elements = checked(elements * dimension);
            }

            return checked(elements * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    /// <summary>
    /// The reference writer's data order: descending dtype (so every tensor starts aligned to its element size,
    /// since the header is padded to 8 and larger elements come first), then name by UTF-8 bytes.
    /// </summary>
    public static SafeTensorInfo[] PlanLayout(IEnumerable<SafeTensorSpec> specs)
    {
        var ordered = specs
            .OrderByDescending(spec => spec.DType)
            .ThenBy(spec => Encoding.UTF8.GetBytes(spec.Name), Utf8BytesComparer.Instance)
            .ToArray();
        var layout = new SafeTensorInfo[ordered.Length];
        long offset = 0;
        for (var i = 0; i < ordered.Length; i++)
        {
            var spec = ordered[i];
            var end = checked(offset + spec.ByteLength);
            layout[i] = new SafeTensorInfo(spec.Name, spec.DType, spec.Shape, offset, end);
            offset = end;
        }

        return layout;
    }

    /// <summary>The padded header bytes (without the 8-byte length prefix).</summary>
    public static byte[] Serialize(IReadOnlyList<SafeTensorInfo> layout, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new StringBuilder();
        json.Append('{');
        var first = true;
        if (metadata is { Count: > 0 })
        {
            AppendString(json, MetadataKey);
            json.Append(":{");
            // serde_json writes a Rust HashMap in arbitrary order; we sort so our output is deterministic.
            var firstEntry = true;
            foreach (var (key, value) in metadata.OrderBy(entry => entry.Key, StringComparer.Ordinal))
            {
                if (!firstEntry)
                {
                    json.Append(',');
                }

                AppendString(json, key);
                json.Append(':');
                AppendString(json, value);
                firstEntry = false;
            }

            json.Append('}');
            first = false;
        }

        foreach (var tensor in layout)
        {
            if (!first)
            {
                json.Append(',');
            }

            AppendString(json, tensor.Name);
            json.Append(":{\"dtype\":");
            AppendString(json, tensor.DType.HeaderName());
            json.Append(",\"shape\":[");
            json.AppendJoin(',', tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            json.Append("],\"data_offsets\":[");
            json.Append(tensor.DataBegin.ToString(CultureInfo.InvariantCulture));
            json.Append(',');
            json.Append(tensor.DataEnd.ToString(CultureInfo.InvariantCulture));
            json.Append("]}");
            first = false;
        }

        json.Append('}');
        var bytes = Encoding.UTF8.GetBytes(json.ToString());
        var padded = (bytes.Length + 7) / 8 * 8;
        var header = new byte[padded];
        bytes.CopyTo(header, 0);
        header.AsSpan(bytes.Length).Fill((byte)' ');
        return header;
    }

    /// <summary>serde_json's string escaping: quote, backslash, the five short escapes, other controls as \u00xx.</summary>
    private static void AppendString(StringBuilder json, string value)
    {
        json.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        json.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        json.Append(c);
                    }

                    break;
            }
        }

        json.Append('"');
    }

    /// <summary>True when <paramref name="value"/> has no unpaired surrogate, i.e. it survives a UTF-8 round trip.</summary>
    public static bool IsWellFormedUtf16(string value)
    {
        try
        {
            _ = StrictUtf8.GetByteCount(value);
            return true;
        }
        catch (EncoderFallbackException)
        {
            return false;
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Rust orders String by its UTF-8 bytes, which differs from UTF-16 ordinal order above U+E000.</summary>
    private sealed class Utf8BytesComparer : IComparer<byte[]>
    {
        public static readonly Utf8BytesComparer Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
