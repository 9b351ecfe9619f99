using System.Linq;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Emit;

/// <summary>
/// Writes what a partitioned model adds: each stage's layout, activation plan and pools, the
/// <c>Partition</c> table the runtime places stages with (where each local parameter comes from, how it is split, which
/// are tied across stages), <c>CompileStage</c>, and one <c>Stage{s}&lt;T&gt;</c> program per stage.
/// </summary>
internal static class PartitionEmitter
{
    private const string Plans = "global::Shardwise.Plans";

    public static void Write(SourceWriter w, ProgramPlan model, PartitionPlan partition)
    {
        foreach (var stage in partition.Stages)
        {
            string prefix = ProgramEmitter.StageClass(stage.Stage.Index);
            w.Line();
            w.Line($"// Pipeline stage {Names.Int(stage.Stage.Index)}: {stage.Stage.Layers}");
            ModelEmitter.WriteLayout(w, stage.Program, prefix, "private static");
            w.Line();
            ModelEmitter.WriteActivationPlan(w, stage.Program, prefix, "private static");
            w.Line();
            ModelEmitter.WriteGradientPool(w, stage.Program, prefix, "private static");
        }

        w.Line();
        w.Line($"/// <summary>The static partition: {Names.Int(partition.Pipeline)} pipeline stage(s), each planned for one of {Names.Int(partition.Tensor)} tensor-parallel rank(s).</summary>");
        w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({Names.String(ModelEmitter.Tool)}, {Names.String(ModelEmitter.Version)})]");
        w.Line($"public static {Plans}.ModelPartition Partition {{ get; }} = new({Names.Int(partition.Pipeline)}, {Names.Int(partition.Tensor)}, new {Plans}.StagePlan[]");
        w.Line("{");
        w.Indent();
        foreach (var stage in partition.Stages) WriteStagePlan(w, stage, partition);
        w.Outdent();
        w.Line("});");

        w.Line();
        w.Line("/// <summary>Builds one pipeline stage's program for a micro-batch size.</summary>");
        w.Line("public static global::Shardwise.Plans.CompiledStage<T> CompileStage<T>(int stage, global::Shardwise.Ops.ITensorOps<T> ops, int batch)");
        w.Line("    where T : unmanaged, global::System.Numerics.IFloatingPointIeee754<T>");
        w.Line("    => stage switch");
        w.Line("    {");
        foreach (var stage in partition.Stages)
            w.Line($"        {Names.Int(stage.Stage.Index)} => new {ProgramEmitter.StageClass(stage.Stage.Index)}<T>(ops, batch),");
        w.Line($"        _ => throw new global::System.ArgumentOutOfRangeException(nameof(stage), stage, \"The model has {Names.Int(partition.Pipeline)} pipeline stage(s).\"),");
        w.Line("    };");

        foreach (var stage in partition.Stages)
        {
            w.Line();
            ProgramEmitter.WriteStage(w, model, stage);
        }
    }

    private static void WriteStagePlan(SourceWriter w, StageProgram stage, PartitionPlan partition)
    {
        string prefix = ProgramEmitter.StageClass(stage.Stage.Index);
        var graph = stage.Program.Graph;
        long received = stage.Stage.Received >= 0 ? graph.Values[stage.Stage.Received].ElementsPerSample : 0;
        long sent = stage.Stage.Sent >= 0 ? graph.Values[stage.Stage.Sent].ElementsPerSample : 0;
        bool differs = (stage.Stage.Received >= 0 && graph.Values[stage.Stage.Received].DiffersAcrossTensorRanks)
                       || (stage.Stage.Sent >= 0 && graph.Values[stage.Stage.Sent].DiffersAcrossTensorRanks);
        string close = differs ? ") { BoundaryDiffersAcrossTensorRanks = true }," : "),";
        w.Line($"new({Names.Int(stage.Stage.Index)}, {Names.Int(partition.Pipeline)}, {Names.Int(partition.Tensor)}, {Names.String(stage.Stage.Layers)},");
        w.Indent();
        w.Line($"{prefix}ParameterLayout, {prefix}ActivationPlan, {prefix}GradientPool, {prefix}ParameterPool,");
        w.Line($"new {Plans}.StageParameter[]");
        w.Line("{");
        for (int slot = 0; slot < stage.Program.Layout.Slots.Count; slot++)
        {
            var split = stage.Splits[slot];
            w.Line($"    new({Names.Int(slot)}, {Names.String(stage.Program.Layout.Slots[slot].Parameter.Name)}, new({Plans}.SplitAxis.{split.Axis}, {Names.Int(split.Groups)}), FirstHolder: {(stage.FirstHolder[slot] ? "true" : "false")}),");
        }
        w.Line("},");
        w.Line($"ReceivedElementsPerSample: {Names.Long(received)}, SentElementsPerSample: {Names.Long(sent)},");
        if (stage.Tied.Count == 0)
        {
            w.Line($"Tied: global::System.Array.Empty<{Plans}.TiedParameter>(){close}");
        }
        else
        {
            w.Line($"Tied: new {Plans}.TiedParameter[]");
            w.Line("{");
            foreach (var tied in stage.Tied)
                w.Line($"    new({Names.Int(tied.Slot)}, {Names.String(tied.Name)}, new[] {{ {string.Join(", ", tied.Stages.Select(s => Names.Int(s)))} }}),");
            w.Line("}" + close);
        }
        w.Outdent();
    }
}
