namespace Shardwise.Plans;

/// <summary>
/// One forward operation of a generated program and its static cost per sample, from the shapes alone (the
/// generator's cost model, the one that balances pipeline stages): <see cref="Layer"/> is the layer path the op belongs
/// to (<c>blocks.3.attention</c>; the model's own ops carry its class name), <see cref="Operation"/> its kind.
/// </summary>
public sealed record OperationCost(string Layer, string Operation, long ForwardFlopsPerSample, long BackwardFlopsPerSample);
