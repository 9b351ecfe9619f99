using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>Each eager layer's Forward equals the same computation through CpuOps&lt;float&gt;.</summary>
[TestClass]
public sealed class EagerLayerTests
{
    private const double Tolerance = 1e-6;

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void LinearMatchesOps(bool bias)
    {
        var layer = new Linear(5, 4, bias);
        Randomize(layer.Weight, 1);
        if (layer.Bias is { } b) Randomize(b, 2);
        Tensor x = Tensor.FromArray(TestData.UniformSingle(3, 2 * 3 * 5), 2, 3, 5);

        Tensor y = layer.Forward(x);

        var h = new OpHarness<float>();
        Slice? biasSlice = layer.Bias is { } present ? Parameter(h, present) : null;
        Slice output = h.Activation(2 * 3 * 4);
        h.Ops.Linear(Activation(h, x), Parameter(h, layer.Weight), biasSlice, output, 6, 5, 4);
        CollectionAssert.AreEqual(new[] { 2, 3, 4 }, y.Shape);
        AssertClose(h.Read(output), y);
    }

    [TestMethod]
    public void EmbeddingAndUnembedMatchOps()
    {
        var layer = new Embedding(vocabulary: 9, dim: 4);
        Randomize(layer.Weight, 4);
        int[] ids = TestData.Ids(5, 6, 9);

        Tensor embedded = layer.Forward(Tensor.Tokens(ids, 2, 3));
        Tensor logits = layer.Unembed(embedded);

        var h = new OpHarness<float>();
        Slice table = Parameter(h, layer.Weight);
        Slice rows = h.Activation(6 * 4), expectedLogits = h.Activation(6 * 9);
        h.Ops.Embedding(h.Indices(ids), table, rows, 6, 4);
        h.Ops.Linear(rows, table, null, expectedLogits, 6, 4, 9);
        CollectionAssert.AreEqual(new[] { 2, 3, 4 }, embedded.Shape);
        CollectionAssert.AreEqual(new[] { 2, 3, 9 }, logits.Shape);
        AssertClose(h.Read(rows), embedded);
        AssertClose(h.Read(expectedLogits), logits);
    }

    [TestMethod]
    public void LayerNormMatchesOps()
    {
        var layer = new LayerNorm(7);
        Randomize(layer.Weight, 6);
        Randomize(layer.Bias, 7);
        Tensor x = Tensor.FromArray(TestData.UniformSingle(8, 3 * 7, scale: 2), 3, 7);

        Tensor y = layer.Forward(x);

        var h = new OpHarness<float>();
        Slice output = h.Activation(21);
        h.Ops.LayerNorm(Activation(h, x), Parameter(h, layer.Weight), Parameter(h, layer.Bias), output,
            h.Activation(3), h.Activation(3), 3, 7);
        AssertClose(h.Read(output), y);
    }

    [TestMethod]
    public void CausalSelfAttentionMatchesOps()
    {
        const int batch = 2, sequence = 5, dim = 8, heads = 2;
        var layer = new CausalSelfAttention(dim, heads);
        Randomize(layer.Qkv.Weight, 9);
        Randomize(layer.Qkv.Bias!, 10);
        Randomize(layer.Projection.Weight, 11);
        Randomize(layer.Projection.Bias!, 12);
        Tensor x = Tensor.FromArray(TestData.UniformSingle(13, batch * sequence * dim), batch, sequence, dim);

        Tensor y = layer.Forward(x);

        var h = new OpHarness<float>();
        int rows = batch * sequence;
        Slice qkv = h.Activation(rows * 3 * dim), attended = h.Activation(rows * dim), output = h.Activation(rows * dim);
        h.Ops.Linear(Activation(h, x), Parameter(h, layer.Qkv.Weight), Parameter(h, layer.Qkv.Bias!), qkv, rows, dim,
            3 * dim);
        h.Ops.Attention(qkv, attended, h.Activation(batch * heads * sequence), batch, sequence, heads, dim);
        h.Ops.Linear(attended, Parameter(h, layer.Projection.Weight), Parameter(h, layer.Projection.Bias!), output,
            rows, dim, dim);
        CollectionAssert.AreEqual(x.Shape, y.Shape);
        AssertClose(h.Read(output), y);
    }

    [TestMethod]
    public void GeluMatchesOps()
    {
        Tensor x = Tensor.FromArray(TestData.UniformSingle(14, 10, scale: 3), 2, 5);

        Tensor y = Activations.Gelu(x);

        var h = new OpHarness<float>();
        Slice output = h.Activation(10);
        h.Ops.Gelu(Activation(h, x), output, 10);
        AssertClose(h.Read(output), y);
    }

    [TestMethod]
    public void CrossEntropyMatchesOps()
    {
        Tensor logits = Tensor.FromArray(TestData.UniformSingle(15, 2 * 3 * 7, scale: 3), 2, 3, 7);
        int[] targets = TestData.Ids(16, 6, 7);

        Tensor loss = Loss.CrossEntropy(logits, Tensor.Tokens(targets, 2, 3));

        var h = new OpHarness<float>();
        float expected = h.Ops.CrossEntropy(Activation(h, logits), h.Indices(targets), 6, 7);
        Assert.AreEqual(0, loss.Rank);
        Assert.AreEqual(expected, loss.Item(), Tolerance * expected);
    }

    [TestMethod]
    public void ResidualAddMatchesOps()
    {
        Tensor a = Tensor.FromArray(TestData.UniformSingle(17, 6), 2, 3);
        Tensor b = Tensor.FromArray(TestData.UniformSingle(18, 6), 2, 3);

        Tensor sum = a + b;

        var h = new OpHarness<float>();
        Slice output = h.Activation(6);
        h.Ops.Add(Activation(h, a), Activation(h, b), output, 6);
        AssertClose(h.Read(output), sum);
    }

    private static void Randomize(Parameter parameter, int seed) =>
        TestData.UniformSingle(seed, parameter.Data.Length).CopyTo(parameter.Data, 0);

    private static Slice Parameter(OpHarness<float> h, Parameter parameter) =>
        h.Parameter(parameter.Data.Select(v => (double)v).ToArray());

    private static Slice Activation(OpHarness<float> h, Tensor tensor) =>
        h.Activation(tensor.Data.Select(v => (double)v).ToArray());

    private static void AssertClose(double[] expected, Tensor actual)
    {
        double error = TestData.RelativeError(expected, actual.Data.Select(v => (double)v).ToArray());
        Assert.IsTrue(error < Tolerance, $"relative error {error:E2}");
    }
}
