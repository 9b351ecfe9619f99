using System;
using System.Numerics;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>A tensor an op's backward produces a gradient for.</summary>
internal sealed record GradientInput(string Name, Slice Value, Slice Gradient, bool IsParameter);

/// <summary>
/// One op set up on random inputs: <see cref="Loss"/> runs the forward pass and returns a scalar (Σ y·R for a
/// fixed random R, or the cross-entropy itself), <see cref="Backward"/> propagates that loss's gradient.
/// </summary>
internal sealed class OpCase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public required string Name { get; init; }
    public required OpHarness<T> Harness { get; init; }
    public required Func<double> Loss { get; init; }
    /// <summary>The forward result; null for the loss op, whose result is <see cref="Loss"/>.</summary>
    public required Slice? Output { get; init; }
    /// <summary>Runs after <see cref="Loss"/>; the flag is the op's <c>accumulate</c> for activation gradients.</summary>
    public required Action<bool> Backward { get; init; }
    public required GradientInput[] Inputs { get; init; }
}

internal static class OpCases
{
    public const string Embedding = "Embedding";
    public const string LinearWithBias = "LinearWithBias";
    public const string LinearWithoutBias = "LinearWithoutBias";
    public const string LinearWithoutInputGradient = "LinearWithoutInputGradient";
    public const string LayerNorm = "LayerNorm";
    public const string Gelu = "Gelu";
    /// <summary>LinearGelu forward; backward as the unfused GeluBackward then LinearBackward.</summary>
    public const string LinearGelu = "LinearGelu";
    /// <summary>Gelu then Linear forward; backward by GeluLinearBackward (the Linear's input gradient through the GeLU).</summary>
    public const string GeluLinear = "GeluLinear";
    public const string Add = "Add";
    /// <summary>AddLayerNorm forward (the loss reads the sum too); backward as the generator leaves it: LayerNormBackward, then the add's.</summary>
    public const string AddLayerNorm = "AddLayerNorm";
    public const string Attention = "Attention";
    public const string AttentionOneHead = "AttentionOneHead";
    /// <summary>A longer sequence (150): rows whose causal softmax spans more keys than a 64- or 128-wide tile.</summary>
    public const string AttentionLong = "AttentionLong";
    /// <summary>Block-sparse (bigbird, a random layout per head, blocks of 3 over 24 tokens): the dropped keys carry no gradient.</summary>
    public const string AttentionSparseBigBird = "AttentionSparseBigBird";
    /// <summary>Block-sparse (fixed, two global patterns over two heads, blocks of 2 over 22 tokens, a short last window).</summary>
    public const string AttentionSparseFixed = "AttentionSparseFixed";
    /// <summary>Block-sparse over several query groups of the CPU kernels (bslongformer, blocks of 16 over 96 tokens: groups of 4 and 2 blocks).</summary>
    public const string AttentionSparseGroups = "AttentionSparseGroups";
    public const string CrossEntropy = "CrossEntropy";
    /// <summary>Two of six targets the ignore index (−100): their rows carry no loss and no gradient.</summary>
    public const string CrossEntropyIgnored = "CrossEntropyIgnored";

    public static readonly global::Shardwise.Sparsity.SparseAttentionPattern LongformerPattern = new()
    {
        Mode = global::Shardwise.Sparsity.SparseAttentionMode.BSLongformer, Block = 16, NumSlidingWindowBlocks = 3, GlobalBlockIndices = [1],
    };

    public static readonly global::Shardwise.Sparsity.SparseAttentionPattern BigBirdPattern = new()
    {
        Mode = global::Shardwise.Sparsity.SparseAttentionMode.BigBird, Block = 3, NumRandomBlocks = 1, NumSlidingWindowBlocks = 1,
        NumGlobalBlocks = 1, DifferentLayoutPerHead = true, Seed = 5,
    };

    public static readonly global::Shardwise.Sparsity.SparseAttentionPattern FixedPattern = new()
    {
        Block = 2, NumLocalBlocks = 4, NumGlobalBlocks = 1, DifferentLayoutPerHead = true, NumDifferentGlobalPatterns = 2,
    };

    public static OpCase<T> Create<T>(string name) where T : unmanaged, IFloatingPointIeee754<T> => name switch
    {
        Embedding => CreateEmbedding<T>(),
        LinearWithBias => CreateLinear<T>(name, bias: true, inputGradient: true),
        LinearWithoutBias => CreateLinear<T>(name, bias: false, inputGradient: true),
        LinearWithoutInputGradient => CreateLinear<T>(name, bias: true, inputGradient: false),
        LayerNorm => CreateLayerNorm<T>(),
        Gelu => CreateGelu<T>(),
        LinearGelu => CreateLinearGelu<T>(),
        GeluLinear => CreateGeluLinear<T>(),
        Add => CreateAdd<T>(),
        AddLayerNorm => CreateAddLayerNorm<T>(),
        Attention => CreateAttention<T>(name, batch: 2, sequence: 5, heads: 2, dim: 8),
        AttentionOneHead => CreateAttention<T>(name, batch: 1, sequence: 7, heads: 1, dim: 6),
        AttentionLong => CreateAttention<T>(name, batch: 1, sequence: 150, heads: 2, dim: 8),
        AttentionSparseBigBird => CreateAttention<T>(name, batch: 2, sequence: 24, heads: 2, dim: 8, BigBirdPattern),
        AttentionSparseFixed => CreateAttention<T>(name, batch: 1, sequence: 22, heads: 2, dim: 4, FixedPattern),
        AttentionSparseGroups => CreateAttention<T>(name, batch: 1, sequence: 96, heads: 2, dim: 4, LongformerPattern),
        CrossEntropy => CreateCrossEntropy<T>(name, ignored: []),
        CrossEntropyIgnored => CreateCrossEntropy<T>(name, ignored: [1, 4]),
        _ => throw new ArgumentException($"No op case named {name}."),
    };

    private static OpCase<T> CreateEmbedding<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int vocabulary = 7, dim = 5, rows = 9;
        var h = new OpHarness<T>();
        int[] ids = TestData.Ids(11, rows, vocabulary);
        ids[1] = ids[0]; // a repeated token must add both rows' gradients
        IndexSlice idSlice = h.Indices(ids);
        Slice table = h.Parameter(TestData.Uniform(12, vocabulary * dim));
        Slice output = h.Activation(rows * dim), dOutput = h.Activation(rows * dim);
        double[] r = TestData.Uniform(13, rows * dim);
        return new OpCase<T>
        {
            Name = Embedding,
            Harness = h,
            Output = output,
            Loss = () =>
            {
                h.Ops.Embedding(idSlice, table, output, rows, dim);
                return h.Dot(output, r);
            },
            Backward = _ =>
            {
                h.Write(dOutput, r);
                h.Ops.EmbeddingBackward(idSlice, dOutput, OpHarness<T>.GradientOf(table), rows, dim);
            },
            Inputs = [new("table", table, OpHarness<T>.GradientOf(table), true)],
        };
    }

    private static OpCase<T> CreateLinear<T>(string name, bool bias, bool inputGradient)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 7, inDim = 5, outDim = 3;
        var h = new OpHarness<T>();
        Slice x = h.Activation(TestData.Uniform(21, rows * inDim));
        Slice weight = h.Parameter(TestData.Uniform(22, outDim * inDim));
        Slice? biasSlice = bias ? h.Parameter(TestData.Uniform(23, outDim)) : null;
        Slice y = h.Activation(rows * outDim), dy = h.Activation(rows * outDim), dx = h.Activation(rows * inDim);
        double[] r = TestData.Uniform(24, rows * outDim);
        Slice? dBias = biasSlice is { } b ? OpHarness<T>.GradientOf(b) : null;

        var inputs = new System.Collections.Generic.List<GradientInput>
        {
            new("weight", weight, OpHarness<T>.GradientOf(weight), true),
        };
        if (biasSlice is { } presentBias) inputs.Add(new("bias", presentBias, OpHarness<T>.GradientOf(presentBias), true));
        if (inputGradient) inputs.Add(new("x", x, dx, false));

        return new OpCase<T>
        {
            Name = name,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.Linear(x, weight, biasSlice, y, rows, inDim, outDim);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.LinearBackward(x, weight, dy, inputGradient ? dx : null, OpHarness<T>.GradientOf(weight), dBias,
                    rows, inDim, outDim, accumulate);
            },
            Inputs = [.. inputs],
        };
    }

    private static OpCase<T> CreateLayerNorm<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 6, dim = 7;
        var h = new OpHarness<T>();
        Slice x = h.Activation(TestData.Uniform(31, rows * dim, scale: 2));
        Slice gamma = h.Parameter(TestData.Uniform(32, dim)), beta = h.Parameter(TestData.Uniform(33, dim));
        Slice y = h.Activation(rows * dim), mean = h.Activation(rows), rstd = h.Activation(rows);
        Slice dy = h.Activation(rows * dim), dx = h.Activation(rows * dim);
        double[] r = TestData.Uniform(34, rows * dim);
        return new OpCase<T>
        {
            Name = LayerNorm,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.LayerNorm(x, gamma, beta, y, mean, rstd, rows, dim);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, OpHarness<T>.GradientOf(gamma),
                    OpHarness<T>.GradientOf(beta), rows, dim, accumulate);
            },
            Inputs =
            [
                new("x", x, dx, false),
                new("gamma", gamma, OpHarness<T>.GradientOf(gamma), true),
                new("beta", beta, OpHarness<T>.GradientOf(beta), true),
            ],
        };
    }

    private static OpCase<T> CreateGelu<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int count = 37;
        var h = new OpHarness<T>();
        Slice x = h.Activation(TestData.Uniform(41, count, scale: 3));
        Slice y = h.Activation(count), dy = h.Activation(count), dx = h.Activation(count);
        double[] r = TestData.Uniform(42, count);
        return new OpCase<T>
        {
            Name = Gelu,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.Gelu(x, y, count);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.GeluBackward(x, dy, dx, count, accumulate);
            },
            Inputs = [new("x", x, dx, false)],
        };
    }

    private static OpCase<T> CreateLinearGelu<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 7, inDim = 5, outDim = 6;
        var h = new OpHarness<T>();
        Slice x = h.Activation(TestData.Uniform(51, rows * inDim, scale: 2));
        Slice weight = h.Parameter(TestData.Uniform(52, outDim * inDim)), bias = h.Parameter(TestData.Uniform(53, outDim));
        Slice pre = h.Activation(rows * outDim), y = h.Activation(rows * outDim);
        Slice dy = h.Activation(rows * outDim), dPre = h.Activation(rows * outDim), dx = h.Activation(rows * inDim);
        double[] r = TestData.Uniform(54, rows * outDim);
        return new OpCase<T>
        {
            Name = LinearGelu,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.LinearGelu(x, weight, bias, pre, y, rows, inDim, outDim);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.GeluBackward(pre, dy, dPre, (long)rows * outDim, accumulate: false);
                h.Ops.LinearBackward(x, weight, dPre, dx, OpHarness<T>.GradientOf(weight), OpHarness<T>.GradientOf(bias),
                    rows, inDim, outDim, accumulate);
            },
            Inputs =
            [
                new("x", x, dx, false),
                new("weight", weight, OpHarness<T>.GradientOf(weight), true),
                new("bias", bias, OpHarness<T>.GradientOf(bias), true),
            ],
        };
    }

    private static OpCase<T> CreateGeluLinear<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 7, inDim = 6, outDim = 4;
        var h = new OpHarness<T>();
        Slice pre = h.Activation(TestData.Uniform(61, rows * inDim, scale: 3));
        Slice weight = h.Parameter(TestData.Uniform(62, outDim * inDim)), bias = h.Parameter(TestData.Uniform(63, outDim));
        Slice x = h.Activation(rows * inDim), y = h.Activation(rows * outDim);
        Slice dy = h.Activation(rows * outDim), dPre = h.Activation(rows * inDim);
        double[] r = TestData.Uniform(64, rows * outDim);
        return new OpCase<T>
        {
            Name = GeluLinear,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.Gelu(pre, x, (long)rows * inDim);
                h.Ops.Linear(x, weight, bias, y, rows, inDim, outDim);
                return h.Dot(y, r);
            },
            // GeluLinearBackward always overwrites dPre (the generator fuses only first gradients), so no accumulate.
            Backward = _ =>
            {
                h.Write(dy, r);
                h.Ops.GeluLinearBackward(pre, x, weight, dy, dPre, OpHarness<T>.GradientOf(weight), OpHarness<T>.GradientOf(bias),
                    rows, inDim, outDim);
            },
            Inputs =
            [
                new("pre", pre, dPre, false),
                new("weight", weight, OpHarness<T>.GradientOf(weight), true),
                new("bias", bias, OpHarness<T>.GradientOf(bias), true),
            ],
        };
    }

    private static OpCase<T> CreateAdd<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int count = 13;
        var h = new OpHarness<T>();
        Slice a = h.Activation(TestData.Uniform(51, count)), b = h.Activation(TestData.Uniform(52, count));
        Slice y = h.Activation(count), dy = h.Activation(count);
        Slice da = h.Activation(count), db = h.Activation(count);
        double[] r = TestData.Uniform(53, count);
        return new OpCase<T>
        {
            Name = Add,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.Add(a, b, y, count);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.AddBackward(dy, da, count, accumulate);
                h.Ops.AddBackward(dy, db, count, accumulate);
            },
            Inputs = [new("a", a, da, false), new("b", b, db, false)],
        };
    }

    private static OpCase<T> CreateAddLayerNorm<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 5, dim = 7;
        const long count = rows * dim;
        var h = new OpHarness<T>();
        Slice a = h.Activation(TestData.Uniform(71, (int)count, scale: 2)), b = h.Activation(TestData.Uniform(72, (int)count));
        Slice gamma = h.Parameter(TestData.Uniform(73, dim)), beta = h.Parameter(TestData.Uniform(74, dim));
        Slice sum = h.Activation(count), y = h.Activation(count), mean = h.Activation(rows), rstd = h.Activation(rows);
        Slice dy = h.Activation(count), dSumRead = h.Activation(count), dSum = h.Activation(count);
        Slice da = h.Activation(count), db = h.Activation(count);
        double[] r = TestData.Uniform(75, (int)count), rSum = TestData.Uniform(76, (int)count);
        return new OpCase<T>
        {
            Name = AddLayerNorm,
            Harness = h,
            Output = y,
            // The sum is the residual stream: later ops read it besides the norm, so the loss does too.
            Loss = () =>
            {
                h.Ops.AddLayerNorm(a, b, sum, gamma, beta, y, mean, rstd, rows, dim);
                return h.Dot(y, r) + h.Dot(sum, rSum);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Write(dSumRead, rSum);
                h.Ops.LayerNormBackward(sum, gamma, mean, rstd, dy, dSum, OpHarness<T>.GradientOf(gamma),
                    OpHarness<T>.GradientOf(beta), rows, dim, accumulate: false);
                h.Ops.AddBackward(dSumRead, dSum, count, accumulate: true);
                h.Ops.AddBackward(dSum, da, count, accumulate);
                h.Ops.AddBackward(dSum, db, count, accumulate);
            },
            Inputs =
            [
                new("a", a, da, false),
                new("b", b, db, false),
                new("gamma", gamma, OpHarness<T>.GradientOf(gamma), true),
                new("beta", beta, OpHarness<T>.GradientOf(beta), true),
            ],
        };
    }

    private static OpCase<T> CreateAttention<T>(string name, int batch, int sequence, int heads, int dim,
        global::Shardwise.Sparsity.SparseAttentionPattern? sparsity = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var h = new OpHarness<T>();
        h.Ops.AttentionSparsity = sparsity;
        int tokens = batch * sequence;
        Slice qkv = h.Activation(TestData.Uniform(61, tokens * 3 * dim, scale: 1.5));
        Slice y = h.Activation(tokens * dim), dy = h.Activation(tokens * dim);
        Slice logSumExp = h.Activation((long)batch * heads * sequence);
        Slice dqkv = h.Activation(tokens * 3 * dim);
        double[] r = TestData.Uniform(62, tokens * dim);
        return new OpCase<T>
        {
            Name = name,
            Harness = h,
            Output = y,
            Loss = () =>
            {
                h.Ops.Attention(qkv, y, logSumExp, batch, sequence, heads, dim);
                return h.Dot(y, r);
            },
            Backward = accumulate =>
            {
                h.Write(dy, r);
                h.Ops.AttentionBackward(qkv, y, logSumExp, dy, dqkv, batch, sequence, heads, dim, accumulate);
            },
            Inputs = [new("qkv", qkv, dqkv, false)],
        };
    }

    private static OpCase<T> CreateCrossEntropy<T>(string name, int[] ignored) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int rows = 6, vocabulary = 11;
        var h = new OpHarness<T>();
        Slice logits = h.Activation(TestData.Uniform(71, rows * vocabulary, scale: 3));
        int[] targetIds = TestData.Ids(72, rows, vocabulary);
        foreach (int row in ignored) targetIds[row] = global::Shardwise.Cpu.CrossEntropyKernels.IgnoreIndex;
        IndexSlice targets = h.Indices(targetIds);
        Slice dLogits = h.Activation(rows * vocabulary);
        return new OpCase<T>
        {
            Name = name,
            Harness = h,
            Output = null,
            Loss = () => double.CreateChecked(h.Ops.CrossEntropy(logits, targets, rows, vocabulary)),
            Backward = accumulate =>
                h.Ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, T.One, accumulate),
            Inputs = [new("logits", logits, dLogits, false)],
        };
    }
}
