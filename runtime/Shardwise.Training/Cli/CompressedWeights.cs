using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>consolidate --compressed CONFIG</c> (DeepSpeed's redundancy_clean, without shrinking layers): the weights the
/// checkpointed run's next forward uses: its masters quantized at the bits its schedule had reached and pruned with the
/// masks the checkpoint holds (l1) or the top units of its trained scores (topk). A checkpoint trained without the config's pruning gets masks taken from its weights
/// (post-training compression, as <c>eval --config</c> applies it). A checkpoint keeps unquantized masters; these are what the model was trained to run with.
/// The whole layout is held at once (the compression works per module), unlike the plain export's parameter at a time.
/// </summary>
internal static class CompressedWeights
{
    public static float[] Read(string checkpoint, ParameterLayout layout, string configPath, TextWriter log)
    {
        var config = DeepSpeedConfig.Load(configPath).Config;
        if (config.CompressionTraining is not { Enabled: true } compression)
            throw new CliException($"--compressed {configPath}: the config has no compression_training technique enabled");
        var plan = CompressionPlan.For(layout, compression);
        if (plan.Problems.Count > 0) throw new ConfigException(configPath, plan.Problems.Select(p => p.ToString()).ToList());

        long applied = AppliedUpdates(checkpoint);
        var weights = new WeightCompression(compression, plan);
        CompressionMaskCheckpoint.Restore(checkpoint, weights, layout, log);
        CompressionScoreCheckpoint.Restore(checkpoint, weights.Learned, log); // topk: the masks follow from the trained scores
        var missing = weights.MissingMasks(applied).ToList();
        if (missing.Count > 0)
            log.WriteLine($"note: the checkpoint holds no masks for {missing.Count} pruned module(s) (first: {missing[0].Kind.ToString().ToLowerInvariant()} of {missing[0].Module}): " +
                          "it was trained without this pruning, so they are taken from its weights now (post-training pruning)");

        var flat = new float[layout.TotalElements];
        using (var state = CheckpointStateReader.Open(checkpoint, layout, weightsOnly: true))
            state.Read(CheckpointStateTensor.Master, 0, flat);
        weights.Apply(flat, applied, StorageType.Float32);
        foreach (var line in weights.Describe()) log.WriteLine(line);
        log.WriteLine($"compressed as after {applied} applied updates" +
                      (weights.Schedule.IsActive(applied) ? $": {string.Join(", ", compression.WeightQuantization.Groups.Select((g, i) => $"{g.Modules.Name} at {weights.Schedule.Bits(i)} bits"))}" : ""));
        return flat;
    }

    /// <summary>Updates the checkpointed run applied (its steps less the skipped ones): what its compression schedule counts.</summary>
    private static long AppliedUpdates(string checkpoint)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, TrainingCheckpoint.StateFile)));
        return json.RootElement.GetProperty("global_step").GetInt64() - json.RootElement.GetProperty("skipped_steps").GetInt64();
    }
}
