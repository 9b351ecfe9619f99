using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class EtaEstimatorTests
{
    [TestMethod]
    public void Remaining_IsUnknownBeforeTheFirstStep() =>
        Assert.IsNull(new EtaEstimator().Remaining(0, 100));

    [TestMethod]
    public void Observe_SeedsWithTheFirstStepThenAveragesExponentially()
    {
        var eta = new EtaEstimator();
        eta.Observe(1, 100);
        Assert.AreEqual(100, eta.AverageMillisecondsPerStep, 1e-12);

        eta.Observe(2, 200); // 100 + 0.1 × (200 − 100)
        Assert.AreEqual(110, eta.AverageMillisecondsPerStep, 1e-12);
        Assert.AreEqual(TimeSpan.FromMilliseconds(8 * 110), eta.Remaining(2, 10));
    }

    [TestMethod]
    public void Observe_CountsEachStepOnce()
    {
        // A loop that ticks and then reports the same step must not weight that step twice.
        var eta = new EtaEstimator();
        eta.Observe(1, 100);
        eta.Observe(1, 1000);
        eta.Observe(0, 1000);
        Assert.AreEqual(100, eta.AverageMillisecondsPerStep, 1e-12);
    }

    [TestMethod]
    public void Remaining_IsZeroPastTheEnd()
    {
        var eta = new EtaEstimator();
        eta.Observe(12, 50);
        Assert.AreEqual(TimeSpan.Zero, eta.Remaining(12, 10));
    }

    [TestMethod]
    public void Format_ShowsMinutesAndSecondsOrHours()
    {
        Assert.AreEqual("--:--", EtaEstimator.Format(null));
        Assert.AreEqual("00:00", EtaEstimator.Format(TimeSpan.Zero));
        Assert.AreEqual("05:43", EtaEstimator.Format(TimeSpan.FromSeconds(342.7)));
        Assert.AreEqual("59:59", EtaEstimator.Format(TimeSpan.FromSeconds(3599)));
        Assert.AreEqual("3:02:05", EtaEstimator.Format(new TimeSpan(3, 2, 5)));
        Assert.AreEqual("27:00:00", EtaEstimator.Format(TimeSpan.FromHours(27)));
    }
}
