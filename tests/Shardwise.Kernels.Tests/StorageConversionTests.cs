using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The host conversions of a 16-bit CudaOps arena (<see cref="StorageConversion"/>) against
/// <see cref="StorageRounding"/>, the engine's reference: every 16-bit pattern round-trips, and every float narrows to
/// exactly what StorageRounding keeps (ties to even, fp16 overflow to infinity). Runs without a GPU.
/// </summary>
[TestClass]
public sealed class StorageConversionTests
{
    private static readonly StorageType[] SixteenBit = [StorageType.Float16, StorageType.BFloat16];

    [TestMethod]
    public void EverySixteenBitPatternWidensExactlyAndNarrowsBackToItself()
    {
        var bits = new ushort[1 << 16];
        for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)i;
        var wide = new float[bits.Length];
        var back = new ushort[bits.Length];
        foreach (StorageType storage in SixteenBit)
        {
            StorageConversion.Widen(bits, wide, storage);
            StorageConversion.Narrow(wide, back, storage);
            int nans = 0;
            for (int i = 0; i < bits.Length; i++)
            {
                float expected = storage == StorageType.Float16
                    ? (float)BitConverter.UInt16BitsToHalf((ushort)i)
                    : BitConverter.UInt32BitsToSingle((uint)i << 16);
                if (float.IsNaN(expected))
                {
                    nans++;
                    Assert.IsTrue(float.IsNaN(wide[i]) && float.IsNaN(WidenOne(back[i], storage)), $"{storage} NaN 0x{i:X4}");
                    continue;
                }

                Assert.AreEqual(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(wide[i]), $"{storage} widen 0x{i:X4}");
                Assert.AreEqual((ushort)i, back[i], $"{storage} round trip of 0x{i:X4} ({expected:R})");
            }

            Assert.AreEqual(storage == StorageType.Float16 ? 2046 : 254, nans, $"{storage}: NaN patterns");
        }
    }

    [TestMethod]
    public void NarrowingRoundsExactlyAsStorageRounding()
    {
        var random = new Random(17);
        var values = new float[200_003]; // not a multiple of any vector width: the scalar tail runs too
        for (int i = 0; i < values.Length; i++)
        {
            // Random bit patterns cover every exponent (subnormals, overflow, infinities, NaNs) ...
            values[i] = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
        }

        // ... and these the boundaries: ties at both parities, fp16's largest finite value and its overflow edge,
        // the smallest fp16 subnormal and half of it, bf16's overflow carry.
        float[] edges =
        [
            0f, -0f, 1f, 1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 1f + MathF.Pow(2, -8), 1f + 3 * MathF.Pow(2, -8),
            65504f, 65519.996f, 65520f, 70000f, -65520f, MathF.Pow(2, -24), MathF.Pow(2, -25), 1.5f * MathF.Pow(2, -25),
            float.MaxValue, float.Epsilon, float.PositiveInfinity, float.NegativeInfinity, 3.3961776e38f,
        ];
        edges.CopyTo(values, 0);

        var bits = new ushort[values.Length];
        var widened = new float[values.Length];
        foreach (StorageType storage in SixteenBit)
        {
            float[] expected = (float[])values.Clone();
            StorageRounding.RoundInPlace(expected, storage);
            StorageConversion.Narrow(values, bits, storage);
            StorageConversion.Widen(bits, widened, storage);
            for (int i = 0; i < values.Length; i++)
            {
                if (float.IsNaN(expected[i]))
                {
                    Assert.IsTrue(float.IsNaN(widened[i]), $"{storage}: {values[i]:R} should stay NaN");
                    continue;
                }

                Assert.AreEqual(BitConverter.SingleToUInt32Bits(expected[i]), BitConverter.SingleToUInt32Bits(widened[i]),
                    $"{storage}: {values[i]:R} rounds to {expected[i]:R}, the conversion gave {widened[i]:R}");
            }
        }

        // The edges, spelled out: fp16 overflow is infinity, ties go to even.
        StorageConversion.Narrow([65520f, 65519.996f, 1f + MathF.Pow(2, -11)], bits, StorageType.Float16);
        Assert.AreEqual(0x7C00, bits[0]);
        Assert.AreEqual(0x7BFF, bits[1]);
        Assert.AreEqual(0x3C00, bits[2]);
    }

    [TestMethod]
    public void Float32IsNotASixteenBitStorageType()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => StorageConversion.Narrow([1f], new ushort[1], StorageType.Float32));
        StringAssert.Contains(e.Message, "16-bit storage types");
        Assert.ThrowsExactly<ArgumentException>(() => StorageConversion.Widen(new ushort[3], new float[2], StorageType.BFloat16));
    }

    private static float WidenOne(ushort bits, StorageType storage)
    {
        var wide = new float[1];
        StorageConversion.Widen([bits], wide, storage);
        return wide[0];
    }
}
