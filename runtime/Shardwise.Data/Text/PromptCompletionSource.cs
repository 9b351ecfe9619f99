using System.Collections.Generic;

namespace Shardwise.Data;

/// <summary>
/// Supervised fine-tuning data as JSON Lines of <c>{"prompt": ..., "completion": ...}</c> (the prompt-completion
/// format of Hugging Face TRL and the OpenAI fine-tuning files). The model is trained to produce the completion after
/// the prompt: <see cref="TokenDataset.Build"/> marks only the completion's tokens, and the separator that ends it,
/// as targets, so the prompt is context and never a loss term.
/// </summary>
public sealed class PromptCompletionSource(string path) : TextSource(path)
{
    public const string PromptField = "prompt";

    public const string CompletionField = "completion";

    /// <summary>Ends every completion (a blank line, as between JSONL documents): trained, so the model learns to stop.</summary>
    public override string Separator => JsonlTextSource.DefaultSeparator;

    /// <summary>Each example's prompt and completion joined: the text a character vocabulary must cover.</summary>
    public override IEnumerable<string> ReadDocuments()
    {
        foreach (var (prompt, completion) in ReadExamples()) yield return prompt + completion;
    }

    /// <summary>The examples in file order; a record without both string fields stops the read at its line.</summary>
    public IEnumerable<(string Prompt, string Completion)> ReadExamples()
    {
        foreach (var (record, line) in JsonlRecords.Read(Path))
            yield return (JsonlRecords.StringField(record, PromptField, Path, line), JsonlRecords.StringField(record, CompletionField, Path, line));
    }

    /// <summary>Whether a JSONL record has prompt and completion fields (and so is fine-tuning data).</summary>
    internal static bool Recognises(System.Text.Json.JsonElement record) =>
        record.TryGetProperty(PromptField, out _) && record.TryGetProperty(CompletionField, out _);
}
