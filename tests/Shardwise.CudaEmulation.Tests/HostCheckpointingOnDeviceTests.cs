using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Models.Tests;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// <c>[Checkpoint(InputsOnHost = true)]</c> on CudaOps (the emulated device): the stash and restore are asynchronous
/// copies between the arena and pinned host memory on a copy stream, awaited by the kernels where the plan says; a
/// model whose blocks keep their inputs on the host computes bitwise the loss and gradients of its twin that keeps them
/// in the arena, in fp32 and in bf16 (raw 16-bit copies), and the copies are counted as host ↔ device traffic: each
/// input once down and once up per step. The emulator refuses a kernel that touches memory a copy may still use, so
/// a wait missing from the generated program fails here.
/// </summary>
[TestClass]
public sealed class HostCheckpointingOnDeviceTests
{
    private const int Batch = 3;

    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.BFloat16)]
    public void InputsOnTheHostChangeNothingButTheTraffic(StorageType storage)
    {
        using CudaOps arenaOps = GpuSupport.RequireCudaOps(storage: storage);
        using CudaOps hostOps = GpuSupport.RequireCudaOps(storage: storage);
        var inArena = CheckpointedHybridGpt.Compile<float>(arenaOps, Batch);
        var onHost = HostCheckpointedHybridGpt.Compile<float>(hostOps, Batch);
        CheckpointedHybridGpt.ParameterLayout.Initialize(inArena.Parameters, seed: 3);
        HostCheckpointedHybridGpt.ParameterLayout.Initialize(onHost.Parameters, seed: 3);
        long hostElements = HostCheckpointedHybridGpt.ActivationPlan.HostElementsPerSample;
        Assert.IsTrue(hostElements > 0 && CheckpointedHybridGpt.ActivationPlan.HostElementsPerSample == 0);

        var random = new Random(5);
        int rows = Batch * HostCheckpointedHybridGpt.Context;
        for (int run = 0; run < 2; run++)
        {
            var ids = Enumerable.Range(0, rows).Select(_ => random.Next(HostCheckpointedHybridGpt.Vocabulary)).ToArray();
            var targets = Enumerable.Range(0, rows).Select(_ => random.Next(HostCheckpointedHybridGpt.Vocabulary)).ToArray();
            inArena.ZeroGradients();
            onHost.ZeroGradients();
            var before = hostOps.HostDeviceTraffic;
            float expected = inArena.Forward(ids, targets), loss = onHost.Forward(ids, targets);
            inArena.Backward(1f);
            onHost.Backward(1f);
            var moved = hostOps.HostDeviceTraffic - before;
            Assert.AreEqual(expected, loss, $"run {run}: loss");
            CollectionAssert.AreEqual(inArena.Gradients.ToArray(), onHost.Gradients.ToArray(), $"run {run}: gradients");
            Assert.IsTrue(inArena.Gradients.ToArray().Any(g => g != 0));

            // The stashed inputs, once down and once up, at the arena's element size; the batch and the loss move too.
            long stashed = Batch * hostElements * storage.BytesPerElement();
            long upExtra = moved.BytesUp, downExtra = moved.BytesDown;
            Console.WriteLine($"{storage}, run {run}: {moved} in the step; the planned host store is {stashed} bytes");
            Assert.IsTrue(downExtra >= stashed && upExtra >= stashed, $"{moved}: the inputs must cross the bus both ways ({stashed} B)");
        }
    }
}
