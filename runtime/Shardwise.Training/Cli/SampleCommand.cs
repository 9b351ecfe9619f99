using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary><c>sample</c>: generates text from the latest checkpoint with temperature and top-k sampling.</summary>
public static class SampleCommand
{
    public static int Run<TModel>(CliArguments args, TextWriter log) where TModel : ILanguageModelDefinition
    {
        string directory = args.String("resume") ?? throw new CliException("sample needs --resume DIR (a training output directory)");
        string prompt = args.String("prompt") ?? "\n";
        int count = (int)(args.Long("tokens") ?? 300);
        double temperature = args.Double("temperature") ?? 0.8;
        int topK = (int)(args.Long("top-k") ?? 40);
        var random = Xoshiro256StarStar.FromSeed((ulong)(args.Long("seed") ?? 1));
        var (_, device) = RunSettings.ChooseDevice(args.String("device"));
        string? compressedConfig = args.String("compressed");
        args.RejectUnknown();
        if (temperature <= 0) throw new CliException("--temperature must be positive");

        var checkpoint = TrainingCheckpoint.FindLatest(directory) ?? throw new CliException($"--resume {directory}: no committed checkpoint there");
        var tokenizer = TrainingCheckpoint.LoadTokenizer(checkpoint);
        // stdout is the generated text alone (for pipes); the device line goes to stderr.
        Console.Error.WriteLine(device.Description);
        // The attention the weights were trained with (dense, or the run's sparse_attention pattern).
        var ops = Backends.Create(device.Kind);
        ops.AttentionSparsity = TrainingCheckpoint.ReadSparseAttention(checkpoint);
        var program = TModel.Compile(ops, batch: 1);
        // --compressed: the weights as a compression_training run's forward used them, not its unquantized masters.
        if (compressedConfig is not null) CompressedWeights.Read(checkpoint, program.Layout, compressedConfig, Console.Error).CopyTo(program.Parameters);
        else TrainingCheckpoint.LoadWeights(checkpoint, program.Layout, program.Parameters);

        var tokens = new List<int>(tokenizer.Encode(prompt));
        if (tokens.Count == 0) throw new CliException("--prompt encodes to no tokens");
        int context = program.SequenceLength, vocabulary = program.VocabularySize;
        var window = new int[context];
        var targets = new int[context];
        var logits = new float[context * vocabulary];
        var probabilities = new double[vocabulary];

        for (int i = 0; i < count; i++)
        {
            int start = Math.Max(0, tokens.Count - context);
            int length = tokens.Count - start;
            Array.Clear(window);
            tokens.CopyTo(start, window, 0, length);   // causal attention: positions after 'length' do not affect it
            program.Forward(window, targets);
            program.Read(program.Logits, logits);
            tokens.Add(Draw(logits.AsSpan((length - 1) * vocabulary, vocabulary), tokenizer.VocabularySize, temperature, topK, probabilities, random));
        }

        log.WriteLine(tokenizer.Decode(tokens.ToArray()));
        return 0;
    }

    /// <summary>Samples from softmax(logits / T) restricted to the k most likely ids the tokenizer knows.</summary>
    private static int Draw(ReadOnlySpan<float> logits, int known, double temperature, int topK, double[] probabilities, Xoshiro256StarStar random)
    {
        int k = topK <= 0 ? known : Math.Min(topK, known);
        var kth = new List<float>(logits.Slice(0, known).ToArray());
        kth.Sort();
        float threshold = kth[known - k];
        double max = double.NegativeInfinity;
        for (int v = 0; v < known; v++) max = Math.Max(max, logits[v]);
        double total = 0;
        for (int v = 0; v < known; v++)
        {
            probabilities[v] = logits[v] >= threshold ? Math.Exp((logits[v] - max) / temperature) : 0;
            total += probabilities[v];
        }
        double pick = random.NextDouble() * total;
        for (int v = 0; v < known; v++)
        {
            pick -= probabilities[v];
            if (pick <= 0 && probabilities[v] > 0) return v;
        }
        return (int)Array.FindLastIndex(probabilities, 0, known, p => p > 0);
    }
}
