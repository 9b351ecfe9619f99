namespace Shardwise.Training.Config;

public sealed partial record CompressionTrainingConfig
{
    /// <summary>The section; null when absent or every technique is off.</summary>
    internal static CompressionTrainingConfig? Read(JsonSection root)
    {
        // Placeholder until the parser lands: the policy still refuses the section.
        return null;
    }
}
