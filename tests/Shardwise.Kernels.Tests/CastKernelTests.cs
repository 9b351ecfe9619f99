using System;
using System.Collections.Generic;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>cast.cu against the runtime's Float16Conversion and BFloat16Conversion, bit for bit.</summary>
[TestClass]
public sealed class CastKernelTests
{
    /// <summary>Special values, rounding ties, the edges of the fp16 range, and random bit patterns.</summary>
    private static float[] Inputs()
    {
        var values = new List<float>
        {
            0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.MaxValue,
            float.Epsilon, -float.Epsilon, 1e-40f, 65504f, 65519.996f, 65520f, -65520f, 1e5f,
            6.1035156e-5f, 6.0975552e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 1e-9f,
            1f + 1f / 2048, 1f + 3f / 2048, 1f + 1f / 256, 1f + 3f / 256, 1f + 1f / 512, 3.1415927f, -2.7182817f,
        };
        var random = new Random(7);
        for (int i = 0; i < 20000; i++) values.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        for (int i = 0; i < 20000; i++) values.Add((random.NextSingle() - 0.5f) * MathF.Pow(2, random.Next(-30, 20)));
        return values.ToArray();
    }

    private static void Run(string kernel, DeviceBuffer input, DeviceBuffer output, SchedulerOrder order) =>
        // Seven blocks of 96 threads stride over many more elements, so the grid-stride loop wraps many times.
        SimtEmulator.Launch(kernel, 7, 96, order, input, output, input.Count);

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void Float32ToFloat16RoundsToNearestEven(SchedulerOrder order)
    {
        float[] values = Inputs();
        using var input = DeviceBuffer.From(values, StorageType.Float32);
        using var output = DeviceBuffer.Zeroed(values.Length, StorageType.Float16);
        Run("cast_f32_to_f16", input, output, order);
        ushort[] bits = output.ToBits();
        for (int i = 0; i < values.Length; i++)
        {
            Half expected = (Half)values[i];
            if (Half.IsNaN(expected)) Assert.IsTrue(Half.IsNaN(BitConverter.UInt16BitsToHalf(bits[i])), $"{values[i]}");
            else Assert.AreEqual(BitConverter.HalfToUInt16Bits(expected), bits[i], $"f16 of {values[i]:R}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void Float32ToBFloat16RoundsToNearestEven(SchedulerOrder order)
    {
        float[] values = Inputs();
        using var input = DeviceBuffer.From(values, StorageType.Float32);
        using var output = DeviceBuffer.Zeroed(values.Length, StorageType.BFloat16);
        Run("cast_f32_to_bf16", input, output, order);
        ushort[] bits = output.ToBits();
        for (int i = 0; i < values.Length; i++)
        {
            ushort expected = BFloat16Conversion.ToBFloat16(values[i]);
            if (float.IsNaN(values[i])) Assert.IsTrue(float.IsNaN(BFloat16Conversion.ToSingle(bits[i])));
            else Assert.AreEqual(expected, bits[i], $"bf16 of {values[i]:R}");
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16, "cast_f16_to_f32")]
    [DataRow(StorageType.BFloat16, "cast_bf16_to_f32")]
    public void EverySixteenBitPatternWidensExactly(StorageType storage, string kernel)
    {
        using var input = DeviceBuffer.Zeroed(65536, storage);
        var patterns = new ushort[65536];
        for (int i = 0; i < patterns.Length; i++) patterns[i] = (ushort)i;
        unsafe
        {
            patterns.CopyTo(new Span<ushort>((void*)input.Pointer, patterns.Length));
        }

        using var output = DeviceBuffer.Zeroed(65536, StorageType.Float32);
        Run(kernel, input, output, SchedulerOrder.Forward);
        float[] widened = output.ToFloats();
        for (int i = 0; i < patterns.Length; i++)
        {
            float expected = storage == StorageType.Float16
                ? (float)BitConverter.UInt16BitsToHalf(patterns[i])
                : BFloat16Conversion.ToSingle(patterns[i]);
            if (float.IsNaN(expected)) Assert.IsTrue(float.IsNaN(widened[i]), $"pattern {i:x4}");
            else Assert.AreEqual(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(widened[i]),
                $"pattern {i:x4}");
        }
    }
}
