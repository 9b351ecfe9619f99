using System;
using System.Collections.Generic;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// The generated backward announces when gradients are final (the static schedule data parallelism uses to reduce
/// buckets during backward): each announcement is true — those gradients never change afterwards — and the last
/// one covers the whole layout.
/// </summary>
[TestClass]
public sealed class GradientReadinessTests
{
    private sealed class Recorder(CompiledModel<double> program) : IGradientListener
    {
        public List<(long Offset, double[] Snapshot)> Events { get; } = new();

        public void GradientsReady(long fromOffset) => Events.Add((fromOffset, program.Gradients.ToArray()));
    }

    [TestMethod]
    public void AnnouncedGradientsAreFinalAndCoverTheLayout()
    {
        var random = new Random(31);
        var program = new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), batch: 2);
        RandomData.Parameters(program, seed: 1);
        var recorder = new Recorder(program);
        program.GradientListener = recorder;
        var ids = RandomData.Tokens(random, 2 * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);

        program.ZeroGradients();
        program.Forward(ids, ids);
        program.Backward(1.0);
        var final = program.Gradients.ToArray();

        Assert.IsTrue(recorder.Events.Count > 5, "a multi-layer model finishes gradients in several steps");
        Assert.AreEqual(0L, recorder.Events[^1].Offset, "the last announcement covers every gradient");
        long previous = long.MaxValue;
        foreach (var (offset, snapshot) in recorder.Events)
        {
            Assert.IsTrue(offset < previous, "announcements move strictly towards the start of the layout");
            previous = offset;
            for (long i = offset; i < final.Length; i++)
                Assert.AreEqual(final[i], snapshot[i], $"gradient {i} changed after it was announced final at {offset}");
        }

        // The tied embedding (offset 0) gets its last contribution from the embedding backward at the very end, so
        // no announcement before the last may include it.
        Assert.IsTrue(recorder.Events[^2].Offset > 0);
    }
}
