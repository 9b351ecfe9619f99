using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// pieces.cu against the index map of SlotSharding's host copies: a slot cut into per-rank pieces goes to rank-major
/// segments and back, bit for bit, with short last pieces and staging positions nobody writes left as they were.
/// </summary>
[TestClass]
public sealed class PiecesKernelTests
{
    private const int Threads = 256;

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void PiecesGoToRankMajorSegmentsAndBack(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(62);
        // (slot length, ranks): pieces that divide the slot, a short last piece, a slot shorter than the ranks × piece.
        foreach (var (length, ranks) in new[] { (1024L, 4), (1001L, 3), (5L, 4), (300L, 1), (4099L, 8) })
        {
            long chunk = (length + ranks - 1) / ranks;
            long at = 7, stride = at + chunk + 13; // the slot sits at 7 in each segment, other slots around it
            float[] slot = storage.Rounded(data.NonZero(length));
            float[] sentinel = storage.Rounded(data.NonZero(stride * ranks));

            float[] expected = (float[])sentinel.Clone();
            for (long i = 0; i < length; i++) expected[(i / chunk) * stride + at + i % chunk] = slot[i];

            using var slotBuffer = DeviceBuffer.From(slot, storage);
            using var staging = DeviceBuffer.From(sentinel, storage);
            nint segmentStart = staging.Pointer + (nint)(at * staging.ElementBytes);
            SimtEmulator.Launch($"stage_pieces_{storage.Suffix()}", 3, Threads, order, slotBuffer, length, chunk, segmentStart, stride);
            CollectionAssert.AreEqual(expected, staging.ToFloats(), $"staged: length {length}, {ranks} ranks");

            using var back = DeviceBuffer.Zeroed(length, storage);
            SimtEmulator.Launch($"unstage_pieces_{storage.Suffix()}", 2, Threads, order, segmentStart, stride, chunk, length, back);
            CollectionAssert.AreEqual(slot, back.ToFloats(), $"unstaged: length {length}, {ranks} ranks");
        }
    }
}
