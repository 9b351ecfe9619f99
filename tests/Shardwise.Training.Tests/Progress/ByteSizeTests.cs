using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class ByteSizeTests
{
    [TestMethod]
    [DataRow(0L, "0B")]
    [DataRow(1023L, "1023B")]
    [DataRow(1024L, "1.0KiB")]
    [DataRow(9216L, "9.0KiB")]
    [DataRow(3_355_443L, "3.2MiB")]
    [DataRow(1_048_575L, "1.0MiB")] // 1023.999 KiB would round to "1024.0KiB"; it moves up a unit instead.
    [DataRow(5L << 30, "5.0GiB")]
    [DataRow(3L << 40, "3.0TiB")]
    public void Format_UsesBinaryUnitsWithOneDecimal(long bytes, string expected) =>
        Assert.AreEqual(expected, ByteSize.Format(bytes));
}
