namespace Shardwise.Training.Config;

/// <summary>
/// The "tensor_parallel" section (DeepSpeed's AutoTP training: <c>autotp_size</c>, the tensor-parallel degree that also
/// divides the data-parallel size). Shardwise splits a model at build time (<c>[Model(Tensor = N)]</c> with
/// <c>[Shard]</c> layers), so the degree here is a claim about that plan, checked against it before training
/// (<see cref="Cli.TensorParallelCheck"/>): equal, the run goes ahead; different, it stops naming both.
/// </summary>
internal static class TensorParallelConfig
{
    /// <summary>The degree asked for: autotp_size (or tp_size, its older spelling); 1 when the section is absent.</summary>
    public static int Read(JsonSection root)
    {
        var section = root.Section("tensor_parallel");
        int? autotp = section.Int32("autotp_size", AutoRule.NotAllowed, min: 1);
        int? legacy = section.Int32("tp_size", AutoRule.NotAllowed, min: 1);
        if (autotp is { } a && legacy is { } l && a != l)
            section.Error("tp_size", $"{l} disagrees with autotp_size ({a}): set one of them");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return autotp ?? legacy ?? 1;
    }
}
