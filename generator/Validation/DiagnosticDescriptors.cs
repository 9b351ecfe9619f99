using Microsoft.CodeAnalysis;

namespace Shardwise.Generator.Validation;

/// <summary>
/// Every diagnostic Shardwise reports at build time. The generator's validation produces them as values; the
/// analyzer (which compiles this same file) reports them. Each id has a page in docs/diagnostics/.
/// </summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "Shardwise";
    private const string HelpRoot = "https://github.com/shardwise/shardwise/blob/main/docs/diagnostics/";

    public static readonly DiagnosticDescriptor ModelMustBePartial = Error(
        "SW0001",
        "Model class must be partial",
        "Model class '{0}' must be declared 'partial' so that the generator can add its compiled program");

    public static readonly DiagnosticDescriptor UnsupportedForwardSyntax = Error(
        "SW0002",
        "Unsupported code in a [Forward] method",
        "'{0}' cannot be compiled in the [Forward] method of '{1}': {2}");

    public static readonly DiagnosticDescriptor NonConstantDimension = Error(
        "SW0003",
        "Layer dimension is not a compile-time constant",
        "Argument '{0}' of layer '{1}' is not a compile-time constant ({2}); every dimension must be known at build time");

    public static readonly DiagnosticDescriptor ShapeMismatch = Error(
        "SW0004",
        "Shape mismatch between layers",
        "Shape mismatch at '{0}': expected {1} but got {2}");

    public static readonly DiagnosticDescriptor UnknownLayerType = Error(
        "SW0005",
        "[Layer] member of an unknown type",
        "[Layer] member '{0}' has type '{1}', which is neither a built-in layer nor a class marked [Layer]");

    public static readonly DiagnosticDescriptor InvalidForwardMethod = Error(
        "SW0006",
        "Missing or invalid [Forward] method",
        "'{0}' {1}");

    public static readonly DiagnosticDescriptor MissingInputShape = Error(
        "SW0007",
        "Model input without a static shape",
        "Input '{0}' of '{1}' needs [Tokens(...)] or [Shape(...)] giving its per-sample dimensions");

    public static readonly DiagnosticDescriptor UnsupportedLayerConstruction = Error(
        "SW0008",
        "Layer construction the generator cannot evaluate",
        "[Layer] member '{0}' must be created with 'new {1}(...)' or 'Layers.Repeat(count, () => new ...)' in its initializer or constructor: {2}");

    public static readonly DiagnosticDescriptor InternalError = Error(
        "SW0009",
        "Shardwise could not compile the model",
        "Shardwise could not compile model '{0}' because of an internal error ({1}); please report it with the model's source");

    public static readonly DiagnosticDescriptor MoreStagesThanLayers = Error(
        "SW0010",
        "More pipeline stages than layers",
        "Model '{0}' asks for Pipeline = {1} stages but has only {2} layers to place ({3}); use at most {2} stages");

    public static readonly DiagnosticDescriptor StageWithoutParameters = Error(
        "SW0011",
        "Pipeline stage without parameters",
        "Pipeline stage {0} of model '{1}' would hold no parameters (layers: {2}): only {3} of its {4} layers have parameters, so Pipeline = {5} leaves a stage with nothing to train; use at most {3} stages");

    public static readonly DiagnosticDescriptor TensorDegreeDoesNotDivide = Error(
        "SW0012",
        "Tensor-parallel degree does not divide a sharded size",
        "Tensor parallelism cannot split '{0}': its {1} ({2}) is not divisible by Tensor = {3}; degrees that divide it: {4}; degrees that divide every sharded size of the model: {5}");

    public static readonly DiagnosticDescriptor InvalidParallelDegree = Error(
        "SW0013",
        "Parallel degree below 1",
        "{0} = {1} on model '{2}' must be at least 1 (1 means no {0} parallelism)");

    public static readonly DiagnosticDescriptor TensorSplitNeedsGather = Error(
        "SW0017",
        "Tensor split needs an extra gather or scatter",
        "Layer '{0}' {1}: tensor parallelism would need an extra gather or scatter here; pair a [Shard(ShardKind.Column)] layer with a [Shard(ShardKind.Row)] layer after it (Megatron's pattern), with only element-wise ops between them");

    public static readonly DiagnosticDescriptor StageBoundaryPassesSeveralTensors = Error(
        "SW0019",
        "Pipeline cut passes more than one tensor",
        "Model '{0}': {1}; Shardwise sends exactly one activation between neighbouring stages (the residual stream of a GPT): pin the cut at another layer with [Model(StageStarts = ...)] or change the number of stages");

    public static readonly DiagnosticDescriptor MemoryAboveDeviceBudget = Error(
        "SW0014",
        "Estimated memory per device above the declared budget",
        "Pipeline stage {0} of model '{1}' needs an estimated {2} GiB per device, above DeviceMemoryGiB = {3} (ZeRO {4}, N = {5}, micro-batch {6}, fp16/bf16 mixed precision); largest: {7}; to fit, try {8}");

    public static readonly DiagnosticDescriptor FewerMicroBatchesThanStages = Warning(
        "SW0015",
        "Fewer micro-batches than pipeline stages",
        "Model '{0}' assumes MicroBatches = {1}, fewer than its Pipeline = {2} stages: 1F1B leaves each stage idle (p - 1)/(m + p - 1) = {3} of every step; MicroBatches = {2} gives {4}, MicroBatches = {5} gives {6}");

    public static readonly DiagnosticDescriptor TiedWeightAcrossStages = Info(
        "SW0016",
        "Tied weight across pipeline stages",
        "Parameter '{0}' of model '{1}' is used on pipeline stages {2}: each of them holds a copy, and a tied-gradient all-reduce of its {3} elements across those stages is emitted in every step");

    public static readonly DiagnosticDescriptor InvalidStageStarts = Error(
        "SW0018",
        "Pinned pipeline cut names no valid cut",
        "StageStarts of model '{0}' {1}; the layers, in order: {2}");

    public static readonly DiagnosticDescriptor LayerCannotBeDropped = Error(
        "SW0020",
        "[LayerDrop] layer is not a chain of residual branches",
        "Layer '{0}' of model '{1}' cannot be skipped by progressive layer drop: {2}; a [LayerDrop] layer's forward must be x = x + f(x), once or more, each branch f ending in a Linear");

    public static readonly DiagnosticDescriptor LayerCannotDropTokens = Error(
        "SW0021",
        "[TokenDrop] layer cannot run on a subset of its tokens",
        "Layer '{0}' of model '{1}' cannot drop tokens for random-LTD: {2}; a [TokenDrop] layer takes and returns [batch, sequence, width] and works position by position except for causal attention");

    public static readonly DiagnosticDescriptor CheckpointInputsNotPartitioned = Warning(
        "SW0022",
        "Checkpointed inputs cannot be kept in parts",
        "Layer '{0}' of model '{1}' asks for its checkpointed inputs in parts over the tensor-parallel ranks (PartitionInputs = true), but {2}; they are kept whole");

    private static DiagnosticDescriptor Error(string id, string title, string message) => Create(id, title, message, DiagnosticSeverity.Error);

    private static DiagnosticDescriptor Warning(string id, string title, string message) => Create(id, title, message, DiagnosticSeverity.Warning);

    private static DiagnosticDescriptor Info(string id, string title, string message) => Create(id, title, message, DiagnosticSeverity.Info);

    private static DiagnosticDescriptor Create(string id, string title, string message, DiagnosticSeverity severity) => new(
        id,
        title,
        message,
        Category,
        severity,
        isEnabledByDefault: true,
        helpLinkUri: HelpRoot + id + ".md");

    public static DiagnosticDescriptor? Find(string id) => id switch
    {
        "SW0001" => ModelMustBePartial,
        "SW0002" => UnsupportedForwardSyntax,
        "SW0003" => NonConstantDimension,
        "SW0004" => ShapeMismatch,
        "SW0005" => UnknownLayerType,
        "SW0006" => InvalidForwardMethod,
        "SW0007" => MissingInputShape,
        "SW0008" => UnsupportedLayerConstruction,
        "SW0009" => InternalError,
        "SW0010" => MoreStagesThanLayers,
        "SW0011" => StageWithoutParameters,
        "SW0012" => TensorDegreeDoesNotDivide,
        "SW0013" => InvalidParallelDegree,
        "SW0014" => MemoryAboveDeviceBudget,
        "SW0015" => FewerMicroBatchesThanStages,
        "SW0016" => TiedWeightAcrossStages,
        "SW0017" => TensorSplitNeedsGather,
        "SW0018" => InvalidStageStarts,
        "SW0019" => StageBoundaryPassesSeveralTensors,
        "SW0020" => LayerCannotBeDropped,
        "SW0021" => LayerCannotDropTokens,
        "SW0022" => CheckpointInputsNotPartitioned,
        _ => null,
    };

    public static readonly DiagnosticDescriptor[] All =
    {
        ModelMustBePartial, UnsupportedForwardSyntax, NonConstantDimension, ShapeMismatch,
        UnknownLayerType, InvalidForwardMethod, MissingInputShape, UnsupportedLayerConstruction, InternalError,
        MoreStagesThanLayers, StageWithoutParameters, TensorDegreeDoesNotDivide, InvalidParallelDegree,
        MemoryAboveDeviceBudget, FewerMicroBatchesThanStages, TiedWeightAcrossStages, InvalidStageStarts,
        TensorSplitNeedsGather, StageBoundaryPassesSeveralTensors, LayerCannotBeDropped,
        LayerCannotDropTokens, CheckpointInputsNotPartitioned,
    };

    /// <summary>Whether a diagnostic stops the generator from emitting the model (errors do; warnings and notes do not).</summary>
    public static bool IsError(string id) => Find(id)?.DefaultSeverity == DiagnosticSeverity.Error;
}
