namespace Shardwise.Generator;

/// <summary>Names of the incremental pipeline steps, used by tests that check caching.</summary>
internal static class TrackingNames
{
    public const string Parse = nameof(Parse);
    public const string ValidModels = nameof(ValidModels);
    public const string Plan = nameof(Plan);
    public const string EntryPoint = nameof(EntryPoint);
}
