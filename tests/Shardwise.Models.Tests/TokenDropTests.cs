using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// The code the generator emits for <c>[TokenDrop]</c> layers: with a micro-batch's <see cref="TokenKeep"/> set, each
/// block runs on its kept tokens alone (the eager block on the gathered rows is the reference) and the others pass
/// through; the backward agrees with float64 finite differences of that forward; keeping every token is the program
/// without random-LTD.
/// </summary>
[TestClass]
public sealed class TokenDropTests
{
    private const int Batch = 2;
    private const int Sequence = TwoBlockGpt.Context;
    private const int Width = TwoBlockGpt.Width;

    [TestMethod]
    public void EachBlockRunsOnItsKeptTokensAloneAndTheOthersPassThrough()
    {
        var program = new TokenDropStack.Compiled<float>(new CpuOps<float>(), Batch);
        RandomData.Parameters(program, seed: 61);
        var model = new TokenDropStack();
        model.CopyParametersFrom<float>(program.Parameters);
        var x = Array.ConvertAll(RandomData.Doubles(new Random(62), Batch * Sequence * Width), v => (float)v);

        // Block 0 keeps 4 of 6 tokens per sample (different ones), block 1 keeps 3.
        int[][] kept = [[0, 2, 3, 5, /* sample 1 */ 1, 2, 4, 5], [1, 3, 5, /* sample 1 */ 0, 1, 5]];
        program.TokenKeep = Keep([4, 3], kept);
        program.Forward(x);
        var compiled = new float[Batch * Sequence * Width];
        program.Read(program.Output, compiled);

        var expected = (float[])x.Clone();
        for (int block = 0; block < 2; block++)
        {
            int count = kept[block].Length / Batch;
            for (int b = 0; b < Batch; b++)
            {
                var rows = kept[block].Skip(b * count).Take(count).ToArray();
                var gathered = new float[count * Width];
                for (int j = 0; j < count; j++) Array.Copy(expected, ((b * Sequence) + rows[j]) * Width, gathered, j * Width, Width);
                var output = model.Block(block).Forward(Tensor.FromArray(gathered, 1, count, Width)).Data;
                for (int j = 0; j < count; j++) Array.Copy(output, j * Width, expected, ((b * Sequence) + rows[j]) * Width, Width);
            }
        }

        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - compiled[i]));
        Assert.IsTrue(worst < 1e-5, $"max abs difference {worst} from the eager blocks on the kept rows");
        // Not vacuous: token 4 of sample 0 skips both blocks, token 0 of sample 0 runs block 0 only.
        for (int c = 0; c < Width; c++) Assert.AreEqual(x[(4 * Width) + c], compiled[(4 * Width) + c], 0f, "a token both blocks skip keeps its input");
        Assert.AreNotEqual(x[0], compiled[0], 1e-4f, "a kept token changes");
    }

    [TestMethod]
    public void GradientsMatchFiniteDifferencesWithDroppedTokens()
    {
        var p = new TokenDropGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 67);
        p.TokenKeep = Keep([4, 6, 2], [[0, 1, 3, 5, 2, 3, 4, 5], Identity(6), [2, 4, 0, 3]]);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); }).Check();
        Console.WriteLine($"blocks keeping 4, 6 and 2 of 6 tokens: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void CheckpointedBlocksWithASkippedOneMatchFiniteDifferences()
    {
        var p = new CheckpointedTokenDropGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 71);
        p.TokenKeep = Keep([3, 5, 4], [[0, 2, 5, 1, 3, 4], [0, 1, 2, 3, 5, 0, 2, 3, 4, 5], [1, 2, 3, 4, 0, 1, 4, 5]]);
        p.LayerKeep = new LayerKeep([true, false, true], [1.25, 1.0, 1 / 0.6]);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); })
            .WithZeroGradients(slot => slot.StartsWith("blocks.1.", StringComparison.Ordinal))
            .Check();
        Console.WriteLine($"checkpointed, blocks.1 skipped, the others on some tokens: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void KeepingEveryTokenIsTheProgramWithoutRandomLtd()
    {
        var p = new TokenDropGpt.Compiled<double>(new CpuOps<double>(), Batch);
        var (ids, targets) = Prepare(p, seed: 73);
        p.ZeroGradients();
        double plain = p.Forward(ids, targets);
        p.Backward(1.0);
        var plainGradients = p.Gradients.ToArray();

        p.TokenKeep = Keep([6, 6, 6], [Identity(6), Identity(6), Identity(6)]);
        p.ZeroGradients();
        Assert.AreEqual(plain, p.Forward(ids, targets), 0.0);
        p.Backward(1.0);
        CollectionAssert.AreEqual(plainGradients, p.Gradients.ToArray());

        // Not vacuous: dropping tokens changes the loss.
        p.TokenKeep = Keep([3, 6, 6], [[0, 1, 2, 0, 1, 2], Identity(6), Identity(6)]);
        Assert.AreNotEqual(plain, p.Forward(ids, targets), 1e-6);
    }

    /// <summary>A keep plan from packed <c>[batch, kept]</c> rows, padded to <c>[batch, sequence]</c> as the runtime's are.</summary>
    private static TokenKeep Keep(int[] counts, int[][] packed)
        => new(counts, packed.Select(rows => rows.Concat(new int[(Batch * Sequence) - rows.Length]).ToArray()).ToArray());

    private static int[] Identity(int sequence) => Enumerable.Range(0, Batch * sequence).Select(i => i % sequence).ToArray();

    private static (int[] Ids, int[] Targets) Prepare(CompiledModel<double> program, int seed)
    {
        RandomData.Parameters(program, seed);
        var random = new Random(seed + 1);
        return (RandomData.Tokens(random, Batch * Sequence, TwoBlockGpt.Vocabulary),
            RandomData.Tokens(random, Batch * Sequence, TwoBlockGpt.Vocabulary));
    }
}
