namespace Shardwise.Generator.Model;

/// <summary>Everything the generator needs about one [Model] class, as plain values.</summary>
internal sealed record ModelSpec(
    string Namespace,
    string ClassName,
    EquatableArray<string> ContainingTypes,
    string Accessibility,
    int Pipeline,
    int Tensor,
    ForwardMethod Forward,
    EquatableArray<ForwardMethod> LayerForwards,
    LayerNode Root)
{
    /// <summary>The launch the build-time checks assume (<c>[Model(DeviceMemoryGiB = …, MicroBatch = …)]</c>).</summary>
    public PlanningAssumptions Assumptions { get; init; } = PlanningAssumptions.Default;

    /// <summary>Where the [Model] attribute is: parallel-plan diagnostics point there.</summary>
    public LocationInfo? AttributeLocation { get; init; }
}

/// <summary>
/// The planning assumptions of <c>[Model]</c>: they change no code, only the memory estimate, the bubble estimate and
/// the pinned cut. Zero means "not stated" for <see cref="DeviceMemoryGiB"/>, <see cref="MicroBatches"/> and <see cref="Sequence"/>.
/// </summary>
internal sealed record PlanningAssumptions(
    double DeviceMemoryGiB,
    int MicroBatch,
    int MicroBatches,
    int Sequence,
    int ZeroStage,
    int DataParallel,
    EquatableArray<string> StageStarts)
{
    public static readonly PlanningAssumptions Default = new(0, 1, 0, 0, 0, 1, EquatableArray<string>.Empty);
}

/// <summary>A [Forward] method: the declaring type, its inputs and its body.</summary>
internal sealed record ForwardMethod(
    string TypeName,
    EquatableArray<ForwardInput> Inputs,
    EquatableArray<ForwardStatement> Body,
    LocationInfo? Location);

/// <summary>An input of a [Forward] method. For the model's own forward, <see cref="Dims"/> is the per-sample shape.</summary>
internal sealed record ForwardInput(string Name, bool IsTokens, EquatableArray<int> Dims, LocationInfo? Location);
