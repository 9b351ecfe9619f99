using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Emit;

/// <summary>
/// Emits <c>Compiled&lt;T&gt;</c>: slices for every parameter and planned buffer, then the forward pass and the
/// derived backward pass as straight-line backend calls, each block commented with the layer it belongs to.
/// </summary>
internal static class ProgramEmitter
{
    private const string Slice = "global::Shardwise.Ops.Slice";
    private const string IndexSlice = "global::Shardwise.Ops.IndexSlice";

    public static void Write(SourceWriter w, ProgramPlan plan) => Write(w, plan, stage: null, model: null);

    /// <summary>
    /// Emits <c>Stage{s}&lt;T&gt;</c>, one pipeline stage for one tensor rank, over the same emitters as the whole model:
    /// what differs is the base class (CompiledStage), the boundary buffers and the inputs each stage loads.
    /// </summary>
    public static void WriteStage(SourceWriter w, ProgramPlan model, StageProgram stage) => Write(w, stage.Program, stage, model);

    private static void Write(SourceWriter w, ProgramPlan plan, StageProgram? stage, ProgramPlan? model)
    {
        var graph = plan.Graph;
        var names = new BufferNames(plan);
        bool languageModel = stage is not null || graph.IsLanguageModel;
        // Only the whole model's program derives from CompiledLanguageModel, whose ForwardBackward drives the fusion.
        bool fusedLoss = stage is null && plan.FusesLossGradient;
        var calls = new OpCallEmitter(graph, names, plan.Epilogues, plan.GradientAliases, plan.Backward, fusedLoss, plan.LayerDrop, plan.TokenDrop);

        string className;
        if (stage is null)
        {
            className = "Compiled";
            w.Line("/// <summary>The compiled forward and backward program over preplanned buffers; nothing is allocated per step.</summary>");
            w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({Names.String(ModelEmitter.Tool)}, {Names.String(ModelEmitter.Version)})]");
            string baseClass = languageModel ? "CompiledLanguageModel" : "CompiledModel";
            w.Line($"public sealed class Compiled<T> : global::Shardwise.Plans.{baseClass}<T>");
        }
        else
        {
            className = StageClass(stage.Stage.Index);
            w.Line($"/// <summary>Pipeline stage {Names.Int(stage.Stage.Index)} ({stage.Stage.Layers}) for one tensor-parallel rank; nothing is allocated per step.</summary>");
            w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({Names.String(ModelEmitter.Tool)}, {Names.String(ModelEmitter.Version)})]");
            w.Line($"public sealed class {className}<T> : global::Shardwise.Plans.CompiledStage<T>");
        }
        w.Line("    where T : unmanaged, global::System.Numerics.IFloatingPointIeee754<T>");
        w.Line("{");
        w.Indent();

        w.Line("// Parameters and their gradients: fixed offsets in the flat layout.");
        foreach (var slot in plan.Layout.Slots)
        {
            int id = slot.Parameter.Id;
            w.Line($"private static readonly {Slice} {names.Parameter(id)} = new(global::Shardwise.Ops.Arena.Parameters, {Names.Long(slot.Offset)}, {Names.Long(slot.Length)});");
            w.Line($"private static readonly {Slice} {names.ParameterGradient(id)} = new(global::Shardwise.Ops.Arena.Gradients, {Names.Long(slot.Offset)}, {Names.Long(slot.Length)});");
        }
        w.Line();
        w.Line("// Token indices and planned activation buffers: offsets per sample, scaled by the batch.");
        foreach (var b in plan.Activations.Indices) w.Line($"private readonly {IndexSlice} {names.Index(b.Value)};");
        foreach (var b in plan.Activations.Buffers)
            w.Line($"private readonly {Slice} {names.Buffer(b)};");
        w.Line();

        w.Line($"public {className}(global::Shardwise.Ops.ITensorOps<T> ops, int batch)");
        w.Open(stage is null ? "    : base(ops, batch, ParameterLayout, ActivationPlan)" : $"    : base(ops, batch, Partition.Stages[{Names.Int(stage.Stage.Index)}])");
        foreach (var b in plan.Activations.Indices)
            w.Line($"{names.Index(b.Value)} = Indices({Names.Long(b.OffsetPerSample)}, {Names.Long(b.ElementsPerSample)});");
        foreach (var b in plan.Activations.Buffers)
            w.Line($"{names.Buffer(b)} = Activation({Names.Long(b.OffsetPerSample)}, {Names.Long(b.ElementsPerSample)});");
        w.Close();

        if (languageModel)
        {
            var modelGraph = (model ?? plan).Graph;
            var loss = modelGraph.Ops[modelGraph.Ops.Count - 1];
            w.Line();
            w.Line($"public override int SequenceLength => {Names.Int(modelGraph.Values[modelGraph.Inputs[0].Value].ElementsPerSample)};");
            w.Line();
            w.Line($"public override int VocabularySize => {Names.Int(loss.Dims[0])};");
            w.Line();
            bool hasLogits = stage is null || graph.OutputIsLoss;
            w.Line($"public override {Slice} Logits => {(hasLogits ? names.Value(graph.Ops[graph.Ops.Count - 1].Inputs[0]) : "default")};");
            if (fusedLoss)
            {
                w.Line();
                w.Line("protected override bool FusesLossGradient => true;");
            }
        }
        if (stage is not null) WriteBoundaries(w, stage, names);
        string modifier = languageModel ? "override " : "";
        WriteForward(w, plan, names, calls, modifier, stage is null ? null : model);
        WriteBackward(w, plan, names, calls, modifier, stage is not null);
        if (stage is null) WriteAccessors(w, plan, names);

        w.Outdent();
        w.Line("}");
    }

    public static string StageClass(int stage) => "Stage" + Names.Int(stage);

    /// <summary>The buffers the pipeline executor sends from and receives into, around Forward and Backward.</summary>
    private static void WriteBoundaries(SourceWriter w, StageProgram stage, BufferNames names)
    {
        int received = stage.Stage.Received, sent = stage.Stage.Sent;
        w.Line();
        w.Line($"public override {Slice} ReceivedActivation => {(received >= 0 ? names.Value(received) : "default")};");
        w.Line();
        w.Line($"public override {Slice} InputGradient => {(received >= 0 ? names.Gradient(received) : "default")};");
        w.Line();
        w.Line($"public override {Slice} SentActivation => {(sent >= 0 ? names.Value(sent) : "default")};");
        w.Line();
        w.Line($"public override {Slice} OutputGradient => {(sent >= 0 ? names.Gradient(sent) : "default")};");
    }

    /// <summary>ZeRO-3 residency calls for the slots whose first (or last) use in a phase is at <paramref name="time"/>.</summary>
    private static void WriteResidency(SourceWriter w, ProgramPlan plan, Model.EquatableArray<int> times, int time, string call, int phase)
    {
        for (int slot = 0; slot < times.Count; slot++)
        {
            if (times[slot] == time)
                w.Line($"{call}({Names.Int(slot)}, {Names.Int(phase)}); // {plan.Layout.Slots[slot].Parameter.Name}");
        }
    }

    private static void WriteForward(SourceWriter w, ProgramPlan plan, BufferNames names, OpCallEmitter calls, string modifier, ProgramPlan? model)
    {
        var graph = plan.Graph;
        if (model is not null)
        {
            // A stage takes the model's inputs and loads those it reads; the received activation is already in place.
            var modelInputs = model.Graph.Inputs.Select(i => "global::System.ReadOnlySpan<int> " + i.Name);
            w.Line();
            w.Line("/// <summary>Runs this stage's forward on a micro-batch" + (graph.OutputIsLoss ? "; returns the mean loss." : " (the previous stage's output already received); returns zero.") + "</summary>");
            w.Open($"public override T Forward({string.Join(", ", modelInputs)})");
        }
        else
        {
            var parameters = graph.Inputs.Select(i => (graph.Values[i.Value].Kind == ValueKind.Tokens
                ? "global::System.ReadOnlySpan<int> " : "global::System.ReadOnlySpan<T> ") + i.Name);
            w.Line();
            w.Line("/// <summary>Runs the forward pass" + (graph.OutputIsLoss ? "; returns the mean loss." : "; the result is in <see cref=\"Output\"/>.") + "</summary>");
            w.Open($"public {modifier}{(graph.OutputIsLoss ? "T" : "void")} Forward({string.Join(", ", parameters)})");
        }
        foreach (var input in graph.Inputs)
        {
            if (model is not null && input.Name == StagePlanner.ReceivedInput) continue;
            var value = graph.Values[input.Value];
            bool tokens = value.Kind == ValueKind.Tokens;
            string buffer = tokens ? names.Index(input.Value) : names.Value(input.Value);
            w.Line($"CheckInput({Names.String(input.Name)}, {input.Name}.Length, Batch * {Names.Long(value.ElementsPerSample)});");
            w.Line(tokens ? $"Ops.LoadIndices({input.Name}, {buffer});" : $"Ops.Load({input.Name}, {buffer});");
        }

        string? layer = null;
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            var op = graph.Ops[k];
            if (op.Layer != layer)
            {
                layer = op.Layer;
                w.Line();
                w.Line("// " + (layer.Length == 0 ? plan.ClassName : layer));
            }
            WriteHostCopies(w, plan, names, k);
            WriteResidency(w, plan, plan.Residency.ForwardFirst, k, "ParametersNeeded", phase: 0);
            foreach (var line in calls.Forward(k)) w.Line(line);
            WriteResidency(w, plan, plan.Residency.ForwardLast, k, "ParametersReleased", phase: 0);
            foreach (var copy in plan.Activations.HostCopies)
            {
                if (copy.StashAfterOp == k)
                    w.Line($"Ops.StashActivation({names.Value(copy.Value)}, HostStash({Names.Long(copy.HostOffsetPerSample)})); // kept in host memory until backward");
            }
            foreach (var copy in plan.Activations.PartitionCopies)
            {
                if (copy.StashAfterOp == k)
                    w.Line($"TensorParallelKeepPart({names.Value(copy.Value)}, {names.Partition(copy.Value)}); // each tensor rank keeps its part until backward");
            }
        }
        if (graph.OutputIsLoss) w.Line("return loss;");
        else if (model is not null) w.Line("return T.Zero;");
        w.Close();
    }

    /// <summary>
    /// The host copies' calls due before timeline step <paramref name="time"/>: waits for stashes whose memory the step
    /// is the first to reuse, restores that may start, and waits for the restores the step reads; and the all-gathers
    /// of partitioned checkpoint inputs the step reads. Returns whether it
    /// wrote anything (after a blank line unless <paramref name="first"/>).
    /// </summary>
    private static bool WriteHostCopies(SourceWriter w, ProgramPlan plan, BufferNames names, int time, bool first = true)
    {
        int forwardSteps = plan.Graph.Ops.Count;
        var lines = new System.Collections.Generic.List<string>();
        foreach (var copy in plan.Activations.HostCopies)
        {
            string offset = Names.Long(copy.HostOffsetPerSample), value = names.Value(copy.Value);
            if (copy.AwaitStashAt == time) lines.Add($"Ops.WaitForStash(HostStash({offset})); // {value}'s memory is reused from here");
            if (copy.RestoreIssueAt == time) lines.Add($"Ops.RestoreActivation(HostStash({offset}), {value}); // back from host memory");
            if (forwardSteps + copy.RestoreBeforeEvent == time) lines.Add($"Ops.WaitForRestore(HostStash({offset})); // {value} is read from here");
        }
        foreach (var copy in plan.Activations.PartitionCopies)
        {
            if (forwardSteps + copy.RestoreBeforeEvent == time)
                lines.Add($"TensorParallelGatherParts({names.Partition(copy.Value)}, {names.Value(copy.Value)}); // the tensor ranks' parts back together");
        }
        if (lines.Count == 0) return false;
        if (!first) w.Line();
        foreach (var line in lines) w.Line(line);
        return true;
    }

    private static void WriteBackward(SourceWriter w, ProgramPlan plan, BufferNames names, OpCallEmitter calls, string modifier, bool isStage)
    {
        var graph = plan.Graph;
        w.Line();
        if (isStage && !graph.OutputIsLoss)
        {
            w.Line("/// <summary>Backward of the micro-batch from ∂L/∂output, received into <see cref=\"OutputGradient\"/> (it already carries the scale).</summary>");
            w.Open("public override void Backward(T scale)");
        }
        else if (graph.OutputIsLoss)
        {
            w.Line("/// <summary>Backward of the last forward: adds scale × ∂loss/∂θ into the gradients (scale carries 1/GAS and the loss scale).</summary>");
            w.Open($"public {modifier}void Backward(T scale)");
        }
        else
        {
            w.Line("/// <summary>Backward of the last forward from ∂L/∂output: adds ∂L/∂θ into the gradients and fills the input gradients.</summary>");
            w.Open("public void Backward(global::System.ReadOnlySpan<T> outputGradient)");
            w.Line($"CheckInput(\"outputGradient\", outputGradient.Length, Batch * {Names.Long(graph.Values[graph.Output].ElementsPerSample)});");
            w.Line($"Ops.Load(outputGradient, {names.Gradient(graph.Output)});");
        }

        string? layer = null;
        bool first = graph.OutputIsLoss || isStage;
        var timeline = plan.Checkpoints.Timeline;
        for (int i = 0; i < timeline.Count; i++)
        {
            var e = timeline[i];
            var op = graph.Ops[e.Op];
            if (WriteHostCopies(w, plan, names, graph.Ops.Count + i, first))
            {
                first = false;
                layer = null;
            }
            if (e.IsRecompute)
            {
                // A checkpointed layer's forward runs again so that its dropped activations exist for its backward.
                if (i == 0 || timeline[i - 1].Segment != e.Segment || !timeline[i - 1].IsRecompute)
                {
                    if (!first) w.Line();
                    first = false;
                    w.Line("// " + plan.Checkpoints.Segments[e.Segment].Layer + " (recompute)");
                    layer = null;
                }
                WriteResidency(w, plan, plan.Residency.BackwardFirst, i, "ParametersNeeded", phase: 1);
                foreach (var line in calls.Forward(e.Op)) w.Line(line);
                WriteResidency(w, plan, plan.Residency.BackwardLast, i, "ParametersReleased", phase: 1);
                continue;
            }

            int j = e.Step;
            if (op.Layer != layer)
            {
                layer = op.Layer;
                if (!first) w.Line();
                first = false;
                w.Line("// " + (layer.Length == 0 ? plan.ClassName : layer) + " (backward)");
            }
            WriteResidency(w, plan, plan.Residency.BackwardFirst, i, "ParametersNeeded", phase: 1);
            foreach (var line in calls.Backward(j)) w.Line(line);
            WriteResidency(w, plan, plan.Residency.BackwardLast, i, "ParametersReleased", phase: 1);
            if (plan.GradientsReadyFrom[j] >= 0)
                w.Line($"GradientsReady({Names.Long(plan.GradientsReadyFrom[j])}); // every gradient from this offset on is final");
            for (int slot = plan.Layout.Slots.Count - 1; slot >= 0; slot--)
            {
                if (plan.GradientPool.FinalAfterStep[slot] == j)
                    w.Line($"GradientFinal({Names.Int(slot)}); // {plan.Layout.Slots[slot].Parameter.Name}");
            }
        }
        w.Close();
    }

    private static void WriteAccessors(SourceWriter w, ProgramPlan plan, BufferNames names)
    {
        var graph = plan.Graph;
        if (!graph.OutputIsLoss)
        {
            w.Line();
            w.Line("/// <summary>The forward result.</summary>");
            w.Line($"public {Slice} Output => {names.Value(graph.Output)};");
        }

        var realInputs = graph.Inputs.Where(i => graph.Values[i.Value].Kind == ValueKind.Real).ToList();
        if (realInputs.Count == 0) return;
        w.Line();
        w.Line("/// <summary>The gradient of a real-valued input after <c>Backward</c>.</summary>");
        w.Open($"public {Slice} GradientOf(string input) => input switch");
        foreach (var input in realInputs) w.Line($"{Names.String(input.Name)} => {names.Gradient(input.Value)},");
        w.Line("_ => throw new global::System.ArgumentException(\"No real-valued input named '\" + input + \"'.\", nameof(input)),");
        w.Close(";");
    }
}
