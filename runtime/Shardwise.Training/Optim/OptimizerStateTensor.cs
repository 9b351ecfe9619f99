namespace Shardwise.Training.Optim;

/// <summary>
/// One piece of the state a 1-bit optimizer keeps beyond Adam's moments, as checkpoints store it (named as DeepSpeed
/// names it): either <see cref="PerParameter"/>, a full-layout array stored per parameter tensor as
/// <c>TENSOR.Name</c> beside the moments, or <see cref="Values"/>, a float64 vector stored whole as <c>Name</c> (counters
/// included: every integer below 2⁵³ is exact). A restore fills the arrays in place.
/// </summary>
public sealed record OptimizerStateTensor(string Name, float[]? PerParameter = null, double[]? Values = null);
