using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Plans;
using Shardwise.Training.Cli;

namespace Shardwise.Training.Tests;

/// <summary>
/// bench's MFU: PaLM's 6N + 12·L·d·T training FLOPs per token, L/d/T read from the activation plan, and the GPU peak
/// table (bench/gpu-peaks.json). Expected values are computed by hand in the comments.
/// </summary>
[TestClass]
public sealed class BenchFlopsTests
{
    // GPT-2 124M with nanoGPT's padded vocabulary: wte 50,304·768 = 38,633,472; wpe 1,024·768 = 786,432; per block
    // 2·1,536 (norms) + 1,771,776 (qkv) + 590,592 (projection) + 2,362,368 (expand) + 2,360,064 (contract) =
    // 7,087,872, ·12 = 85,054,464; final norm 1,536. N = 124,475,904.
    private static readonly TrainingFlops Gpt2 = new(124_475_904, Layers: 12, Width: 768, Context: 1024);

    [TestMethod]
    public void Gpt2SmallTrainsOnAbout860MegaflopsPerToken()
    {
        // 6·124,475,904 = 746,855,424; 12·12·768·1,024 = 113,246,208; sum 860,101,632.
        Assert.AreEqual(860_101_632.0, Gpt2.PerToken);
        StringAssert.Contains(Gpt2.Describe(), "6·124,475,904 + 12·12·768·1024 = 860,101,632");
    }

    [TestMethod]
    public void UtilizationIsAchievedFlopsOverThePeak()
    {
        // 500,000 tokens/s · 860,101,632 = 4.30050816e14 FLOP/s; / 989.4e12 = 0.434658192844...
        Assert.AreEqual(0.434658192844, Gpt2.Utilization(500_000, 989.4), 1e-11);
        // 123,456 · 860,101,632 / 756e12 = 0.140455961746...
        Assert.AreEqual(0.140455961746, Gpt2.Utilization(123_456, 756), 1e-11);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gpt2.Utilization(1, 0));
    }

    [TestMethod]
    public void LayersWidthAndContextComeFromTheAttentionBuffers()
    {
        // Three attention layers of width 48 over T = 32: core 32·48 = 1,536 elements per sample; log-sum-exp
        // 4 heads · 32 = 128 fp32 statistics, 256 elements. The gradient of a core and other buffers do not count; a repeated name (a
        // recomputed block) counts once.
        var plan = Plan(32,
            Buffer("blocks.0.attention.core", 1536), Buffer("blocks.0.attention.lse", 256),
            Buffer("blocks.0.mlp.out", 6144),
            Buffer("blocks.1.attention.core", 1536), Buffer("blocks.1.attention.lse", 256),
            Buffer("blocks.1.attention.lse", 256),
            Buffer("last.core", 1536), Buffer("last.lse", 256),
            new PlannedBuffer("d(blocks.0.attention.core)", BufferRole.Gradient, 1536, 0, 9, 10));
        var flops = TrainingFlops.Of(Layout(777_001), plan);

        Assert.AreEqual(new TrainingFlops(777_001, 3, 48, 32), flops);
        // 6·777,001 + 12·3·48·32 = 4,662,006 + 55,296 = 4,717,302.
        Assert.AreEqual(4_717_302.0, flops.PerToken);
    }

    [TestMethod]
    public void AModelWithoutAttentionHasOnlyTheParameterTerm()
    {
        var flops = TrainingFlops.Of(Layout(1_234), Plan(16, Buffer("hidden.out", 256)));
        Assert.AreEqual(new TrainingFlops(1_234, 0, 0, 16), flops);
        Assert.AreEqual(7_404.0, flops.PerToken);
    }

    [TestMethod]
    public void UnequalWidthsOrAMissingCoreAreNamed()
    {
        var unequal = Plan(8, Buffer("a.core", 64), Buffer("a.lse", 16), Buffer("b.core", 96), Buffer("b.lse", 16));
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => TrainingFlops.Of(Layout(10), unequal));
        StringAssert.Contains(error.Message, "'b' is 12 wide where an earlier layer is 8");

        var missing = Plan(8, Buffer("a.lse", 16));
        error = Assert.ThrowsExactly<InvalidOperationException>(() => TrainingFlops.Of(Layout(10), missing));
        StringAssert.Contains(error.Message, "'a.core'");
    }

    [TestMethod]
    public void PeaksAreLookedUpByDeviceName()
    {
        AssertPeak("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4);
        AssertPeak("NVIDIA H100 PCIe", "H100 PCIe", 756);
        AssertPeak("nvidia h100 pcie", "H100 PCIe", 756);
        AssertPeak("NVIDIA H200", "H200 SXM", 989.4);
        AssertPeak("NVIDIA A100-SXM4-80GB", "A100", 312);
        AssertPeak("NVIDIA A100 80GB PCIe", "A100", 312);
        // Variants with other peaks are not in the table on purpose.
        Assert.IsNull(GpuPeaks.Find("NVIDIA H100 NVL"));
        Assert.IsNull(GpuPeaks.Find("NVIDIA H200 NVL"));
        Assert.IsNull(GpuPeaks.Find("NVIDIA GeForce RTX 4090"));
    }

    [TestMethod]
    public void PeakTflopsOptionWinsAndAnUnknownCardHasNoMfu()
    {
        var result = Result("NVIDIA H100 80GB HBM3", tokensPerSecond: 500_000);

        var fromTable = BenchCommand.WithPeak(result, null);
        Assert.AreEqual(989.4, fromTable.PeakTflops);
        Assert.AreEqual(0.434658192844, fromTable.Mfu!.Value, 1e-11);
        Assert.AreEqual("43.5%", fromTable.DescribeMfu());

        var given = BenchCommand.WithPeak(result, 500);
        Assert.AreEqual("--peak-tflops", given.PeakSource);
        // 4.30050816e14 / 5e14 = 0.860101632.
        Assert.AreEqual(0.860101632, given.Mfu!.Value, 1e-12);

        var unknown = BenchCommand.WithPeak(Result("Some Future GPU", 500_000), null);
        Assert.IsNull(unknown.Mfu);
        Assert.AreEqual("n/a (unknown peak; pass --peak-tflops)", unknown.DescribeMfu());
        StringAssert.Contains(unknown.ToJson(), "\"mfu\": null");
    }

    [TestMethod]
    public void ABadPeakTableNamesTheJsonPath()
    {
        var error = Assert.ThrowsExactly<InvalidDataException>(() =>
            GpuPeaks.Parse("""{ "peaks": [ { "card": "X", "contains": ["X"], "tflops": 1 }, { "card": "Y", "contains": [], "tflops": 2 } ] }""", "t.json"));
        StringAssert.Contains(error.Message, "t.json: $.peaks[1].contains");
        error = Assert.ThrowsExactly<InvalidDataException>(() =>
            GpuPeaks.Parse("""{ "peaks": [ { "card": "X", "contains": ["X"], "tflops": "fast" } ] }""", "t.json"));
        StringAssert.Contains(error.Message, "t.json: $.peaks[0].tflops");
    }

    private static void AssertPeak(string device, string card, double tflops)
    {
        var peak = GpuPeaks.Find(device);
        Assert.IsNotNull(peak, device);
        Assert.AreEqual(card, peak.Card, device);
        Assert.AreEqual(tflops, peak.Tflops, device);
    }

    private static BenchResult Result(string device, double tokensPerSecond) => new()
    {
        Model = "Gpt2Small",
        Precision = "bf16",
        MicroBatch = 16,
        GradientAccumulation = 1,
        WarmupSteps = 3,
        TimedSteps = 10,
        MsPerStep = 16 * 1024 / tokensPerSecond * 1000,
        TokensPerSecond = tokensPerSecond,
        Flops = Gpt2,
        Device = device,
    };

    private static PlannedBuffer Buffer(string name, long elements) => new(name, BufferRole.Value, elements, 0, 0, 1);

    private static ActivationPlan Plan(int tokens, params PlannedBuffer[] buffers) => new(buffers, 1, 1, 0, tokens);

    private static ParameterLayout Layout(long parameters) =>
        new([new ParameterSlot("w", [checked((int)parameters)], 0, parameters, ParameterInit.Normal)], parameters);
}
