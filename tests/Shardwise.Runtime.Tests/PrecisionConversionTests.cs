using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Precision;

namespace Shardwise.Runtime.Tests;

[TestClass]
public sealed class PrecisionConversionTests
{
    [TestMethod]
    [DataRow(0x3F800000u, (ushort)0x3F80, DisplayName = "1.0 is exact")]
    [DataRow(0x3F808000u, (ushort)0x3F80, DisplayName = "tie rounds down to even")]
    [DataRow(0x3F818000u, (ushort)0x3F82, DisplayName = "tie rounds up to even")]
    [DataRow(0x3F808001u, (ushort)0x3F81, DisplayName = "above the tie rounds up")]
    [DataRow(0x3F807FFFu, (ushort)0x3F80, DisplayName = "below the tie rounds down")]
    [DataRow(0xBF818000u, (ushort)0xBF82, DisplayName = "negative tie rounds to even")]
    [DataRow(0x3FFF8000u, (ushort)0x4000, DisplayName = "carry bumps the exponent")]
    [DataRow(0x7F7FFFFFu, (ushort)0x7F80, DisplayName = "float max rounds to infinity")]
    [DataRow(0x7F800000u, (ushort)0x7F80, DisplayName = "+infinity")]
    [DataRow(0xFF800000u, (ushort)0xFF80, DisplayName = "-infinity")]
    [DataRow(0x80000000u, (ushort)0x8000, DisplayName = "-0")]
    [DataRow(0x00000001u, (ushort)0x0000, DisplayName = "smallest subnormal rounds to 0")]
    [DataRow(0xFFC00000u, (ushort)0xFFC0, DisplayName = "negative quiet NaN")]
    public void BFloat16RoundsToNearestEven(uint floatBits, ushort expected)
    {
        Assert.AreEqual(expected, BFloat16Conversion.ToBFloat16(BitConverter.UInt32BitsToSingle(floatBits)));
    }

    [TestMethod]
    [DataRow(0x7F800001u, DisplayName = "signalling NaN with only a low payload bit")]
    [DataRow(0x7FFFFFFFu, DisplayName = "NaN with a full payload")]
    [DataRow(0xFF800001u, DisplayName = "negative NaN with a low payload bit")]
    public void BFloat16KeepsNaNs(uint floatBits)
    {
        float nan = BitConverter.UInt32BitsToSingle(floatBits);
        ushort narrowed = BFloat16Conversion.ToBFloat16(nan);
        Assert.IsTrue(float.IsNaN(BFloat16Conversion.ToSingle(narrowed)), $"0x{floatBits:X8} became 0x{narrowed:X4}.");
        Assert.AreEqual(floatBits >> 31, (uint)narrowed >> 15, "sign");
    }

    [TestMethod]
    public void BFloat16SpanRoundTripIsExactForRepresentableValuesAndCloseOtherwise()
    {
        float[] representable = [1f, -2.5f, 0.15625f, 3.3895314e38f, -0f, 1e-38f * 0];
        var bits = new ushort[representable.Length];
        var back = new float[representable.Length];
        BFloat16Conversion.ToBFloat16(representable, bits);
        BFloat16Conversion.ToSingle(bits, back);
        CollectionAssert.AreEqual(representable, back);

        float[] values = TestData.UniformSingle(1, 1000, scale: 100);
        bits = new ushort[values.Length];
        back = new float[values.Length];
        BFloat16Conversion.ToBFloat16(values, bits);
        BFloat16Conversion.ToSingle(bits, back);
        for (int i = 0; i < values.Length; i++)
        {
            // Eight significant bits: round to nearest is within half a unit in the last place, at most 2⁻⁸ relative.
            Assert.IsTrue(Math.Abs(back[i] - values[i]) <= Math.Abs(values[i]) / 256, $"{values[i]} → {back[i]}");
        }
    }

    [TestMethod]
    public void HalfRoundTrip()
    {
        float[] values = [1f, -0.333333343f, 65504f, 65520f, 6e-8f, -0f];
        var halves = new Half[values.Length];
        var back = new float[values.Length];
        Float16Conversion.ToHalf(values, halves);
        Float16Conversion.ToSingle(halves, back);

        Assert.AreEqual(1f, back[0]);
        Assert.AreEqual(-0.333251953f, back[1]); // nearest half to -1/3
        Assert.AreEqual(65504f, back[2]); // largest finite half
        Assert.IsTrue(float.IsPositiveInfinity(back[3]), "65520 is the tie above 65504 and rounds to infinity");
        Assert.AreEqual(5.96046448e-8f, back[4]); // smallest subnormal half
        Assert.IsTrue(float.IsNegative(back[5]) && back[5] == 0, "-0 keeps its sign");
    }

    [TestMethod]
    public void ShortDestinationIsRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => BFloat16Conversion.ToBFloat16([1f, 2f], new ushort[1]));
        Assert.ThrowsExactly<ArgumentException>(() => Float16Conversion.ToHalf([1f, 2f], new Half[1]));
    }

    [TestMethod]
    public void BytesPerElement()
    {
        Assert.AreEqual(4, StorageType.Float32.BytesPerElement());
        Assert.AreEqual(2, StorageType.Float16.BytesPerElement());
        Assert.AreEqual(2, StorageType.BFloat16.BytesPerElement());
    }
}
