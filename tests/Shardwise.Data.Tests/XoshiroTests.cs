using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class XoshiroTests
{
    [TestMethod]
    public void MatchesTheReferenceOutputsFromState1234()
    {
        // Outputs of the reference xoshiro256starstar.c with s = {1, 2, 3, 4}.
        var rng = new Xoshiro256StarStar(new RngState(1, 2, 3, 4));

        var outputs = Enumerable.Range(0, 6).Select(_ => rng.NextUInt64()).ToArray();

        CollectionAssert.AreEqual(
            new ulong[] { 11520, 0, 1509978240, 1215971899390074240, 1216172134540287360, 607988272756665600 },
            outputs);
    }

    [TestMethod]
    public void SplitMix64MatchesTheReferenceFromSeedZero()
    {
        var mix = new SplitMix64(0);

        CollectionAssert.AreEqual(
            new ulong[] { 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC },
            new[] { mix.Next(), mix.Next(), mix.Next(), mix.Next() });
        Assert.AreEqual(new RngState(0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC), Xoshiro256StarStar.FromSeed(0).State);
    }

    [TestMethod]
    public void JumpMatchesAnIndependentTranscriptionOfTheReference()
    {
        // Computed with a separate Python transcription of the reference jump() from s = {1, 2, 3, 4}.
        var rng = new Xoshiro256StarStar(new RngState(1, 2, 3, 4));

        rng.Jump();

        Assert.AreEqual(new RngState(0x8C7A153956B5F3D1, 0x701F1A713401D85E, 0x6527F66A65469085, 0x8386B786C4408050), rng.State);
        Assert.AreEqual(13534147089533256664UL, rng.NextUInt64());
    }

    [TestMethod]
    public void SplitChildContinuesTheParentWhichJumps()
    {
        var parent = Xoshiro256StarStar.FromSeed(7);
        var reference = new Xoshiro256StarStar(parent.State);

        var child = parent.Split();
        reference.Jump();

        Assert.AreEqual(reference.State, parent.State);
        var expectedChild = Xoshiro256StarStar.FromSeed(7);
        for (var i = 0; i < 10; i++)
        {
            Assert.AreEqual(expectedChild.NextUInt64(), child.NextUInt64());
        }

        Assert.AreEqual(Xoshiro256StarStar.FromSeed(7, stream: 1).State, parent.State);
    }

    [TestMethod]
    public void StateRestoresTheSequenceAndSurvivesHex()
    {
        var rng = Xoshiro256StarStar.FromSeed(1234);
        for (var i = 0; i < 17; i++)
        {
            rng.NextUInt64();
        }

        var restored = new Xoshiro256StarStar(RngState.FromHex(rng.State.ToHex()));

        for (var i = 0; i < 100; i++)
        {
            Assert.AreEqual(rng.NextUInt64(), restored.NextUInt64());
        }
    }

    [TestMethod]
    public void NextBelowStaysInRangeAndCoversIt()
    {
        var rng = Xoshiro256StarStar.FromSeed(99);
        var counts = new int[7];

        for (var i = 0; i < 70_000; i++)
        {
            counts[rng.NextInt(7)]++;
        }

        // Each bucket expects 10,000 with sd ~93; 600 is over six sigma.
        Assert.IsTrue(counts.All(c => Math.Abs(c - 10_000) < 600), string.Join(",", counts));
        Assert.AreEqual(0UL, rng.NextBelow(1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => rng.NextBelow(0));
    }

    [TestMethod]
    public void AllZeroStateIsRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => new Xoshiro256StarStar(new RngState(0, 0, 0, 0)));
        Assert.ThrowsExactly<FormatException>(() => RngState.FromHex(["0x0", "0x0", "0x0", "0x0"]));
        Assert.ThrowsExactly<FormatException>(() => RngState.FromHex(["0x1", "0xZZ", "0x0", "0x0"]));
    }
}
