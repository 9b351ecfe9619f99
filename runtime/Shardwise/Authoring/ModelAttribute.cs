namespace Shardwise;

/// <summary>
/// Marks a partial class as a trainable model. The source generator emits, into the same class, the parameter
/// layout, the activation memory plan and a compiled forward/backward program (<c>Compiled&lt;T&gt;</c>); with
/// <see cref="Pipeline"/> or <see cref="Tensor"/> above 1, also one program per pipeline stage for one tensor rank.
/// The planning assumptions (<see cref="DeviceMemoryGiB"/>, <see cref="MicroBatch"/>, ...) change no code: they are
/// what the build-time memory check and the plan report assume about the launch.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Class, Inherited = false)]
public sealed class ModelAttribute : global::System.Attribute
{
    /// <summary>Pipeline-parallel degree the static plan is made for.</summary>
    public int Pipeline { get; set; } = 1;

    /// <summary>Tensor-parallel degree the static plan is made for.</summary>
    public int Tensor { get; set; } = 1;

    /// <summary>
    /// Pins the pipeline cut by hand: the first layer of every stage after the first (e.g. <c>"blocks.2"</c>), as the
    /// plan report names layers. Empty: the cost model chooses the cut.
    /// </summary>
    public string[]? StageStarts { get; set; }

    /// <summary>Memory of one device in GiB; the build fails when a stage's estimate exceeds it. 0: no check.</summary>
    public double DeviceMemoryGiB { get; set; }

    /// <summary>Samples per micro-batch assumed by the memory estimate and the plan report (DeepSpeed's train_micro_batch_size_per_gpu).</summary>
    public int MicroBatch { get; set; } = 1;

    /// <summary>Micro-batches per step assumed by the bubble estimate (DeepSpeed's gradient_accumulation_steps). 0: 4 × Pipeline.</summary>
    public int MicroBatches { get; set; }

    /// <summary>Positions per sample assumed by the estimate. 0: the sequence length of the model's inputs.</summary>
    public int Sequence { get; set; }

    /// <summary>ZeRO stage assumed by the memory estimate (0 to 3).</summary>
    public int ZeroStage { get; set; }

    /// <summary>Data-parallel degree assumed by the memory estimate (ZeRO divides by it).</summary>
    public int DataParallel { get; set; } = 1;
}
