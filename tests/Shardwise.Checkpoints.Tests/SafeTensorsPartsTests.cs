using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

/// <summary>
/// <see cref="SafeTensorsWriter.WritePart"/>: a float32 tensor written in pieces, in any order, is the file a whole
/// write makes, byte for byte; a piece that overlaps, overruns or follows a whole write is refused naming the tensor,
/// and a tensor with a piece missing is not complete.
/// </summary>
[TestClass]
public sealed class SafeTensorsPartsTests
{
    [TestMethod]
    public void PiecesInAnyOrderMakeTheSameFileAsAWholeWrite()
    {
        using var dir = new TempDirectory();
        var random = new Random(3);
        var values = TestData.Floats(random, 1000);
        var ids = TestData.Longs(random, 4);
        SafeTensorSpec[] specs = [new("state", SafeTensorDType.F32, 1000), new("ids", SafeTensorDType.I64, 4)];

        string whole = dir.File("whole.safetensors"), pieces = dir.File("pieces.safetensors");
        using (var file = SafeTensorsWriter.Create(whole, specs))
        {
            file.Write("state", values);
            file.Write("ids", ids);
            file.Complete();
        }
        using (var file = SafeTensorsWriter.Create(pieces, specs))
        {
            file.Write("ids", ids);
            file.WritePart("state", 600, values.AsSpan(600));
            file.WritePart("state", 0, values.AsSpan(0, 256));
            file.WritePart("state", 256, values.AsSpan(256, 344));
            file.Complete();
        }
        CollectionAssert.AreEqual(File.ReadAllBytes(whole), File.ReadAllBytes(pieces));
    }

    [TestMethod]
    public void AWrongPieceIsRefusedAndAMissingOneLeavesTheFileIncomplete()
    {
        using var dir = new TempDirectory();
        var values = TestData.Floats(new Random(4), 100);
        using (var file = SafeTensorsWriter.Create(dir.File("a.safetensors"), [new("state", SafeTensorDType.F32, 100)]))
        {
            file.WritePart("state", 0, values.AsSpan(0, 60));
            StringAssert.Contains(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.WritePart("state", 50, values.AsSpan(50, 50))).Message,
                "does not fit what is left of its 100 elements");
            StringAssert.Contains(Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.WritePart("state", 90, values.AsSpan(0, 20))).Message, "'state'");
            Assert.ThrowsExactly<SafeTensorsFormatException>(() => file.Write("state", values));
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(file.Complete).Message, "tensors never written: 'state'");
        }
        Assert.IsFalse(File.Exists(dir.File("a.safetensors")), "an incomplete file is deleted");
        using var doubles = SafeTensorsWriter.Create(dir.File("b.safetensors"), [new("d", SafeTensorDType.F64, 2)]);
        StringAssert.Contains(Assert.ThrowsExactly<SafeTensorsFormatException>(() => doubles.WritePart("d", 0, values.AsSpan(0, 2))).Message, "declared as F64");
    }
}
