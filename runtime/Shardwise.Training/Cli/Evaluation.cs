using System;
using System.Collections.Generic;
using Shardwise.Data;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>Validation loss (and addition accuracy) over a fixed set of held-out batches.</summary>
public sealed class Evaluation
{
    private readonly IReadOnlyList<TokenBatch> _batches;
    private readonly AdditionTask? _addition;
    private readonly float[] _logits;
    private readonly int[] _predictions;

    public Evaluation(CompiledLanguageModel<float> program, TrainingData data, int batches, ulong seed)
    {
        _batches = data.Dataset.EvaluationBatches(DataSplit.Validation, program.Batch, program.SequenceLength, batches, seed);
        _addition = data.Addition;
        _logits = new float[program.Batch * program.SequenceLength * program.VocabularySize];
        _predictions = new int[program.Batch * program.SequenceLength];
    }

    public readonly record struct Result(double Loss, double? Accuracy);

    /// <summary>Forward passes only; call at an accumulation boundary (it reuses the training program's buffers).</summary>
    public Result Run(CompiledLanguageModel<float> program)
    {
        double loss = 0;
        var accuracy = new AnswerAccuracy(0, 0, 0, 0);
        foreach (var batch in _batches)
        {
            loss += program.Forward(batch.Inputs, batch.Targets);
            if (_addition is null) continue;
            program.Read(program.Logits, _logits);
            ArgMax(_logits, program.VocabularySize, _predictions);
            accuracy += AdditionTask.Score(batch.Inputs, batch.Targets, _predictions, program.SequenceLength);
        }
        return new Result(loss / _batches.Count, _addition is null ? null : accuracy.DigitAccuracy);
    }

    private static void ArgMax(ReadOnlySpan<float> logits, int vocabulary, Span<int> predictions)
    {
        for (int row = 0; row < predictions.Length; row++)
        {
            var scores = logits.Slice(row * vocabulary, vocabulary);
            int best = 0;
            for (int v = 1; v < vocabulary; v++)
            {
                if (scores[v] > scores[best]) best = v;
            }
            predictions[row] = best;
        }
    }
}
