using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Whether the loss op may write the logits' gradient during the forward, when the backward's scale is known before
/// it (CompiledLanguageModel.ForwardBackward): then one op reads the logits once for both (a GPT-2 step's largest
/// tensor, 1.6 GB in 16 bits) where the forward and the backward each read them. Taken for a language model (only
/// its program has ForwardBackward) whose whole-vocabulary cross-entropy is the last op and the output, and whose
/// backward is the first event of the backward timeline and writes the logits' gradient: nothing runs between the
/// end of the forward and that backward, so writing the gradient earlier changes nothing another op could see.
/// </summary>
internal static class LossGradientFusionPlanner
{
    public static bool Plan(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints)
    {
        if (graph.Ops.Count == 0 || !graph.IsLanguageModel || checkpoints.Timeline.Count == 0) return false;
        int last = graph.Ops.Count - 1;
        var loss = graph.Ops[last];
        if (loss.Kind != OpKind.CrossEntropy || loss.Outputs.Count != 1 || loss.Outputs[0] != graph.Output) return false;
        var first = checkpoints.Timeline[0];
        if (first.IsRecompute || first.Op != last) return false;
        var writes = backward[first.Step].Writes;
        return writes.Count > 0 && !writes[0].IsNone;
    }
}
