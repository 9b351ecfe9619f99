using Shardwise.Ops;

namespace Shardwise.Plans;

/// <summary>
/// What every generated <c>Compiled&lt;T&gt;</c> program shares: the backend, the batch, and the three arenas it
/// allocates once at construction from the static plans. Forward and backward are generated in the subclass.
/// </summary>
public abstract class CompiledModel<T> where T : unmanaged
{
    protected CompiledModel(ITensorOps<T> ops, int batch, ParameterLayout layout, ActivationPlan plan)
    {
        if (batch <= 0) throw new global::System.ArgumentOutOfRangeException(nameof(batch), batch, "The batch must be positive.");
        Ops = ops;
        Batch = batch;
        Layout = layout;
        Plan = plan;
        ops.Allocate(Arena.Parameters, layout.TotalElements);
        ops.Allocate(Arena.Gradients, layout.TotalElements);
        ops.Allocate(Arena.Activations, plan.ArenaElementsPerSample * batch);
        ops.AllocateIndices(plan.IndexElementsPerSample * batch);
        if (plan.HostElementsPerSample > 0) ops.AllocateHostActivations(plan.HostElementsPerSample * batch);
    }

    /// <summary>The host store offset of a checkpointed input kept in host memory, planned per sample.</summary>
    protected long HostStash(long offsetPerSample) => Batch * offsetPerSample;

    public ITensorOps<T> Ops { get; }

    /// <summary>Samples per forward pass (the micro-batch).</summary>
    public int Batch { get; }

    public ParameterLayout Layout { get; }

    public ActivationPlan Plan { get; }

    /// <summary>The flat parameter buffer (host view).</summary>
    public global::System.Span<T> Parameters => Ops.View(Arena.Parameters);

    /// <summary>The flat gradient buffer, same layout as <see cref="Parameters"/>; backward adds into it.</summary>
    public global::System.Span<T> Gradients => Ops.View(Arena.Gradients);

    /// <summary>Clears the gradients; call at the start of each accumulation window.</summary>
    public void ZeroGradients() => Ops.Zero(new Slice(Arena.Gradients, 0, Layout.TotalElements));

    /// <summary>Copies a planned buffer out (model outputs, input gradients).</summary>
    public void Read(Slice source, global::System.Span<T> destination) => Ops.Store(source, destination);

    /// <summary>
    /// Told during backward, from the generator's static schedule, when gradients become final (from an offset to the
    /// end of the layout), so gradient reduction can start before backward ends. Null: nobody listens.
    /// </summary>
    public IGradientListener? GradientListener { get; set; }

    protected void GradientsReady(long fromOffset) => GradientListener?.GradientsReady(fromOffset);

    protected void GradientFinal(int slot) => GradientListener?.GradientFinal(slot);

    /// <summary>Told, from the generator's static residency plan, when each parameter slot is needed and released (ZeRO-3).</summary>
    public IParameterListener? ParameterListener { get; set; }

    protected void ParametersNeeded(int slot, int phase) => ParameterListener?.ParametersNeeded(slot, phase);

    protected void ParametersReleased(int slot, int phase) => ParameterListener?.ParametersReleased(slot, phase);

    /// <summary>
    /// Which <c>[LayerDrop]</c> layers the next forward and backward run (progressive layer drop), and their branch
    /// scales; set per training micro-batch, the same for its forward and its backward. Null: every layer runs, unscaled.
    /// </summary>
    public LayerKeep? LayerKeep { get; set; }

    protected bool LayerKept(int layer) => LayerKeep is null || LayerKeep.Kept(layer);

    protected double LayerKeepScale(int layer) => LayerKeep is null ? 1.0 : LayerKeep.Scale(layer);

    /// <summary>
    /// Which tokens each <c>[TokenDrop]</c> layer runs on in the next forward and backward (random-LTD); set per
    /// training micro-batch, the same for its forward and its backward. Null: every layer runs on every token.
    /// </summary>
    public TokenKeep? TokenKeep { get; set; }

    /// <summary>Whether <c>[TokenDrop]</c> layer <paramref name="layer"/> runs on fewer than all its tokens in this micro-batch.</summary>
    protected bool TokensDropped(int layer, int sequence) => TokenKeep is not null && TokenKeep.KeptCount(layer) < sequence;

    /// <summary>The tokens of each sample <c>[TokenDrop]</c> layer <paramref name="layer"/> runs on.</summary>
    protected int KeptTokens(int layer, int sequence) => TokenKeep is null ? sequence : global::System.Math.Min(TokenKeep.KeptCount(layer), sequence);

    /// <summary>Which tokens, <c>[batch, kept]</c> packed in <c>[batch, sequence]</c>, where <see cref="TokensDropped"/>.</summary>
    protected global::System.ReadOnlySpan<int> KeptTokenIndices(int layer, int sequence)
    {
        var indices = TokenKeep is not null ? TokenKeep.Indices(layer) : default;
        if (indices.Length != Batch * sequence)
            throw new global::System.InvalidOperationException($"Random-LTD gave [TokenDrop] layer {layer} {indices.Length} token indices; batch {Batch} of {sequence} tokens needs {Batch * sequence}.");
        return indices;
    }

    protected Slice Activation(long offsetPerSample, long elementsPerSample)
        => new(Arena.Activations, offsetPerSample * Batch, elementsPerSample * Batch);

    protected IndexSlice Indices(long offsetPerSample, long elementsPerSample)
        => new(offsetPerSample * Batch, elementsPerSample * Batch);

    protected void CheckInput(string name, int length, long expected)
    {
        if (length != expected)
            throw new global::System.ArgumentException($"Input '{name}' has {length} elements; batch {Batch} needs {expected}.", name);
    }
}

/// <summary>Receives the backward pass's gradient-readiness events (see <see cref="CompiledModel{T}.GradientListener"/>).</summary>
public interface IGradientListener
{
    /// <summary>Every parameter gradient at offsets ≥ <paramref name="fromOffset"/> is final for this backward pass.</summary>
    void GradientsReady(long fromOffset);

    /// <summary>The gradient of layout slot <paramref name="slot"/> is final for this backward pass (called in a static order).</summary>
    void GradientFinal(int slot)
    {
    }
}

/// <summary>Receives the program's parameter residency events (see <see cref="CompiledModel{T}.ParameterListener"/>).</summary>
public interface IParameterListener
{
    /// <summary>Slot <paramref name="slot"/> is about to be used in <paramref name="phase"/> (0 forward, 1 backward).</summary>
    void ParametersNeeded(int slot, int phase);

    /// <summary>Slot <paramref name="slot"/> is not used again in this phase.</summary>
    void ParametersReleased(int slot, int phase);
}

/// <summary>
/// A compiled language model: token ids and next-token targets in, mean cross-entropy out. Generated programs of
/// models whose forward is <c>(tokens, targets) → Loss.CrossEntropy</c> derive from this, so trainers need no
/// model-specific code.
/// </summary>
public abstract class CompiledLanguageModel<T> : CompiledModel<T> where T : unmanaged
{
    protected CompiledLanguageModel(ITensorOps<T> ops, int batch, ParameterLayout layout, ActivationPlan plan)
        : base(ops, batch, layout, plan)
    {
    }

    /// <summary>Positions every sample must have.</summary>
    public abstract int SequenceLength { get; }

    /// <summary>Size of the output vocabulary (the last dimension of <see cref="Logits"/>).</summary>
    public abstract int VocabularySize { get; }

    /// <summary>
    /// The logits <c>[batch, sequence, vocabulary]</c> of the last forward; valid until the next backward (after
    /// <see cref="ForwardBackward"/> they may already hold their gradient: the loss writes it over them).
    /// </summary>
    public abstract Slice Logits { get; }

    /// <summary>Runs the forward pass; returns the mean loss over all positions.</summary>
    public abstract T Forward(global::System.ReadOnlySpan<int> tokens, global::System.ReadOnlySpan<int> targets);

    /// <summary>Runs the backward pass of the last forward, adding scale × ∂loss/∂θ into the gradients.</summary>
    public abstract void Backward(T scale);

    /// <summary>
    /// <see cref="Forward"/> then <see cref="Backward"/>(<paramref name="scale"/>); returns the forward's mean loss.
    /// The same gradients as the two calls, in fewer passes over the logits where the program fuses its loss
    /// (<see cref="FusesLossGradient"/>): since the scale is known before the forward, the loss op writes the logits'
    /// gradient as it computes the loss (ITensorOps.CrossEntropyWithGradient) and the backward skips that op.
    /// </summary>
    public T ForwardBackward(global::System.ReadOnlySpan<int> tokens, global::System.ReadOnlySpan<int> targets, T scale)
    {
        T loss;
        FusingLossGradient = FusesLossGradient;
        LossGradientScale = scale;
        try
        {
            loss = Forward(tokens, targets);
        }
        finally
        {
            FusingLossGradient = false;
        }
        // Set only once the forward has returned: a forward that threw leaves the backward computing the gradient.
        _lossGradientWritten = FusesLossGradient;
        Backward(scale);
        return loss;
    }

    /// <summary>
    /// Whether the generated forward writes its loss's gradient when <see cref="FusingLossGradient"/> is set: a
    /// whole-vocabulary cross-entropy whose backward is the first op of the backward pass.
    /// </summary>
    protected virtual bool FusesLossGradient => false;

    /// <summary>True while <see cref="ForwardBackward"/> runs the forward: the loss op writes its gradient too, scaled by <see cref="LossGradientScale"/>.</summary>
    protected bool FusingLossGradient { get; private set; }

    /// <summary>The scale of the backward that follows, while <see cref="FusingLossGradient"/> is set.</summary>
    protected T LossGradientScale { get; private set; }

    private bool _lossGradientWritten;

    /// <summary>
    /// Whether the last forward already wrote the loss's gradient (the generated backward then skips the loss op);
    /// true at most once per <see cref="ForwardBackward"/>.
    /// </summary>
    protected bool TakeLossGradientWritten()
    {
        bool written = _lossGradientWritten;
        _lossGradientWritten = false;
        return written;
    }
}

/// <summary>
/// Implemented by the generated half of every language-model [Model] class, so that a trainer can be written once
/// for all of them: <c>Trainer.Run&lt;TinyGpt&gt;(args)</c>.
/// </summary>
public interface ILanguageModelDefinition
{
    static abstract ParameterLayout ParameterLayout { get; }

    static abstract ActivationPlan ActivationPlan { get; }

    static abstract string PlanReport { get; }

    /// <summary>Every forward op's layer and FLOPs per sample, in execution order (the FLOPS profiler's module table).</summary>
    static abstract global::System.Collections.Generic.IReadOnlyList<OperationCost> OperationCosts { get; }

    static abstract GradientPool GradientPool { get; }

    static abstract ParameterPool ParameterPool { get; }

    static abstract int SequenceLength { get; }

    static abstract int VocabularySize { get; }

    /// <summary>The <c>[LayerDrop]</c> layers progressive layer drop may skip, in model order (empty without the attribute).</summary>
    static abstract global::System.Collections.Generic.IReadOnlyList<string> DroppableLayers { get; }

    /// <summary>The <c>[TokenDrop]</c> layers random-LTD may run on some tokens, in model order (empty without the attribute).</summary>
    static abstract global::System.Collections.Generic.IReadOnlyList<string> TokenDropLayers { get; }

    /// <summary>Builds the compiled program over a backend for a micro-batch size.</summary>
    static abstract CompiledLanguageModel<T> Compile<T>(ITensorOps<T> ops, int batch)
        where T : unmanaged, global::System.Numerics.IFloatingPointIeee754<T>;
}
