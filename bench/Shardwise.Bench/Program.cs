using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Shardwise.Cpu;
using Shardwise.Examples;
using Shardwise.Generator;

// Benchmarks of the model compiler core, printed as a small table:
//   1. forward+backward tokens/s of the generated TinyGpt program on the CPU (4 blocks, width 128, 4 heads,
//      context 64, batch 12: nanoGPT's shakespeare-char configuration);
//   2. the generator's time (parse, trace, plan, emit) on a 48-block model;
//   3. the loss at GPT-2's vocabulary on the CPU: CrossEntropy then CrossEntropyBackward (Forward then Backward)
//      against CrossEntropyWithGradient (ForwardBackward's one op), measured in the same run;
//   4. GeLU forward and backward on one core (GeluKernels, TinyGpt's fc1 activation: 768 rows × 512), ns per element;
//   5. attention forward+backward at GPT-2's shape (1 × 1024 tokens, 12 heads of 64) on the CPU: dense causal against
//      block-sparse (DeepSpeed's fixed pattern, blocks of 16, unidirectional; and the GPU bench's blocks of 64),
//      measured in the same run.
//   6. (--offload only) the optimizer step over GPT-2 124M's parameters: in host memory (offload_optimizer "cpu")
//      against the NVMe swap ("nvme", OffloadBench.cs), measured in the same run.
//   7. (--compression only) the passes of 1-bit compression and of ZeRO++'s block quantizer on one thread, vectors against
//      scalar (CompressionBench.cs).
//   8. (--one-bit only) the host step of each 1-bit optimizer past its freeze against AdamW's (OneBitStepBench.cs).
// Usage: dotnet run -c Release --project bench/Shardwise.Bench [-- --steps N | --attention-only | --offload [--nvme-path DIR] | --compression | --one-bit]
int steps = args.Length >= 2 && args[0] == "--steps" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30;
var fixed16 = new Shardwise.Sparsity.SparseAttentionPattern { Block = 16, Attention = Shardwise.Sparsity.SparseAttentionDirection.Unidirectional };
var fixed64 = fixed16 with { Block = 64 };
string attentionRow;
if (args.Contains("--offload"))
{
    int at = Array.IndexOf(args, "--nvme-path");
    OffloadBench.Run(at >= 0 && at + 1 < args.Length ? args[at + 1] : Path.GetTempPath());
    return;
}
if (args.Contains("--one-bit"))
{
    OneBitStepBench.Run();
    return;
}
if (args.Contains("--compression"))
{
    CompressionBench.Run();
    return;
}
if (args.Contains("--attention-only"))
{
    Console.WriteLine(AttentionRow());
    return;
}

var (msPerStep, tokensPerSecond) = BenchTinyGpt(batch: 12, steps);
var (generatorMs, generatedLines) = BenchGenerator(blocks: 48, runs: 5);
var (pairMs, fusedMs) = BenchCrossEntropy(rows: 256, vocabulary: 50304, runs: 20);
var (geluForwardNs, geluBackwardNs) = BenchGelu(elements: 768 * 512, runs: 20);
attentionRow = AttentionRow();

Console.WriteLine();
Console.WriteLine("| benchmark | result |");
Console.WriteLine("|---|---|");
Console.WriteLine($"| TinyGpt fwd+bwd, CPU fp32, batch 12 × 64 tokens | {msPerStep:F1} ms/step, {tokensPerSecond:N0} tokens/s |");
Console.WriteLine($"| generator, 48-block GPT (parse+trace+plan+emit) | {generatorMs:F0} ms, {generatedLines:N0} lines emitted |");
Console.WriteLine($"| cross-entropy, 256 rows × 50,304 logits, CPU fp32: pair / one op | {pairMs:F2} ms / {fusedMs:F2} ms ({pairMs / fusedMs:F2}× faster) |");
Console.WriteLine($"| GeLU on one core, 768 × 512 fp32: forward / backward | {geluForwardNs:F2} / {geluBackwardNs:F2} ns per element |");
Console.WriteLine(attentionRow);
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");

static (double MsPerStep, double TokensPerSecond) BenchTinyGpt(int batch, int steps)
{
    var model = new TinyGpt();
    model.InitializeParameters(seed: 1);
    var program = new TinyGpt.Compiled<float>(new CpuOps<float>(), batch);
    model.CopyParametersTo<float>(program.Parameters);
    var random = new Random(0);
    var ids = Enumerable.Range(0, batch * TinyGpt.Context).Select(_ => random.Next(TinyGpt.Vocabulary)).ToArray();
    var targets = Enumerable.Range(0, batch * TinyGpt.Context).Select(_ => random.Next(TinyGpt.Vocabulary)).ToArray();

    for (int i = 0; i < 5; i++) Step();   // warm-up: JIT, BLAS threads, caches
    var clock = Stopwatch.StartNew();
    for (int i = 0; i < steps; i++) Step();
    double ms = clock.Elapsed.TotalMilliseconds / steps;
    return (ms, batch * TinyGpt.Context / (ms / 1000));

    void Step()
    {
        program.ZeroGradients();
        program.Forward(ids, targets);
        program.Backward(1f);
    }
}

static (double PairMs, double FusedMs) BenchCrossEntropy(int rows, int vocabulary, int runs)
{
    var ops = new CpuOps<float>();
    long n = (long)rows * vocabulary;
    ops.Allocate(Shardwise.Ops.Arena.Activations, 2 * n);
    ops.AllocateIndices(rows);
    var random = new Random(2);
    var values = new float[n];
    for (long i = 0; i < n; i++) values[i] = (float)(random.NextDouble() * 12 - 6);
    var logits = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 0, n);
    var gradient = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, n, n);
    var targets = new Shardwise.Ops.IndexSlice(0, rows);
    ops.LoadIndices(Enumerable.Range(0, rows).Select(_ => random.Next(vocabulary)).ToArray(), targets);
    ops.Load(values, logits);

    double pair = BestMilliseconds(runs, () =>
    {
        ops.CrossEntropy(logits, targets, rows, vocabulary);
        ops.CrossEntropyBackward(logits, targets, gradient, rows, vocabulary, 1f, accumulate: false);
    });
    double fused = BestMilliseconds(runs, () => ops.CrossEntropyWithGradient(logits, targets, gradient, rows, vocabulary, 1f, accumulate: false));
    return (pair, fused);
}

static (double ForwardNs, double BackwardNs) BenchGelu(int elements, int runs)
{
    var random = new Random(3);
    var x = new float[elements];
    var dy = new float[elements];
    var y = new float[elements];
    for (int i = 0; i < elements; i++)
    {
        x[i] = (float)(random.NextDouble() * 8 - 4);
        dy[i] = (float)(random.NextDouble() * 2 - 1);
    }

    double NanosecondsPerElement(Action run) => BestMilliseconds(runs, run) * 1e6 / elements;
    return (NanosecondsPerElement(() => GeluKernels.Forward<float>(x, y)),
        NanosecondsPerElement(() => GeluKernels.Backward<float>(x, dy, y, accumulate: false)));
}

string AttentionRow()
{
    double dense = BenchAttention(null, runs: 5), sparse16 = BenchAttention(fixed16, runs: 5), sparse64 = BenchAttention(fixed64, runs: 5);
    return $"| attention fwd+bwd, 1 × 1024 tokens, 12 heads of 64, CPU fp32: dense / fixed blocks of 16 ({100 * fixed16.LayoutFor(12, 1024).CausalDensity:F0}% of tiles) / of 64 ({100 * fixed64.LayoutFor(12, 1024).CausalDensity:F0}%) | " +
           $"{dense:F1} / {sparse16:F1} ({dense / sparse16:F2}× faster) / {sparse64:F1} ms ({dense / sparse64:F2}×) |";
}

static double BenchAttention(Shardwise.Sparsity.SparseAttentionPattern? pattern, int runs)
{
    const int sequence = 1024, heads = 12, dim = 768;
    var ops = new CpuOps<float> { AttentionSparsity = pattern };
    long tokens = sequence;
    ops.Allocate(Shardwise.Ops.Arena.Activations, 8 * tokens * dim);
    var random = new Random(4);
    var values = new float[8 * tokens * dim];
    for (long i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
    ops.Load(values, new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 0, values.Length));
    var qkv = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 0, 3 * tokens * dim);
    var y = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 3 * tokens * dim, tokens * dim);
    var dy = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 4 * tokens * dim, tokens * dim);
    var dqkv = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Activations, 5 * tokens * dim, 3 * tokens * dim);
    ops.Allocate(Shardwise.Ops.Arena.Gradients, heads * tokens);
    var lse = new Shardwise.Ops.Slice(Shardwise.Ops.Arena.Gradients, 0, heads * tokens);
    return BestMilliseconds(runs, () =>
    {
        ops.Attention(qkv, y, lse, 1, sequence, heads, dim);
        ops.AttentionBackward(qkv, y, lse, dy, dqkv, 1, sequence, heads, dim, accumulate: false);
    });
}

// The fastest of `runs` timed calls, after a warm-up past tiered compilation (30 calls, then a background compile):
// the first calls of a vector loop run unoptimised code several times slower.
static double BestMilliseconds(int runs, Action run)
{
    var warmup = Stopwatch.StartNew();
    for (int i = 0; i < 60 || warmup.ElapsedMilliseconds < 500; i++) run();
    double best = double.MaxValue;
    for (int i = 0; i < runs; i++)
    {
        var clock = Stopwatch.StartNew();
        run();
        best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
    }
    return best;
}

static (double Milliseconds, int Lines) BenchGenerator(int blocks, int runs)
{
    string source = File.ReadAllText(FindExample()).Replace("Depth = 4", $"Depth = {blocks}");
    var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
        .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal))
        .Append(typeof(Shardwise.ModelAttribute).Assembly.Location)
        .Select(p => MetadataReference.CreateFromFile(p)).ToArray();
    var compilation = CSharpCompilation.Create("Bench", new[] { CSharpSyntaxTree.ParseText(source) }, references,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));

    double best = double.MaxValue;
    int lines = 0;
    for (int i = 0; i < runs; i++)
    {
        // A fresh driver each run: the time of a full (non-incremental) generation.
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new ShardwiseGenerator());
        var clock = Stopwatch.StartNew();
        driver = driver.RunGenerators(compilation);
        best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
        lines = driver.GetRunResult().GeneratedTrees.Single().GetText().Lines.Count;
    }
    return (best, lines);
}

static string FindExample()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        var path = Path.Combine(dir.FullName, "examples/TinyGpt/TinyGpt.cs");
        if (File.Exists(path)) return path;
    }
    throw new FileNotFoundException("examples/TinyGpt/TinyGpt.cs not found above " + AppContext.BaseDirectory);
}
