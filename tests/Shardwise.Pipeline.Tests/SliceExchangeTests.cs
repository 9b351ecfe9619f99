using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// On the CPU backend a pipeline or tensor exchange works on the arena itself, as it did before device backends moved
/// slices through a host buffer: no copy, and what the communicator writes is in the arena at once. (The device path
/// is measured in Shardwise.CudaEmulation.Tests' HostDeviceTrafficTests.)
/// </summary>
[TestClass]
public sealed class SliceExchangeTests
{
    [TestMethod]
    public void OnTheCpuBackendTheSliceIsTheArenaItself()
    {
        var ops = new CpuOps<float>();
        ops.Allocate(Arena.Activations, 64);
        var values = new float[64];
        var random = new System.Random(5);
        for (int i = 0; i < values.Length; i++) values[i] = (float)random.NextDouble() + 0.5f;
        ops.Load(values, new Slice(Arena.Activations, 0, 64));
        var exchange = new SliceExchange(ops);
        var slice = new Slice(Arena.Activations, 10, 20);

        Assert.IsTrue(exchange.InPlace);
        System.Span<float> read = exchange.Read(slice);
        Assert.AreEqual(values[10], read[0]);
        read[0] = -7f; // a reduction writing its result
        exchange.Write(slice, read);
        System.Span<float> receiving = exchange.Receiving(slice);
        receiving[19] = -9f; // a receive writing into the arena directly
        Assert.AreEqual(-7f, ops.View(Arena.Activations)[10]);
        Assert.AreEqual(-9f, ops.View(Arena.Activations)[29]);
        Assert.AreEqual(values[30], ops.View(Arena.Activations)[30], "outside the slice nothing changes");
    }
}
