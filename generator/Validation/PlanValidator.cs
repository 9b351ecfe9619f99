using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Validation;

/// <summary>
/// Checks a legal plan against the launch its [Model] planning assumptions describe: the memory estimate of every
/// stage against <c>DeviceMemoryGiB</c> (SW0014), a stated <c>MicroBatches</c> below the stage count (SW0015), and a
/// note for each parameter held by several stages (SW0016). Reported at the [Model] attribute.
/// </summary>
internal static class PlanValidator
{
    private const double GiB = 1L << 30;

    public static EquatableArray<DiagnosticInfo> Validate(ModelSpec model, PipelinePlan pipeline, IReadOnlyList<StageMemory> memory, LocationInfo? attribute)
    {
        var diagnostics = new List<DiagnosticInfo>();
        var a = model.Assumptions;
        if (a.DeviceMemoryGiB > 0)
        {
            foreach (var stage in memory.Where(s => s.Total > a.DeviceMemoryGiB * GiB))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MemoryAboveDeviceBudget, attribute,
                    N(stage.Stage), model.ClassName, G(stage.Total), a.DeviceMemoryGiB.ToString("0.######", CultureInfo.InvariantCulture),
                    N(a.ZeroStage), N(a.DataParallel), N(a.MicroBatch), Contributors(stage, pipeline, model.Assumptions), Remedies(model, pipeline, stage)));
            }
        }

        int p = model.Pipeline;
        if (p > 1 && a.MicroBatches > 0 && a.MicroBatches < p)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FewerMicroBatchesThanStages, attribute,
                model.ClassName, N(a.MicroBatches), N(p), Percent(PipelinePlan.Bubble(p, a.MicroBatches)),
                Percent(PipelinePlan.Bubble(p, p)), N(4 * p), Percent(PipelinePlan.Bubble(p, 4 * p))));
        }

        foreach (var tied in pipeline.Tied)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TiedWeightAcrossStages, attribute,
                tied.Name, model.ClassName, string.Join(" and ", tied.Stages.Select(s => N(s))), tied.Elements.ToString("N0", CultureInfo.InvariantCulture)));
        }
        return diagnostics.ToEquatableArray();
    }

    /// <summary>The three largest categories, with the in-flight micro-batches named for activations.</summary>
    private static string Contributors(StageMemory stage, PipelinePlan pipeline, PlanningAssumptions assumptions)
    {
        int inFlight = pipeline.IsCut && pipeline.Stages > 1 ? MemoryEstimator.ActivationWindows(pipeline.Stages, stage.Stage, assumptions) : 1;
        return string.Join(", ", stage.Contributors().Where(c => c.Bytes > 0).Take(3).Select(c =>
            (c.Name == "activations" ? "activations of " + N(inFlight) + " micro-batch" + (inFlight == 1 ? "" : "es") + " in flight" : c.Name)
            + " " + G(c.Bytes) + " GiB"));
    }

    /// <summary>What would shrink the stage, most effective first for what dominates it.</summary>
    private static string Remedies(ModelSpec model, PipelinePlan pipeline, StageMemory stage)
    {
        var a = model.Assumptions;
        var remedies = new List<string>();
        if (model.Pipeline < pipeline.Layers.Count) remedies.Add("more stages (Pipeline = " + N(model.Pipeline + 1) + ")");
        if (a.ZeroStage < 3) remedies.Add("ZeroStage = " + N(a.ZeroStage + 1) + (a.DataParallel > 1 ? "" : " with DataParallel > 1"));
        else if (a.DataParallel > 1) remedies.Add("more data-parallel ranks (DataParallel = " + N(2 * a.DataParallel) + ")");
        if (stage.Activations > 0)
        {
            // Checkpointed already: the next step is keeping the checkpointed inputs in host memory.
            bool checkpointed = LayerPaths.Outermost(model.Root, n => n.Checkpoint).Count > 0;
            bool onHost = LayerPaths.Outermost(model.Root, n => n.CheckpointInputsOnHost).Count > 0;
            if (!checkpointed) remedies.Add("[Checkpoint] on the repeated layers");
            else if (!onHost) remedies.Add("[Checkpoint(InputsOnHost = true)] to keep the checkpointed inputs in host memory");
            if (a.MicroBatch > 1) remedies.Add("a smaller MicroBatch (" + N(a.MicroBatch / 2) + ")");
        }
        return string.Join(", ", remedies);
    }

    /// <summary>GiB with about three significant digits, so small models read sensibly too.</summary>
    private static string G(long bytes)
    {
        double gib = bytes / GiB;
        return gib.ToString(gib >= 100 ? "0" : gib >= 10 ? "0.0" : gib >= 1 ? "0.00" : "0.####", CultureInfo.InvariantCulture);
    }

    private static string Percent(double fraction) => (100 * fraction).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
