using System;
using Shardwise.Data;

namespace Shardwise.Training.Cli;

/// <summary>
/// The corpus a run trains on: a text/JSONL file through a tokenizer, or (with no --data) the built-in addition
/// task, which needs nothing downloaded and reports answer accuracy.
/// </summary>
public sealed class TrainingData
{
    /// <summary>Samples in the built-in addition corpus (about 0.6M tokens).</summary>
    public const int AdditionSamples = 50_000;

    private TrainingData(ITokenizer tokenizer, TokenDataset dataset, AdditionTask? addition, string description)
    {
        Tokenizer = tokenizer;
        Dataset = dataset;
        Addition = addition;
        Description = description;
    }

    public ITokenizer Tokenizer { get; }

    public TokenDataset Dataset { get; }

    /// <summary>Set when training on the synthetic addition task (accuracy is reported).</summary>
    public AdditionTask? Addition { get; }

    public string Description { get; }

    /// <param name="savedTokenizer">A tokenizer saved with a checkpoint; when given it is reused rather than rebuilt.</param>
    /// <param name="packing">Prompt/completion data only: packed windows instead of one example per row.</param>
    /// <param name="sequenceLength">The model's context, to report the examples a row cannot hold.</param>
    public static TrainingData Load(string? path, string tokenizerKind, int modelVocabulary, ulong seed, ITokenizer? savedTokenizer = null,
        bool packing = false, int? sequenceLength = null)
    {
        TrainingData data;
        if (path is null)
        {
            var task = new AdditionTask();
            data = new TrainingData(task.Tokenizer, task.CreateDataset(AdditionSamples, seed), task,
                $"built-in addition task ({AdditionSamples:N0} samples, up to {task.MaxDigits}-digit operands, answers reversed)");
        }
        else
        {
            if (!System.IO.File.Exists(path)) throw new CliException($"--data {path}: no such file");
            var source = TextSource.Open(path);
            ITokenizer tokenizer = savedTokenizer ?? tokenizerKind switch
            {
                CharTokenizer.KindName => CharTokenizer.Build(source),
                Gpt2Tokenizer.KindName => new Gpt2Tokenizer(),
                _ => throw new CliException($"--tokenizer {tokenizerKind}: use '{CharTokenizer.KindName}' or '{Gpt2Tokenizer.KindName}'"),
            };
            var dataset = TokenDataset.Build(source, tokenizer, packExamples: packing);
            string examples = !dataset.HasUntrainedTokens ? ""
                : $"; prompt/completion pairs: the loss covers the {dataset.TrainableCount:N0} completion tokens and their end markers, never the prompts; " +
                  (dataset.ExampleRows
                      ? "one example per row, padded after its end" + (sequenceLength is { } context && dataset.ExamplesLongerThan(context) is > 0 and var cut
                          ? $" ({cut:N0} examples longer than the context of {context} are cut)"
                          : "")
                      : "packed (--packing): windows at any offset of the examples back to back");
            data = new TrainingData(tokenizer, dataset, null,
                $"{path} ({dataset.Count:N0} tokens, {tokenizer.Kind} tokenizer with {tokenizer.VocabularySize:N0} symbols{examples})");
        }

        if (data.Tokenizer.VocabularySize > modelVocabulary)
        {
            throw new CliException($"the data needs a vocabulary of {data.Tokenizer.VocabularySize} but the model's is {modelVocabulary}: " +
                                   "enlarge the model's vocabulary or choose another tokenizer");
        }
        return data;
    }
}
