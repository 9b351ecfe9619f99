namespace Shardwise;

/// <summary>
/// Activation checkpointing for this layer (or every element of a layer array): forward keeps only the layer's input,
/// and backward recomputes the layer's forward just before differentiating it. Trades one extra forward for the
/// memory of every activation inside the layer; the plan report shows the saving.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field, Inherited = false)]
public sealed class CheckpointAttribute : global::System.Attribute
{
    /// <summary>
    /// Keep the layer's checkpointed inputs in host memory between its forward and its backward (DeepSpeed's
    /// cpu_checkpointing): each is copied out after its last forward use and back just before the layer's recompute,
    /// so the device holds none of them in between. Costs two copies of each input per step over the bus; results are
    /// unchanged. The plan report gives the host bytes and the smaller device arena.
    /// </summary>
    public bool InputsOnHost { get; set; }

    /// <summary>
    /// In a model planned for Tensor above 1, split the layer's checkpointed inputs over the tensor-parallel ranks
    /// between its forward and its backward (DeepSpeed's partition_activations): each rank keeps 1/t of every input
    /// that is the same on all of them, and the ranks all-gather it back just before the recompute. Saves (t − 1)/t of
    /// that memory per rank for one all-gather per input per step; results are unchanged. Inputs that differ between
    /// tensor ranks, and programs planned for one tensor rank (the whole model in one process), keep them whole. Not
    /// with <see cref="InputsOnHost"/>, which takes precedence.
    /// </summary>
    public bool PartitionInputs { get; set; }
}
