using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>Reads the F32 tensors of a safetensors file (8-byte header length, JSON header, data), written out independently of the writer.</summary>
internal static class SafeTensorsFile
{
    public static Dictionary<string, float[]> Read(string path) =>
        ReadBytes(path).ToDictionary(t => t.Key, t => MemoryMarshal.Cast<byte, float>(t.Value).ToArray(), StringComparer.Ordinal);

    /// <summary>Every tensor's raw bytes, whatever its type (masks are U8).</summary>
    public static Dictionary<string, byte[]> ReadBytes(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var tensors = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (JsonProperty tensor in header.RootElement.EnumerateObject())
        {
            if (tensor.Name == "__metadata__") continue;
            JsonElement offsets = tensor.Value.GetProperty("data_offsets");
            int begin = 8 + (int)headerLength + offsets[0].GetInt32(), end = 8 + (int)headerLength + offsets[1].GetInt32();
            tensors[tensor.Name] = bytes[begin..end];
        }
        return tensors;
    }

    /// <summary>‖a − b‖ / ‖a‖ over every tensor of two safetensors files with the same names.</summary>
    public static double RelativeDifference(string reference, string other)
    {
        var a = Read(reference);
        var b = Read(other);
        CollectionAssert.AreEquivalent(a.Keys.ToArray(), b.Keys.ToArray());
        double difference = 0, norm = 0;
        foreach (var (name, values) in a)
            for (int i = 0; i < values.Length; i++)
            {
                difference += Math.Pow(b[name][i] - values[i], 2);
                norm += (double)values[i] * values[i];
            }
        return Math.Sqrt(difference / norm);
    }
}
