using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

/// <summary>
/// Python compatibility without Python: Python's <c>safetensors.save_file</c> calls the Rust
/// <c>safetensors::serialize</c>, so matching its published byte vectors (tests in
/// huggingface/safetensors safetensors/src/tensor.rs) and a hand-built vector means Python reads our files
/// (and would write the same bytes).
/// </summary>
[TestClass]
public sealed class SafeTensorsExactBytesTests
{
    [TestMethod]
    public void SingleF32Tensor_MatchesReferenceImplementationBytes()
    {
        // Reference test "test_serialization_forced_alignement": attn0, F32, shape [1,1,2,3], values 0..5.
        // (The reference vector's data includes 0.0; kept verbatim so the bytes can be compared to upstream.)
        byte[] expected =
        [
            72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
            121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
            91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
            115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
            32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
            160, 64,
        ];

        var actual = WriteAndReadBack([new("attn0", SafeTensorDType.F32, 1, 1, 2, 3)], null, f => f.Write("attn0", [0f, 1f, 2f, 3f, 4f, 5f]));

        CollectionAssert.AreEqual(expected, actual);
    }

    [TestMethod]
    public void MetadataOnly_MatchesReferenceImplementationBytes()
    {
        // Reference test "test_empty" with metadata {"framework": "pt"}.
        byte[] expected =
        [
            40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
            95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
            116, 34, 125, 125, 32, 32, 32, 32, 32,
        ];

        var actual = WriteAndReadBack([], new Dictionary<string, string> { ["framework"] = "pt" }, _ => { });

        CollectionAssert.AreEqual(expected, actual);
    }

    [TestMethod]
    public void MixedDTypesWithMetadata_MatchHandBuiltBytes()
    {
        // Built by hand from the format: metadata first, then tensors by descending dtype (I64, F32, BF16).
        const string json = "{\"__metadata__\":{\"format\":\"pt\"}," +
            "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}," +
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}," +
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}";
        Assert.AreEqual(195, json.Length);
        var expected = new List<byte> { 200, 0, 0, 0, 0, 0, 0, 0 };           // 195 bytes of JSON padded to 200
        expected.AddRange(Encoding.ASCII.GetBytes(json + "     "));
        expected.AddRange([0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // c: I64 -7
        expected.AddRange([0x00, 0x00, 0xC0, 0x3F]);                         // a: F32 1.5
        expected.AddRange([0x80, 0x3F, 0x49, 0xC0]);                         // b: BF16 1.0, -3.140625

        var actual = WriteAndReadBack(
            [new("b", SafeTensorDType.BF16, 2), new("a", SafeTensorDType.F32, 1), new("c", SafeTensorDType.I64, 1)],
            new Dictionary<string, string> { ["format"] = "pt" },
            f =>
            {
                f.WriteBFloat16("b", [0x3F80, 0xC049]);
                f.Write("a", [1.5f]);
                f.Write("c", [-7L]);
            });

        CollectionAssert.AreEqual(expected.ToArray(), actual);
    }

    [TestMethod]
    public void ReaderAcceptsUnpaddedHeaderWithTensorsInNameOrder()
    {
        // Older writers neither padded the header nor sorted by dtype; both are still valid files.
        const string json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[3,7]}}";
        using var dir = new TempDirectory();
        var path = dir.File("old.safetensors");
        var bytes = BitConverter.GetBytes((ulong)json.Length).Concat(Encoding.ASCII.GetBytes(json)).Concat(new byte[] { 9, 8, 7, 0, 0, 0x20, 0x41 }).ToArray();
        File.WriteAllBytes(path, bytes);

        using var reader = SafeTensorsReader.Open(path);
        CollectionAssert.AreEqual(new byte[] { 9, 8, 7 }, reader.ReadAllBytes("a"));
        var b = new float[1];
        reader.Read("b", b);
        Assert.AreEqual(10f, b[0]);
    }

    private static byte[] WriteAndReadBack(SafeTensorSpec[] specs, IReadOnlyDictionary<string, string>? metadata, Action<SafeTensorsWriter> write)
    {
        using var dir = new TempDirectory();
        var path = dir.File("exact.safetensors");
        using (var file = SafeTensorsWriter.Create(path, specs, metadata))
        {
            write(file);
            file.Complete();
        }

        // Our own reader must accept what we wrote, too.
        using (var reader = SafeTensorsReader.Open(path))
        {
            Assert.AreEqual(specs.Length, reader.Tensors.Count);
        }

        return File.ReadAllBytes(path);
    }
}
