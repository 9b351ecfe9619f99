using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

[TestClass]
public sealed class SafeTensorsRoundTripTests
{
    [TestMethod]
    public void EveryTypedDType_RoundTripsBitExactly()
    {
        using var dir = new TempDirectory();
        var random = new Random(1234);
        var f32 = TestData.Floats(random, 6 * 7);
        var f64 = TestData.Doubles(random, 5);
        var f16 = TestData.Halves(random, 9).Concat([Half.Epsilon, Half.MaxValue, Half.NegativeInfinity, BitConverter.UInt16BitsToHalf(0x7E01)]).ToArray();
        // bf16 edge patterns ride along: 1.0, -pi-ish, +/-inf, a NaN payload, the smallest subnormal, -0.
        var bf16 = TestData.BFloat16Bits(random, 11).Concat(new ushort[] { 0x3F80, 0xC049, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x8000 }).ToArray();
        var i32 = TestData.Ints(random, 8);
        var i64 = TestData.Longs(random, 3);
        var u8 = TestData.Bytes(random, 13);
        var path = dir.File("all.safetensors");

        using (var file = SafeTensorsWriter.Create(path,
        [
            new SafeTensorSpec("w.f32", SafeTensorDType.F32, 6, 7),
            new SafeTensorSpec("w.f64", SafeTensorDType.F64, 5),
            new SafeTensorSpec("w.f16", SafeTensorDType.F16, f16.Length),
            new SafeTensorSpec("w.bf16", SafeTensorDType.BF16, 2, bf16.Length / 2),
            new SafeTensorSpec("ids.i32", SafeTensorDType.I32, 2, 2, 2),
            new SafeTensorSpec("ids.i64", SafeTensorDType.I64, 3),
            new SafeTensorSpec("mask.u8", SafeTensorDType.U8, 13),
        ]))
        {
            file.Write("w.f32", f32);
            file.Write("w.f64", f64);
            file.Write("w.f16", f16);
            file.WriteBFloat16("w.bf16", bf16);
            file.Write("ids.i32", i32);
            file.Write("ids.i64", i64);
            file.Write("mask.u8", u8);
            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        Assert.AreEqual(7, reader.Tensors.Count);
        CollectionAssert.AreEqual(new long[] { 6, 7 }, reader.GetInfo("w.f32").Shape.ToArray());
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, reader.GetInfo("ids.i32").Shape.ToArray());

        var f32Back = new float[f32.Length];
        reader.Read("w.f32", f32Back);
        CollectionAssert.AreEqual(Bits(f32), Bits(f32Back));
        var f64Back = new double[f64.Length];
        reader.Read("w.f64", f64Back);
        CollectionAssert.AreEqual(Bits(f64), Bits(f64Back));
        var f16Back = new Half[f16.Length];
        reader.Read("w.f16", f16Back);
        CollectionAssert.AreEqual(Bits(f16), Bits(f16Back), "f16 incl. subnormal, max, -inf and NaN payload");
        var bf16Back = new ushort[bf16.Length];
        reader.ReadBFloat16("w.bf16", bf16Back);
        CollectionAssert.AreEqual(bf16, bf16Back, "bf16 bit patterns incl. inf, NaN payload, subnormal, -0");
        var i32Back = new int[i32.Length];
        reader.Read("ids.i32", i32Back);
        CollectionAssert.AreEqual(i32, i32Back);
        var i64Back = new long[i64.Length];
        reader.Read("ids.i64", i64Back);
        CollectionAssert.AreEqual(i64, i64Back);
        CollectionAssert.AreEqual(u8, reader.ReadAllBytes("mask.u8"));
    }

    [TestMethod]
    public void RawByteDTypes_RoundTrip_AndShapesAreRecorded()
    {
        using var dir = new TempDirectory();
        var random = new Random(99);
        var cases = new (string Name, SafeTensorDType DType, long[] Shape)[]
        {
            ("bool", SafeTensorDType.Bool, [5]),
            ("i8", SafeTensorDType.I8, [3, 2]),
            ("f8e4m3", SafeTensorDType.F8E4M3, [4]),
            ("f8e5m2", SafeTensorDType.F8E5M2, [4]),
            ("i16", SafeTensorDType.I16, [3]),
            ("u16", SafeTensorDType.U16, [2, 2]),
            ("u32", SafeTensorDType.U32, [3]),
            ("u64", SafeTensorDType.U64, [2]),
            ("scalar", SafeTensorDType.F32, []),
        };
        var data = cases.ToDictionary(c => c.Name, c => TestData.Bytes(random, (int)(c.Shape.Aggregate(1L, (a, b) => a * b) * c.DType.ElementSize())));
        var path = dir.File("raw.safetensors");
        using (var file = SafeTensorsWriter.Create(path, cases.Select(c => new SafeTensorSpec(c.Name, c.DType, c.Shape))))
        {
            foreach (var c in cases)
            {
                file.Write(c.Name, (ReadOnlySpan<byte>)data[c.Name]);
            }

            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        foreach (var c in cases)
        {
            var info = reader.GetInfo(c.Name);
            Assert.AreEqual(c.DType, info.DType, c.Name);
            CollectionAssert.AreEqual(c.Shape, info.Shape.ToArray(), c.Name);
            CollectionAssert.AreEqual(data[c.Name], reader.ReadAllBytes(c.Name), c.Name);
        }
    }

    [TestMethod]
    public void Layout_MatchesReferenceOrder_AndAlignsEveryTensor()
    {
        using var dir = new TempDirectory();
        var random = new Random(7);
        var path = dir.File("order.safetensors");
        SafeTensorSpec[] specs =
        [
            new("b", SafeTensorDType.U8, 3),
            new("a", SafeTensorDType.F16, 3),
            new("z", SafeTensorDType.F64, 2),
            new("c", SafeTensorDType.F32, 5),
            new("d", SafeTensorDType.F32, 1),
        ];
        using (var file = SafeTensorsWriter.Create(path, specs))
        {
            foreach (var spec in specs)
            {
                file.Write(spec.Name, (ReadOnlySpan<byte>)TestData.Bytes(random, (int)spec.ByteLength));
            }

            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        // Descending dtype (F64 > F32 > F16 > U8), then name: the reference writer's order.
        CollectionAssert.AreEqual(new[] { "z", "c", "d", "a", "b" }, reader.Tensors.Select(t => t.Name).ToArray());
        var headerLength = BitConverter.ToInt64(File.ReadAllBytes(path), 0);
        Assert.AreEqual(0, headerLength % 8, "header padded to a multiple of 8");
        foreach (var tensor in reader.Tensors)
        {
            Assert.AreEqual(0, (8 + headerLength + tensor.DataBegin) % tensor.DType.ElementSize(), $"{tensor.Name} aligned in the file");
        }
    }

    [TestMethod]
    public void WriteOrder_DoesNotChangeTheFile()
    {
        using var dir = new TempDirectory();
        var random = new Random(5);
        var tensors = Enumerable.Range(0, 6).Select(i => (Name: $"layers.{i}.weight", Data: TestData.Floats(random, 10 + i))).ToArray();
        var specs = tensors.Select(t => new SafeTensorSpec(t.Name, SafeTensorDType.F32, t.Data.Length)).ToArray();

        byte[] Save(string name, IEnumerable<(string Name, float[] Data)> order)
        {
            var path = dir.File(name);
            using var file = SafeTensorsWriter.Create(path, specs);
            foreach (var (tensorName, data) in order)
            {
                file.Write(tensorName, data);
            }

            file.Complete();
            return File.ReadAllBytes(path);
        }

        CollectionAssert.AreEqual(Save("forward.safetensors", tensors), Save("reverse.safetensors", tensors.Reverse()));
    }

    [TestMethod]
    public void LargeTensor_AndEmptyTensor_RoundTrip()
    {
        using var dir = new TempDirectory();
        var random = new Random(11);
        var big = TestData.Floats(random, 3 * 1024 * 1024 / 4 + 17);
        var path = dir.File("big.safetensors");
        using (var file = SafeTensorsWriter.Create(path, [new("big", SafeTensorDType.F32, big.Length), new("empty", SafeTensorDType.F32, 0, 4)]))
        {
            file.Write("big", big);
            file.Write("empty", ReadOnlySpan<float>.Empty);
            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        var back = new float[big.Length];
        reader.Read("big", back);
        CollectionAssert.AreEqual(Bits(big), Bits(back));
        Assert.AreEqual(0, reader.GetInfo("empty").ByteLength);
        CollectionAssert.AreEqual(new long[] { 0, 4 }, reader.GetInfo("empty").Shape.ToArray());
    }

    [TestMethod]
    public void Metadata_RoundTrips_IncludingEscapesAndUnicode()
    {
        using var dir = new TempDirectory();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["note"] = "quote\" back\\slash\nnew\tline\u0001ctl </script> ünïcødé ✓ 🚀",
            ["config_hash"] = "9f2c4e",
        };
        var path = dir.File("meta.safetensors");
        using (var file = SafeTensorsWriter.Create(path, [new("x", SafeTensorDType.F32, 2)], metadata))
        {
            file.Write("x", [1.25f, -3.5f]);
            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        CollectionAssert.AreEquivalent(metadata.ToArray(), reader.Metadata.ToArray());
    }

    [TestMethod]
    public void WriterMisuse_IsRejected_WithFileAndTensorNamed()
    {
        using var dir = new TempDirectory();
        var path = dir.File("misuse.safetensors");
        using (var file = SafeTensorsWriter.Create(path, [new("w", SafeTensorDType.F32, 2), new("b", SafeTensorDType.BF16, 2)]))
        {
            AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.Write("nope", [1f, 2f])), path, "nope", "not declared");
            AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.Write("w", [1.0, 2.0])), path, "w", "written as F64");
            AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.Write("w", [1f, 2f, 3f])), path, "w", "needs 8 bytes but 12");
            file.Write("w", [1f, 2f]);
            AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.Write("w", [1f, 2f])), path, "w", "written twice");
            var incomplete = Assert.ThrowsExactly<InvalidOperationException>(file.Complete);
            StringAssert.Contains(incomplete.Message, "'b'");
        }

        Assert.IsFalse(File.Exists(path), "an incomplete file is deleted on dispose");
        Assert.ThrowsExactly<ArgumentException>(() => SafeTensorsWriter.Create(path, [new("d", SafeTensorDType.F32, 1), new("d", SafeTensorDType.F32, 1)]));
        Assert.ThrowsExactly<ArgumentException>(() => new SafeTensorSpec("__metadata__", SafeTensorDType.F32, 1));
        Assert.ThrowsExactly<ArgumentException>(() => new SafeTensorSpec("neg", SafeTensorDType.F32, 2, -1));
        Assert.ThrowsExactly<ArgumentException>(() => new SafeTensorSpec("bad\uD800", SafeTensorDType.F32, 1));
    }

    [TestMethod]
    public void ReaderMisuse_IsRejected_WithFileAndTensorNamed()
    {
        using var dir = new TempDirectory();
        var path = dir.File("read.safetensors");
        using (var file = SafeTensorsWriter.Create(path, [new("w", SafeTensorDType.F32, 2)]))
        {
            file.Write("w", [0.5f, -0.75f]);
            file.Complete();
        }

        using var reader = SafeTensorsReader.Open(path);
        AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => reader.Read("w", new double[1])), path, "w", "cannot be read as F64");
        AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => reader.Read("w", new float[3])), path, "w", "destination has 12");
        AssertNames(Assert.ThrowsExactly<SafeTensorsFormatException>(() => reader.GetInfo("missing")), path, "missing", "not found");
    }

    internal static void AssertNames(SafeTensorsFormatException e, string path, string? tensor, string problem)
    {
        StringAssert.StartsWith(e.Message, path);
        Assert.AreEqual(path, e.FilePath);
        Assert.AreEqual(tensor, e.TensorName);
        if (tensor is not null)
        {
            StringAssert.Contains(e.Message, $"tensor '{tensor}'");
        }

        StringAssert.Contains(e.Message, problem);
    }

    private static byte[] Bits<T>(T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
