using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Optim;
using Shardwise.Training.Precision;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class OverflowCheckTests
{
    private static readonly SimdWidth[] Widths = [SimdWidth.Scalar, SimdWidth.Vector256, SimdWidth.Vector512, SimdWidth.Auto];

    [TestMethod]
    [DataRow(float.PositiveInfinity)]
    [DataRow(float.NegativeInfinity)]
    [DataRow(float.NaN)]
    public void FindsANonFiniteValueAtEveryPosition(float bad)
    {
        const int Length = 37; // two 16-wide vectors plus a tail
        foreach (var width in Widths)
        {
            for (var position = 0; position < Length; position++)
            {
                var values = new float[Length];
                for (var i = 0; i < Length; i++)
                {
                    values[i] = (i % 3) - 1.5f;
                }

                values[position] = bad;
                Assert.IsTrue(OverflowCheck.HasInfOrNaN(values, width), $"{width}: {bad} at {position}");
            }
        }
    }

    [TestMethod]
    public void ExtremeFiniteValues_AreNotOverflow()
    {
        var values = new float[] { float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon, 0f, -0f, 1e-40f, 65504f, 3.4e38f };
        var repeated = new float[values.Length * 5];
        for (var i = 0; i < repeated.Length; i++)
        {
            repeated[i] = values[i % values.Length];
        }

        foreach (var width in Widths)
        {
            Assert.IsFalse(OverflowCheck.HasInfOrNaN(repeated, width), $"{width}");
        }

        Assert.IsFalse(OverflowCheck.HasInfOrNaN([]));
    }
}
