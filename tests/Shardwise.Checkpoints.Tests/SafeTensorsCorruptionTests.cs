using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

/// <summary>Every way a file can be damaged fails on open, naming the file, the tensor (when one is at fault) and the problem.</summary>
[TestClass]
public sealed class SafeTensorsCorruptionTests
{
    private const string TwoTensors =
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}";

    private TempDirectory _dir = null!;

    [TestInitialize]
    public void Setup() => _dir = new TempDirectory();

    [TestCleanup]
    public void Cleanup() => _dir.Dispose();

    [TestMethod]
    public void ValidHandBuiltFile_Opens() => OpenOk(Build(TwoTensors, 24));

    [TestMethod]
    public void FileShorterThanLengthPrefix() => Fails(Write([1, 2, 3]), null, "too short");

    [TestMethod]
    public void HeaderLengthAbsurd() => Fails(Build(TwoTensors, 24, lengthOverride: 1UL << 40), null, "exceeds the 100000000-byte limit");

    [TestMethod]
    public void HeaderLengthBeyondEndOfFile() => Fails(Build(TwoTensors, 24, lengthOverride: 5000), null, "exceeds the");

    [TestMethod]
    public void HeaderNotAnObject() => Fails(Build("[" + TwoTensors + "]", 24), null, "does not start with '{'");

    [TestMethod]
    public void HeaderInvalidUtf8()
    {
        var header = Encoding.ASCII.GetBytes(TwoTensors.Replace("\"b\"", "\"\u00ff\"", StringComparison.Ordinal));
        header[header.AsSpan().IndexOf((byte)'?')] = 0xFF; // ASCII encoding turned \u00ff into '?'; make it a lone 0xFF byte
        Fails(Build(header, 24), null, "not valid UTF-8");
    }

    [TestMethod]
    public void HeaderMalformedJson() => Fails(Build(TwoTensors[..^5], 24), null, "not well-formed JSON");

    [TestMethod]
    public void UnknownDType() => Fails(Build(TwoTensors.Replace("\"F32\",\"shape\":[2]}", "\"F33\",\"shape\":[2]}", StringComparison.Ordinal).Replace("\"F32\",\"shape\":[2],", "\"F33\",\"shape\":[2],", StringComparison.Ordinal), 24), "b", "unknown dtype \"F33\"");

    [TestMethod]
    public void ShapeDoesNotMatchOffsets() => Fails(Build(TwoTensors.Replace("[2,2]", "[2,3]", StringComparison.Ordinal), 24), "w", "span 16 bytes but F32 x shape [2, 3] needs 24");

    [TestMethod]
    public void NegativeDimension() => Fails(Build(TwoTensors.Replace("[2,2]", "[-2,-2]", StringComparison.Ordinal), 24), "w", "expected a non-negative integer");

    [TestMethod]
    public void FractionalOffset() => Fails(Build(TwoTensors.Replace("[0,16]", "[0,16.0]", StringComparison.Ordinal), 24), "w", "expected a non-negative integer");

    [TestMethod]
    public void OffsetsEndBeforeBegin() => Fails(Build(TwoTensors.Replace("[16,24]", "[24,16]", StringComparison.Ordinal), 24), "b", "end before they begin");

    [TestMethod]
    public void GapBetweenTensors() => Fails(
        Build(TwoTensors.Replace("[16,24]", "[20,28]", StringComparison.Ordinal), 28), "b", "gap of 4 bytes");

    [TestMethod]
    public void FirstTensorNotAtZero() => Fails(
        Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "w", "must begin at 0");

    [TestMethod]
    public void OverlappingTensors() => Fails(
        Build(TwoTensors.Replace("[16,24]", "[12,20]", StringComparison.Ordinal), 24), "b", "overlap 'w'");

    [TestMethod]
    public void DataTruncated() => Fails(Build(TwoTensors, 20), "b", "file holds only 20 data bytes");

    [TestMethod]
    public void TrailingBytesAfterLastTensor() => Fails(Build(TwoTensors, 30), null, "6 trailing bytes");

    [TestMethod]
    public void DuplicateTensorName() => Fails(
        Build(TwoTensors.Replace("\"b\"", "\"w\"", StringComparison.Ordinal), 24), "w", "appears twice");

    [TestMethod]
    public void MissingDataOffsets() => Fails(
        Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "w", "missing 'data_offsets'");

    [TestMethod]
    public void UnknownTensorField() => Fails(
        Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}", 4), "w", "unknown field 'stride'");

    [TestMethod]
    public void DuplicateTensorField() => Fails(
        Build("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "w", "field 'dtype' appears twice");

    [TestMethod]
    public void MetadataValueNotString() => Fails(
        Build("{\"__metadata__\":{\"step\":120}," + TwoTensors[1..], 24), null, "entry 'step' must be a string");

    [TestMethod]
    public void FileTruncatedAfterWriting_LastBytesCut()
    {
        var path = _dir.File("cut.safetensors");
        using (var file = SafeTensorsWriter.Create(path, [new("w", SafeTensorDType.F32, 4), new("v", SafeTensorDType.F32, 4)]))
        {
            file.Write("w", TestData.Floats(new Random(3), 4));
            file.Write("v", TestData.Floats(new Random(4), 4));
            file.Complete();
        }

        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(stream.Length - 3);
        }

        // Same dtype, so data order is by name: "v" then "w"; the cut lands in "w".
        Fails(path, "w", "truncated?");
    }

    private string Build(string json, int dataBytes, ulong? lengthOverride = null) =>
        Build(Encoding.UTF8.GetBytes(json), dataBytes, lengthOverride);

    private string Build(byte[] header, int dataBytes, ulong? lengthOverride = null)
    {
        var data = TestData.Bytes(new Random(dataBytes), dataBytes);
        return Write(BitConverter.GetBytes(lengthOverride ?? (ulong)header.Length).Concat(header).Concat(data).ToArray());
    }

    private string Write(byte[] bytes)
    {
        var path = _dir.File($"{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void OpenOk(string path)
    {
        using var reader = SafeTensorsReader.Open(path);
        Assert.AreEqual(2, reader.Tensors.Count);
    }

    private static void Fails(string path, string? tensor, string problem)
    {
        var e = Assert.ThrowsExactly<SafeTensorsFormatException>(() => SafeTensorsReader.Open(path).Dispose());
        SafeTensorsRoundTripTests.AssertNames(e, path, tensor, problem);
    }
}
