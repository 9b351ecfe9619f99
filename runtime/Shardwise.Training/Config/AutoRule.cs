namespace Shardwise.Training.Config;

/// <summary>How a key treats the Hugging Face placeholder "auto".</summary>
internal enum AutoKind
{
    /// <summary>"auto" is meaningless for this key: an error.</summary>
    NotAllowed,

    /// <summary>"auto" means "let the batch rule infer it": same as leaving the key out.</summary>
    TreatAsAbsent,

    /// <summary>The caller must supply the value (a <see cref="ConfigOverrides"/> member); otherwise an error.</summary>
    FromCaller,

    /// <summary>Use the caller's value if any; otherwise the fallback, with a warning (performance-only keys).</summary>
    FromCallerOrFallback,
}

internal sealed record AutoRule(AutoKind Kind, double? Value = null, string? Hint = null, double? Fallback = null)
{
    public static AutoRule NotAllowed { get; } = new(AutoKind.NotAllowed);

    public static AutoRule TreatAsAbsent { get; } = new(AutoKind.TreatAsAbsent);

    /// <param name="hint">What to do, e.g. "pass --lr".</param>
    public static AutoRule FromCaller(double? value, string hint) => new(AutoKind.FromCaller, value, hint);

    /// <summary>"auto" has a fixed meaning (e.g. Hugging Face's warmup_min_lr = 0).</summary>
    public static AutoRule ResolvedAs(double value) => new(AutoKind.FromCaller, value, string.Empty);

    public static AutoRule FromCallerOrFallback(double? value, double fallback, string hint) =>
        new(AutoKind.FromCallerOrFallback, value, hint, fallback);
}
